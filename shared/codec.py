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
