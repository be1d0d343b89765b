"""Kubernetes' protobuf encoding, read into the JSON shape the rest of the server speaks.

client-go's typed clients (``kubectl create …``, ``run``, ``expose``, ``drain``, ``auth can-i``)
send bodies as ``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` then a
``runtime.Unknown`` (1 TypeMeta{apiVersion, kind}, 2 raw message, 3 contentEncoding,
4 contentType). The raw message is decoded against the field tables in
``protobuf_schema`` into the object's Kubernetes JSON form. Answers go back as JSON,
which every client accepts, so nothing is ever encoded.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from typing import Any, Final

from services.apiserver.protobuf_schema import MESSAGES

MAGIC = b"k8s\x00"
MAX_DEPTH = 64

#: Kind (from the request's TypeMeta) -> field table of the top-level message.
KINDS: Final[dict[str, str]] = {
    "Namespace": "core.v1.Namespace",
    "Node": "core.v1.Node",
    "Pod": "core.v1.Pod",
    "Service": "core.v1.Service",
    "Endpoints": "core.v1.Endpoints",
    "ConfigMap": "core.v1.ConfigMap",
    "Secret": "core.v1.Secret",
    "ServiceAccount": "core.v1.ServiceAccount",
    "Event": "core.v1.Event",
    "Binding": "core.v1.Binding",
    "ReplicaSet": "apps.v1.ReplicaSet",
    "Deployment": "apps.v1.Deployment",
    "Job": "batch.v1.Job",
    "CronJob": "batch.v1.CronJob",
    "Lease": "coordination.v1.Lease",
    "Role": "rbac.v1.Role",
    "ClusterRole": "rbac.v1.ClusterRole",
    "RoleBinding": "rbac.v1.RoleBinding",
    "ClusterRoleBinding": "rbac.v1.ClusterRoleBinding",
    "Eviction": "policy.v1.Eviction",
    "Scale": "autoscaling.v1.Scale",
    "DeleteOptions": "meta.v1.DeleteOptions",
    "SelfSubjectAccessReview": "authorization.v1.SelfSubjectAccessReview",
    "SelfSubjectReview": "authentication.v1.SelfSubjectReview",
}

#: The JSON form of each top-level message (used when a body carries no TypeMeta).
API_VERSIONS: Final[dict[str, str]] = {
    "core": "v1",
    "apps": "apps/v1",
    "batch": "batch/v1",
    "coordination": "coordination.k8s.io/v1",
    "rbac": "rbac.authorization.k8s.io/v1",
    "policy": "policy/v1",
    "autoscaling": "autoscaling/v1",
    "meta": "v1",
    "authorization": "authorization.k8s.io/v1",
    "authentication": "authentication.k8s.io/v1",
}

#: Scalars that are Go pointers: gogo writes them only when set, so a zero there is meant (``replicas: 0``,
#: ``gracePeriodSeconds: 0``). Every other zero scalar is what gogo writes for an unset value and is dropped,
#: as Go's ``omitempty`` would.
KEEP_ZERO: Final[frozenset[str]] = frozenset(
    {
        "meta.v1.DeleteOptions.gracePeriodSeconds",
        "meta.v1.DeleteOptions.orphanDependents",
        "meta.v1.Preconditions.uid",
        "meta.v1.Preconditions.resourceVersion",
        "meta.v1.ObjectMeta.deletionGracePeriodSeconds",
        "meta.v1.OwnerReference.controller",
        "meta.v1.OwnerReference.blockOwnerDeletion",
        "apps.v1.DeploymentSpec.replicas",
        "apps.v1.DeploymentSpec.revisionHistoryLimit",
        "apps.v1.DeploymentSpec.progressDeadlineSeconds",
        "apps.v1.ReplicaSetSpec.replicas",
        "autoscaling.v1.ScaleSpec.replicas",
        "batch.v1.JobSpec.parallelism",
        "batch.v1.JobSpec.completions",
        "batch.v1.JobSpec.activeDeadlineSeconds",
        "batch.v1.JobSpec.backoffLimit",
        "batch.v1.JobSpec.backoffLimitPerIndex",
        "batch.v1.JobSpec.maxFailedIndexes",
        "batch.v1.JobSpec.ttlSecondsAfterFinished",
        "batch.v1.JobSpec.manualSelector",
        "batch.v1.JobSpec.suspend",
        "batch.v1.CronJobSpec.startingDeadlineSeconds",
        "batch.v1.CronJobSpec.suspend",
        "batch.v1.CronJobSpec.successfulJobsHistoryLimit",
        "batch.v1.CronJobSpec.failedJobsHistoryLimit",
        "core.v1.PodSpec.terminationGracePeriodSeconds",
        "core.v1.PodSpec.activeDeadlineSeconds",
        "core.v1.PodSpec.automountServiceAccountToken",
        "core.v1.PodSpec.shareProcessNamespace",
        "core.v1.PodSpec.priority",
        "core.v1.PodSpec.enableServiceLinks",
        "core.v1.PodSpec.setHostnameAsFQDN",
        "core.v1.PodSpec.hostUsers",
        "core.v1.Probe.terminationGracePeriodSeconds",
        "core.v1.ServiceAccount.automountServiceAccountToken",
        "core.v1.Secret.immutable",
        "core.v1.ConfigMap.immutable",
        "core.v1.Toleration.tolerationSeconds",
        "core.v1.SecurityContext.privileged",
        "core.v1.SecurityContext.runAsUser",
        "core.v1.SecurityContext.runAsGroup",
        "core.v1.SecurityContext.runAsNonRoot",
        "core.v1.SecurityContext.readOnlyRootFilesystem",
        "core.v1.SecurityContext.allowPrivilegeEscalation",
        "core.v1.PodSecurityContext.runAsUser",
        "core.v1.PodSecurityContext.runAsGroup",
        "core.v1.PodSecurityContext.runAsNonRoot",
        "core.v1.PodSecurityContext.fsGroup",
        "core.v1.ConfigMapVolumeSource.defaultMode",
        "core.v1.ConfigMapVolumeSource.optional",
        "core.v1.SecretVolumeSource.defaultMode",
        "core.v1.SecretVolumeSource.optional",
        "core.v1.ProjectedVolumeSource.defaultMode",
        "core.v1.DownwardAPIVolumeSource.defaultMode",
        "core.v1.DownwardAPIVolumeFile.mode",
        "core.v1.KeyToPath.mode",
        "core.v1.ConfigMapKeySelector.optional",
        "core.v1.SecretKeySelector.optional",
        "core.v1.ConfigMapEnvSource.optional",
        "core.v1.SecretEnvSource.optional",
        "core.v1.ConfigMapProjection.optional",
        "core.v1.SecretProjection.optional",
        "core.v1.ServiceSpec.allocateLoadBalancerNodePorts",
        "core.v1.ClientIPConfig.timeoutSeconds",
        "core.v1.TopologySpreadConstraint.minDomains",
        "coordination.v1.LeaseSpec.holderIdentity",
        "coordination.v1.LeaseSpec.leaseDurationSeconds",
        "coordination.v1.LeaseSpec.leaseTransitions",
    }
)

_VARINT_TYPES: Final = frozenset({"int", "uint", "sint", "bool"})


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


def records(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """The (field number, wire type, value) records of one message, in order.

    Varints come back as int; length-delimited, fixed64 and fixed32 values as their bytes.
    """
    found: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        value: bytes | int
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 2, 5):
            if wire == 2:
                length, pos = _varint(data, pos)
            else:
                length = 8 if wire == 1 else 4
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            value = data[pos : pos + length]
            pos += length
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        found.append((number, wire, value))
    return found


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> values (bytes for length-delimited and fixed, int for varints)."""
    found: dict[int, list[bytes | int]] = {}
    for number, _, value in records(data):
        found.setdefault(number, []).append(value)
    return found


