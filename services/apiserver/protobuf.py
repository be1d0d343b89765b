"""Just enough of Kubernetes' protobuf encoding to read what kubectl sends as protobuf.

client-go sends some typed requests (``kubectl auth can-i``'s SelfSubjectAccessReview)
as ``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` then a
``runtime.Unknown`` holding the message. Answers go back as JSON, which every client
accepts. Anything else in protobuf stays a 415.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


class Unsupported(ProtobufError):
    """A protobuf message this server has no field table for (answered 415)."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> values (bytes for length-delimited, int for varints)."""
    found: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            found.setdefault(number, []).append(value)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            found.setdefault(number, []).append(data[pos:pos + length])
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return found


def _text(values: dict[int, list[bytes | int]], number: int) -> str | None:
    value = values.get(number, [None])[0]
    return value.decode() if isinstance(value, bytes) else None


def decode_access_review(body: bytes) -> dict[str, Any]:
    """A protobuf SelfSubjectAccessReview as its JSON form."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic")
    unknown = fields(body[len(MAGIC):])
    raw = unknown.get(2, [b""])[0]
    review = fields(raw if isinstance(raw, bytes) else b"")
    spec_raw = review.get(2, [b""])[0]
    spec = fields(spec_raw if isinstance(spec_raw, bytes) else b"")
    result: dict[str, Any] = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                              "spec": {}}
    if 1 in spec and isinstance(spec[1][0], bytes):
        attrs = fields(spec[1][0])
        names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
        result["spec"]["resourceAttributes"] = {
            name: text for number, name in names.items() if (text := _text(attrs, number)) is not None}
    if 2 in spec and isinstance(spec[2][0], bytes):
        attrs = fields(spec[2][0])
        result["spec"]["nonResourceAttributes"] = {"path": _text(attrs, 1) or "", "verb": _text(attrs, 2) or ""}
    return result


def decode_request(body: bytes, resource: Any, *, subresource: str | None, method: str) -> dict[str, Any]:
    """The JSON form of a protobuf request body for ``resource`` (a ``shared.resources.Resource``)."""
    if resource.plural == "selfsubjectaccessreviews":
        return decode_access_review(body)
    raise Unsupported(f"{resource.kind}")
