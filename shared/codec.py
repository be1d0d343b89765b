"""Encoding of objects: msgpack inside redkube, JSON at the edges.

Objects are plain JSON-compatible dicts; the store keeps them msgpack-encoded.
Bus requests carry ``ct`` = ``json`` (what a person types) or ``msgpack``.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack


class DecodeError(ValueError):
    """The bytes are not a valid document in the claimed encoding."""


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise DecodeError(f"invalid msgpack: {exc}") from exc


def to_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def from_json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError("invalid JSON: nested too deeply") from exc


def decode(data: bytes | str, content_type: str | None) -> Any:
    """Decode a bus body: ``ct`` is ``json`` (default) or ``msgpack``."""
    ct = (content_type or "json").lower()
    if ct in ("json", "application/json"):
        return from_json(data)
    if ct in ("msgpack", "application/msgpack", "application/x-msgpack"):
        if isinstance(data, str):
            data = data.encode()
        return unpack(data)
    raise DecodeError(f"unsupported content type {content_type!r}: use json or msgpack")


def encode(obj: Any, content_type: str | None) -> bytes:
    return pack(obj) if (content_type or "json").lower() == "msgpack" else to_json(obj)


class TooLarge(ValueError):
    """A decoded document is too deep or expands too far (a YAML alias bomb, say)."""


def check_bounds(doc: Any, *, max_nodes: int = 200_000, max_depth: int = 100) -> None:
    """Walk a decoded document without recursion; raise TooLarge past the limits and
    DecodeError for text that is not valid UTF-8 (YAML escapes can make lone surrogates).

    YAML aliases share objects, so a small file can stand for an enormous tree: the
    walk counts every visit, which is what encoding it would cost.
    """
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise TooLarge(f"the document has more than {max_nodes} values")
        if depth > max_depth:
            raise TooLarge(f"the document is nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node)
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DecodeError(f"invalid UTF-8 text (lone surrogate) in {node[:20]!r}") from exc