def _signed(value: int) -> int:
    """int32/int64 are two's complement in 64 bits (a negative int32 is a 10-byte varint)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise ProtobufError("a string field is not UTF-8") from exc


def _rfc3339(seconds: int, nanos: int, *, micro: bool) -> str:
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtobufError(f"timestamp {seconds} out of range") from exc
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{max(nanos, 0) // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(nanos: int) -> str:
    """A nanosecond count as Go's ``time.Duration.String()`` (``1h2m3.5s``), as metav1.Duration marshals."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size or unit == "ns":
                return sign + _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def _expect(wire: int, want: int, where: str) -> None:
    if wire != want:
        raise ProtobufError(f"{where}: wire type {wire}, expected {want}")


def _scalar(kind: str, wire: int, value: bytes | int, where: str) -> Any:
    if kind in _VARINT_TYPES:
        _expect(wire, 0, where)
        assert isinstance(value, int)
        if kind == "bool":
            return value != 0
        if kind == "uint":
            return value
        if kind == "sint":
            return (value >> 1) ^ -(value & 1)
        return _signed(value)
    if kind in ("double", "fixed64"):
        _expect(wire, 1, where)
        assert isinstance(value, bytes)
        return struct.unpack("<d" if kind == "double" else "<Q", value)[0]
    if kind in ("float", "fixed32"):
        _expect(wire, 5, where)
        assert isinstance(value, bytes)
        return struct.unpack("<f" if kind == "float" else "<I", value)[0]
    _expect(wire, 2, where)
    assert isinstance(value, bytes)
    if kind == "string":
        return _text(value)
    if kind == "bytes":
        return base64.b64encode(value).decode()
    return _special(kind, value, where)


