"""The protobuf request decoder: wire format, field tables and the JSON shape it produces."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest

from services.apiserver import protobuf
from services.apiserver.protobuf import MAGIC, ProtobufError, Unsupported, decode_message, decode_request
from services.apiserver.protobuf_schema import MESSAGES

# --- a tiny encoder, written independently of the decoder -----------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negatives: two's complement in 64 bits, ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def ld(number: int, value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ld(number, ld(1, key) + ld(2, value))


def envelope(raw: bytes, *, api_version: str = "v1", kind: str = "Pod", encoding: str = "") -> bytes:
    type_meta = (ld(1, api_version) if api_version else b"") + (ld(2, kind) if kind else b"")
    return MAGIC + ld(1, type_meta) + ld(2, raw) + (ld(3, encoding) if encoding else b"") + ld(4, "")


PODS = SimpleNamespace(kind="Pod", plural="pods")
DEPLOYMENTS = SimpleNamespace(kind="Deployment", plural="deployments")

# --- wire format ----------------------------------------------------------------------------


def test_varints_single_and_multi_byte() -> None:
    assert protobuf.fields(vint(1, 1) + vint(2, 300) + vint(3, 2**40)) == {1: [1], 2: [300], 3: [2**40]}
    assert varint(300) == b"\xac\x02"


def test_negative_int64_and_int32_are_ten_byte_varints() -> None:
    assert len(varint(-1)) == 10
    body = decode_message(vint(1, -1), "meta.v1.DeleteOptions")
    assert body == {"gracePeriodSeconds": -1}
    probe = decode_message(vint(2, -5), "core.v1.Probe")  # initialDelaySeconds is an int32
    assert probe == {"initialDelaySeconds": -5}


def test_truncated_and_garbage_input_raise_protobuf_error() -> None:
    good = ld(1, ld(1, "web"))
    for bad in (good[:-1], b"\x0a\xff", b"\x08\x80", b"\x0f", b"\x00\x01"):
        with pytest.raises(ProtobufError):
            decode_message(bad, "core.v1.Pod")
    with pytest.raises(ProtobufError):
        decode_request(b"not protobuf", PODS, subresource=None, method="POST")
    with pytest.raises(ProtobufError):
        decode_request(MAGIC + b"\x12\x05ab", PODS, subresource=None, method="POST")
    with pytest.raises(ProtobufError):  # a string where an int belongs
        decode_message(ld(1, "three"), "apps.v1.DeploymentSpec")
    with pytest.raises(ProtobufError):
        decode_message(ld(1, ld(1, b"\xff\xfe")), "core.v1.Pod")  # name is not UTF-8


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    raw = (
        ld(1, ld(1, "web") + ld(99, "future"))
        + vint(77, 5)
        + varint(78 << 3 | 1)
        + b"12345678"
        + varint(79 << 3 | 5)
        + b"1234"
        + ld(80, b"\x00\xff")
    )
    assert decode_message(raw, "core.v1.Pod") == {"metadata": {"name": "web"}}


def test_unsupported_kinds_and_encodings() -> None:
    with pytest.raises(Unsupported):
        decode_request(envelope(b"", api_version="x/v1", kind="Widget"), PODS, subresource=None, method="POST")
    with pytest.raises(Unsupported):
        decode_request(envelope(b"", encoding="gzip"), PODS, subresource=None, method="POST")


# --- the JSON shape -------------------------------------------------------------------------


def test_maps_of_strings_bytes_and_quantities() -> None:
    cm = decode_message(
        ld(1, ld(1, "cm")) + entry(2, "a", "b") + entry(2, "c", "") + entry(3, "bin", b"\x00\x01"), "core.v1.ConfigMap"
    )
    assert cm == {"metadata": {"name": "cm"}, "data": {"a": "b", "c": ""}, "binaryData": {"bin": "AAE="}}
    secret = decode_message(entry(2, "user", "admin") + ld(3, "Opaque"), "core.v1.Secret")
    assert secret == {"data": {"user": base64.b64encode(b"admin").decode()}, "type": "Opaque"}
    resources = decode_message(
        entry(1, "cpu", ld(1, "500m")) + entry(2, "memory", ld(1, "64Mi")), "core.v1.ResourceRequirements"
    )
    assert resources == {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}}


def test_nested_deployment_with_intorstring_time_and_inline_fields() -> None:
    meta = ld(1, "web") + ld(3, "ns") + entry(11, "app", "web") + ld(8, vint(1, 1_700_000_000)) + ld(14, "f1")
    container = ld(1, "main") + ld(2, "busybox") + ld(3, "sleep") + ld(4, "1") + ld(6, vint(3, 8080) + ld(4, "TCP"))
    container += ld(7, ld(1, "A") + ld(2, "1")) + ld(8, b"")  # env, resources {}
    volume = ld(1, "cfg") + ld(2, ld(19, ld(1, ld(1, "settings")) + vint(3, 0o644)))  # configMap, inline
    pod_spec = ld(1, volume) + ld(2, container) + ld(3, "Always")
    template = ld(1, b"") + ld(2, pod_spec)
    rolling = ld(1, vint(1, 0) + vint(2, 1)) + ld(2, vint(1, 1) + ld(3, "25%"))
    spec = vint(1, 0) + ld(2, entry(1, "app", "web")) + ld(3, template) + ld(4, ld(1, "RollingUpdate") + ld(2, rolling))
    body = decode_request(
        envelope(ld(1, meta) + ld(2, spec) + ld(3, b""), api_version="apps/v1", kind="Deployment"),
        DEPLOYMENTS,
        subresource=None,
        method="POST",
    )
    assert body == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "labels": {"app": "web"},
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "finalizers": ["f1"],
        },
        "spec": {
            "replicas": 0,  # a pointer: zero is meant
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {},
                "spec": {
                    "volumes": [{"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}],
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "command": ["sleep"],
                            "args": ["1"],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {},
                        }
                    ],
                    "restartPolicy": "Always",
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
        },
        "status": {},
    }


def test_unset_scalars_written_by_gogo_are_dropped_but_pointers_keep_zero() -> None:
    # gogo writes non-pointer strings/ints even when empty; Go's JSON would omit them.
    port = decode_message(ld(1, "") + vint(3, 80) + vint(5, 0) + ld(2, "TCP"), "core.v1.ServicePort")
    assert port == {"port": 80, "protocol": "TCP"}
    assert decode_message(vint(1, 0) + vint(3, 0), "meta.v1.DeleteOptions") == {
        "gracePeriodSeconds": 0,
        "orphanDependents": False,
    }
    # A zero Time is how gogo writes an unset creationTimestamp.
    assert decode_message(ld(1, ld(8, vint(1, 0) + vint(2, 0))), "core.v1.Pod") == {"metadata": {}}


def test_delete_bodies_without_type_meta_are_delete_options() -> None:
    raw = vint(1, 0) + ld(2, ld(1, "uid-1")) + ld(4, "Background") + ld(5, "All")
    body = decode_request(envelope(raw, api_version="", kind=""), PODS, subresource=None, method="DELETE")
    assert body == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "uid-1"},
        "propagationPolicy": "Background",
        "dryRun": ["All"],
    }


def test_subresource_bodies() -> None:
    eviction = ld(1, ld(1, "web") + ld(3, "ns")) + ld(2, vint(1, 0))
    assert decode_request(
        envelope(eviction, api_version="policy/v1", kind="Eviction"), PODS, subresource="eviction", method="POST"
    ) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web", "namespace": "ns"},
        "deleteOptions": {"gracePeriodSeconds": 0},
    }
    scale = decode_request(
        envelope(ld(1, ld(1, "web")) + ld(2, vint(1, 0)), api_version="", kind=""),
        DEPLOYMENTS,
        subresource="scale",
        method="PUT",
    )
    assert scale == {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web"},
        "spec": {"replicas": 0},
    }
    binding = decode_request(
        envelope(ld(1, ld(1, "web")) + ld(2, ld(1, "Node") + ld(3, "n1")), kind="Binding"),
        PODS,
        subresource="binding",
        method="POST",
    )
    assert binding["target"] == {"kind": "Node", "name": "n1"}


def test_access_review_still_decodes() -> None:
    attrs = ld(1, "default") + ld(2, "create") + ld(5, "pods")
    body = envelope(ld(2, ld(1, attrs)), api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview")
    review = protobuf.decode_access_review(body)
    assert review["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}


def test_packed_repeated_scalars_and_microtime_and_duration() -> None:
    lease = decode_message(
        ld(1, "n1") + vint(2, 40) + ld(4, vint(1, 1_700_000_000) + vint(2, 123_456_000)),
        "coordination.v1.LeaseSpec",
    )
    assert lease == {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2023-11-14T22:13:20.123456Z"}
    packed = decode_message(ld(1, ld(1, "SYS_TIME")), "core.v1.SecurityContext")
    assert packed == {"capabilities": {"add": ["SYS_TIME"]}}
    groups = decode_message(ld(4, varint(1) + varint(1000)), "core.v1.PodSecurityContext")
    assert groups == {"supplementalGroups": [1, 1000]}
    assert protobuf.go_duration(3_723_500_000_000) == "1h2m3.5s"
    assert protobuf.go_duration(1_500_000) == "1.5ms" and protobuf.go_duration(0) == "0s"


def test_field_numbers_match_generated_proto() -> None:
    """Spot checks against k8s.io/api generated.proto, so a regenerated table cannot drift silently."""
    assert MESSAGES["meta.v1.ObjectMeta"][11] == ("labels", "map:string")
    assert MESSAGES["meta.v1.ObjectMeta"][13] == ("ownerReferences", "[]meta.v1.OwnerReference")
    assert MESSAGES["core.v1.PodSpec"][10] == ("nodeName", "string")
    assert MESSAGES["core.v1.Container"][2] == ("image", "string")
    assert MESSAGES["core.v1.ServicePort"][5] == ("nodePort", "int")
    assert MESSAGES["core.v1.ServiceSpec"][22] == ("internalTrafficPolicy", "string")
    assert MESSAGES["apps.v1.DeploymentSpec"][9] == ("progressDeadlineSeconds", "int")
    assert MESSAGES["rbac.v1.RoleBinding"][3] == ("roleRef", "rbac.v1.RoleRef")
    assert MESSAGES["core.v1.EnvVarSource"][4] == ("secretKeyRef", "core.v1.SecretKeySelector")
    for name, table in MESSAGES.items():
        for number, (_, kind) in table.items():
            assert number > 0
            base = kind.removeprefix("[]").removeprefix("map:")
            assert base in MESSAGES or base in {
                "string",
                "int",
                "uint",
                "sint",
                "bool",
                "bytes",
                "double",
                "float",
                "fixed64",
                "fixed32",
                "intstr",
                "quantity",
                "time",
                "microtime",
                "duration",
                "raw",
            }, (name, number, kind)