def _special(kind: str, value: bytes, where: str) -> Any:
    """The messages whose JSON form is not an object."""
    found = fields(value)
    if kind == "intstr":
        if _int(found, 1) == 1:
            return _str(found, 3)
        return _int(found, 2)
    if kind == "quantity":
        return _str(found, 1)
    if kind in ("time", "microtime"):
        seconds, nanos = _int(found, 1), _int(found, 2)
        if not seconds and not nanos:
            return None
        return _rfc3339(seconds, nanos, micro=kind == "microtime")
    if kind == "duration":
        return go_duration(_int(found, 1))
    if kind == "raw":
        raw = found.get(1, [b""])[-1]
        if not isinstance(raw, bytes) or not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None
    raise Unsupported(f"{where}: no field table for {kind}")


def _int(found: dict[int, list[bytes | int]], number: int) -> int:
    value = found.get(number, [0])[-1]
    if not isinstance(value, int):
        raise ProtobufError(f"field {number} is not a varint")
    return _signed(value)


def _str(found: dict[int, list[bytes | int]], number: int) -> str:
    value = found.get(number, [b""])[-1]
    if not isinstance(value, bytes):
        raise ProtobufError(f"field {number} is not length-delimited")
    return _text(value)


def _value(kind: str, wire: int, value: bytes | int, where: str, depth: int) -> Any:
    if kind in MESSAGES:
        _expect(wire, 2, where)
        assert isinstance(value, bytes)
        return decode_message(value, kind, depth=depth + 1)
    return _scalar(kind, wire, value, where)


def _packed(kind: str, value: bytes, where: str) -> list[Any]:
    """A packed repeated scalar (proto3 style; gogo's proto2 never packs, but accept it)."""
    out: list[Any] = []
    if kind in _VARINT_TYPES:
        pos = 0
        while pos < len(value):
            number, pos = _varint(value, pos)
            out.append(_scalar(kind, 0, number, where))
        return out
    size, wire = (8, 1) if kind in ("double", "fixed64") else (4, 5)
    if len(value) % size:
        raise ProtobufError(f"{where}: truncated packed field")
    return [_scalar(kind, wire, value[i : i + size], where) for i in range(0, len(value), size)]


def _map_entry(kind: str, value: bytes | int, where: str, depth: int) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: a map entry is not length-delimited")
    key, item = "", None
    for number, wire, part in records(value):
        if number == 1:
            key = _scalar("string", wire, part, where)
        elif number == 2:
            item = _value(kind, wire, part, where, depth)
    if item is None:
        item = _zero(kind)
    return key, item


def _zero(kind: str) -> Any:
    if kind in MESSAGES:
        return {}
    return {"string": "", "bytes": "", "quantity": "0", "bool": False}.get(kind, 0 if kind in _VARINT_TYPES else None)


def _empty(value: Any) -> bool:
    return value is None or value is False or (value == 0 and not isinstance(value, bool)) or value == ""


def decode_message(data: bytes, name: str, *, depth: int = 0) -> dict[str, Any]:
    """The JSON object of one message, by its field table ``name``; unknown fields are skipped."""
    if depth > MAX_DEPTH:
        raise ProtobufError("messages nested too deeply")
    table = MESSAGES.get(name)
    if table is None:
        raise Unsupported(f"no field table for {name}")
    out: dict[str, Any] = {}
    inline: list[dict[str, Any]] = []
    for number, wire, value in records(data):
        spec = table.get(number)
        if spec is None:
            continue
        json_name, kind = spec
        where = f"{name}.{json_name or number}"
        if kind.startswith("map:"):
            key, item = _map_entry(kind[4:], value, where, depth)
            out.setdefault(json_name, {})[key] = item
        elif kind.startswith("[]"):
            element = kind[2:]
            items = out.setdefault(json_name, [])
            if (
                wire == 2
                and element not in MESSAGES
                and element in _VARINT_TYPES | {"double", "float", "fixed32", "fixed64"}
            ):
                assert isinstance(value, bytes)
                items.extend(_packed(element, value, where))
            else:
                items.append(_value(element, wire, value, where, depth))
        elif not json_name:
            inline.append(_value(kind, wire, value, where, depth))
        else:
            out[json_name] = _value(kind, wire, value, where, depth)
    for json_name, kind in table.values():
        if json_name in out and kind not in MESSAGES and not kind.startswith(("[]", "map:")):
            if _empty(out[json_name]) and f"{name}.{json_name}" not in KEEP_ZERO:
                del out[json_name]
    for part in inline:
        for key, item in part.items():
            out.setdefault(key, item)
    return out


def _unknown(body: bytes) -> tuple[str, str, bytes]:
    """apiVersion, kind and raw message of the ``runtime.Unknown`` envelope."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic")
    envelope = fields(body[len(MAGIC) :])
    type_meta = envelope.get(1, [b""])[-1]
    raw = envelope.get(2, [b""])[-1]
    encoding = envelope.get(3, [b""])[-1]
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes) or not isinstance(encoding, bytes):
        raise ProtobufError("malformed runtime.Unknown envelope")
    if encoding:
        raise Unsupported(f"content encoding {_text(encoding)!r}")
    meta = fields(type_meta)
    return _str(meta, 1), _str(meta, 2), raw


def _default_message(resource: Any, subresource: str | None, method: str) -> str | None:
    """The message a body without TypeMeta must be, from where it was sent."""
    if method == "DELETE":
        return "meta.v1.DeleteOptions"
    if subresource in ("eviction", "scale", "binding"):
        return KINDS[{"eviction": "Eviction", "scale": "Scale", "binding": "Binding"}[subresource]]
    return KINDS.get(resource.kind)


def decode_request(body: bytes, resource: Any, *, subresource: str | None, method: str) -> dict[str, Any]:
    """The JSON form of a protobuf request body for ``resource`` (a ``shared.resources.Resource``)."""
    api_version, kind, raw = _unknown(body)
    name = KINDS.get(kind) if kind else _default_message(resource, subresource, method)
    if name is None:
        raise Unsupported(kind or resource.kind)
    result: dict[str, Any] = {
        "apiVersion": api_version or API_VERSIONS[name.split(".")[0]],
        "kind": kind or name.rsplit(".", 1)[1],
    }
    result.update(decode_message(raw, name))
    return result


def decode_access_review(body: bytes) -> dict[str, Any]:
    """A protobuf SelfSubjectAccessReview as its JSON form."""
    _, _, raw = _unknown(body)
    result: dict[str, Any] = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    result.update(decode_message(raw, "authorization.v1.SelfSubjectAccessReview"))
    result.setdefault("spec", {})
    return result
