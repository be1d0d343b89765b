"""kubectl's imperative commands, whose typed clients send protobuf bodies, against a real API server.

The oracle is kubectl itself: ``--dry-run=client -o json`` prints exactly the object the
command then encodes as protobuf, so everything in it must come back from the server as
stored (the server may add defaults and metadata of its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.harness import Cluster, wait_for
from tests.unit.test_protobuf import envelope, ld

NS = "imp"

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
    "status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}],
    },
}


#: A pod spec reaching into most PodSpec messages. ``kubectl debug --copy-to`` re-sends it through its typed
#: client, as protobuf. The zero and false values are Go pointers that must survive
#: (``terminationGracePeriodSeconds: 0``).
RICH_OVERRIDES: dict[str, Any] = {
    "spec": {
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30},
            {"operator": "Exists"},
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 5, "preference": {"matchExpressions": [{"key": "x", "operator": "Exists"}]}}
                ],
            },
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"run": "rich"}}, "topologyKey": "kubernetes.io/hostname"}
                ]
            },
        },
        "volumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}},
            {
                "name": "cfg",
                "configMap": {
                    "name": "cfg",
                    "items": [{"key": "a", "path": "a.txt"}],
                    "defaultMode": 420,
                    "optional": True,
                },
            },
            {"name": "sec", "secret": {"secretName": "creds", "optional": False}},
            {"name": "host", "hostPath": {"path": "/tmp", "type": "Directory"}},
        ],
        "securityContext": {"runAsUser": 1000, "runAsNonRoot": True, "fsGroup": 0},
        "containers": [
            {
                "name": "rich",
                "image": "busybox",
                "command": ["sleep", "100"],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a", "optional": True}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
                    {"name": "R", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                ],
                "envFrom": [
                    {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "creds", "optional": True}},
                ],
                "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "readinessProbe": {
                    "httpGet": {
                        "path": "/healthz",
                        "port": "http",
                        "scheme": "HTTP",
                        "httpHeaders": [{"name": "X", "value": "y"}],
                    },
                    "periodSeconds": 2,
                    "failureThreshold": 3,
                },
                "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 1, "timeoutSeconds": 2},
                "startupProbe": {"exec": {"command": ["true"]}, "successThreshold": 1},
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}}},
                "volumeMounts": [
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "cfg", "mountPath": "/cfg", "readOnly": True, "subPath": "a.txt"},
                ],
                "securityContext": {
                    "runAsUser": 0,
                    "privileged": False,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
                "workingDir": "/tmp",
                "imagePullPolicy": "IfNotPresent",
                "stdin": True,
                "tty": True,
            }
        ],
    }
}


def missing(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` lacks or contradicts ``expected`` (nulls in ``expected`` mean "unset")."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        return [
            problem
            for key, value in expected.items()
            if value is not None
            for problem in (
                missing(value, actual[key], f"{path}.{key}") if key in actual else [f"{path}.{key}: missing"]
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: {actual!r} != {expected!r}"]
        return [
            problem
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for problem in missing(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]


def create_like_dry_run(api: Cluster, *args: str, get: tuple[str, ...], namespaced: bool = True) -> dict[str, Any]:
    """Run ``args`` with ``--dry-run=client -o json``, then for real; the stored object must contain the preview."""
    ns = ("-n", NS) if namespaced else ()
    preview = json.loads(api.kubectl(*ns, *_with_dry_run(args)).stdout)
    api.kubectl(*ns, *args)
    stored = json.loads(api.kubectl(*ns, "get", *get, "-o", "json").stdout)
    problems = missing(preview, stored)
    assert not problems, f"kubectl {' '.join(args)}: stored object differs from kubectl's own preview: {problems}"
    return stored


def _with_dry_run(args: tuple[str, ...]) -> tuple[str, ...]:
    """The dry-run flags go before a ``--`` (anything after it is the container's command)."""
    flags = ("--dry-run=client", "-o", "json")
    if "--" in args:
        at = args.index("--")
        return (*args[:at], *flags, *args[at:])
    return (*args, *flags)


def test_kubectl_create_subcommands_store_what_they_preview(api: Cluster, tmp_path: Path) -> None:
    create_like_dry_run(api, "create", "namespace", NS, get=("namespace", NS), namespaced=False)
    deployment = create_like_dry_run(
        api,
        "create", "deployment", "web", "--image=busybox", "--replicas=3", "--port=8080", "--", "sleep", "3600",
        get=("deployment", "web"),
    )  # fmt: skip
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 3 and container["command"] == ["sleep", "3600"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    job = create_like_dry_run(api, "create", "job", "once", "--image=busybox", "--", "echo", "hi", get=("job", "once"))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    settings = tmp_path / "app.conf"
    settings.write_text("mode = fast\nlevel = 3\n")
    config = create_like_dry_run(
        api, "create", "configmap", "cfg", "--from-literal=a=b", f"--from-file={settings}", get=("configmap", "cfg")
    )
    assert config["data"] == {"a": "b", "app.conf": "mode = fast\nlevel = 3\n"}
    secret = create_like_dry_run(
        api, "create", "secret", "generic", "creds", "--from-literal=user=admin", get=("secret", "creds")
    )
    assert secret["data"] == {"user": "YWRtaW4="} and secret["type"] == "Opaque"
    service = create_like_dry_run(api, "create", "service", "clusterip", "front", "--tcp=80:8080", get=("svc", "front"))
    assert service["spec"]["ports"][0]["targetPort"] == 8080 and service["spec"]["selector"] == {"app": "front"}
    nodeport = create_like_dry_run(api, "create", "service", "nodeport", "edge", "--tcp=81:8081", get=("svc", "edge"))
    assert nodeport["spec"]["type"] == "NodePort" and nodeport["spec"]["ports"][0]["nodePort"] > 0
    create_like_dry_run(api, "create", "serviceaccount", "robot", get=("serviceaccount", "robot"))
    role = create_like_dry_run(
        api, "create", "role", "reader", "--verb=get,list", "--resource=pods", get=("role", "reader")
    )
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    binding = create_like_dry_run(
        api, "create", "rolebinding", "read", "--role=reader", "--user=bob", get=("rolebinding", "read")
    )
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]
    create_like_dry_run(
        api, "create", "clusterrole", "node-reader", "--verb=get", "--resource=nodes",
        get=("clusterrole", "node-reader"), namespaced=False,
    )  # fmt: skip
    create_like_dry_run(
        api, "create", "clusterrolebinding", "node-read", "--clusterrole=node-reader", "--user=bob",
        get=("clusterrolebinding", "node-read"), namespaced=False,
    )  # fmt: skip


def test_kubectl_run_and_expose(api: Cluster) -> None:
    """kubectl 1.32 sends these two as JSON (not typed clients); they must keep working all the same."""
    api.kubectl("create", "namespace", NS)
    pod = create_like_dry_run(
        api,
        "run", "shell", "--image=busybox", "--port=80", "--env=MODE=fast", "--env=LEVEL=3", "--labels=app=shell,tier=x",
        "--restart=Never", "--command", "--", "sh", "-c", "echo hi && sleep 1",
        get=("pod", "shell"),
    )  # fmt: skip
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "echo hi && sleep 1"]
    assert container["env"] == [{"name": "MODE", "value": "fast"}, {"name": "LEVEL", "value": "3"}]
    assert pod["metadata"]["labels"] == {"app": "shell", "tier": "x"} and pod["spec"]["restartPolicy"] == "Never"
    api.kubectl("-n", NS, "create", "deployment", "web", "--image=busybox", "--port=8080")
    service = create_like_dry_run(
        api, "expose", "deployment", "web", "--name=web-np", "--port=80", "--target-port=8080", "--type=NodePort",
        get=("service", "web-np"),
    )  # fmt: skip
    port = service["spec"]["ports"][0]
    assert service["spec"]["type"] == "NodePort" and service["spec"]["selector"] == {"app": "web"}
    assert port["port"] == 80 and port["targetPort"] == 8080 and 30000 <= port["nodePort"] <= 32767


def test_drain_without_eviction_deletes_bound_pods_and_can_i_still_answers(api: Cluster) -> None:
    api.kubectl("create", "namespace", NS)
    api.kubectl("create", "-f", "-", input=json.dumps(NODE))
    api.kubectl("-n", NS, "run", "bound", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    # The binding goes in protobuf too, as the scheduler's client-go would send it.
    body = envelope(ld(1, ld(1, "bound") + ld(3, NS)) + ld(2, ld(1, "Node") + ld(3, "n1")), kind="Binding")
    with api.http() as http:
        answer = http.post(
            f"/api/v1/namespaces/{NS}/pods/bound/binding",
            content=body,
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        )
    assert answer.status_code == 201, answer.text
    assert api.kubectl("-n", NS, "get", "pod", "bound", "-o", "jsonpath={.spec.nodeName}").stdout == "n1"
    # A node debugging pod: typed client, protobuf, host namespaces and a hostPath volume.
    debug = api.kubectl("-n", NS, "debug", "node/n1", "--image=busybox", "--", "true").stdout
    debugger = debug.split("Creating debugging pod ")[1].split()[0]
    spec = api.kubectl_json("-n", NS, "get", "pod", debugger)["spec"]
    assert spec["nodeName"] == "n1" and spec["hostPID"] is True and spec["hostNetwork"] is True
    assert spec["volumes"][0]["hostPath"]["path"] == "/" and spec["tolerations"] == [{"operator": "Exists"}]
    drained = api.kubectl(
        "drain", "n1", "--disable-eviction", "--force", "--grace-period=0", "--timeout=20s", timeout=40
    )
    assert "pod/bound deleted" in drained.stdout and f"pod/{debugger} deleted" in drained.stdout
    assert "node/n1 drained" in drained.stdout
    wait_for(lambda: not api.kubectl("-n", NS, "get", "pods", "-o", "name").stdout.strip(), timeout=10)
    assert api.kubectl("get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}").stdout == "true"
    assert api.kubectl("auth", "can-i", "create", "deployments", "-n", NS).stdout.strip() == "yes"
    assert api.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"


def test_rich_pod_spec_survives_a_protobuf_round_trip_and_more_create_variants(api: Cluster) -> None:
    """``kubectl debug --copy-to`` copies a pod through the typed client: the whole PodSpec goes as protobuf."""
    api.kubectl("create", "namespace", NS)
    rich = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rich", "labels": {"run": "rich"}}}
    api.kubectl("-n", NS, "create", "-f", "-", input=json.dumps({**rich, **RICH_OVERRIDES}))  # JSON
    original = api.kubectl_json("-n", NS, "get", "pod", "rich")["spec"]
    api.kubectl(
        "-n", NS, "debug", "rich", "--copy-to=rich-copy", "--image=busybox", "--container=dbg", "--keep-liveness",
        "--keep-readiness", "--keep-startup", "--attach=false", "--", "sleep", "1",
    )  # fmt: skip
    copy = api.kubectl_json("-n", NS, "get", "pod", "rich-copy")["spec"]
    assert not missing(original, copy | {"containers": copy["containers"][:1]})
    assert copy["containers"][1]["name"] == "dbg" and copy["containers"][1]["command"] == ["sleep", "1"]
    assert copy["terminationGracePeriodSeconds"] == 0 and copy["automountServiceAccountToken"] is False
    assert copy["securityContext"] == {"runAsUser": 1000, "runAsNonRoot": True, "fsGroup": 0}
    assert copy["volumes"][1]["configMap"] == {
        "name": "cfg", "items": [{"key": "a", "path": "a.txt"}], "defaultMode": 420, "optional": True
    }  # fmt: skip
    assert copy["tolerations"][0]["tolerationSeconds"] == 30
    main = copy["containers"][0]
    assert main["readinessProbe"]["httpGet"]["port"] == "http" and main["livenessProbe"]["tcpSocket"]["port"] == 8080
    assert main["resources"]["limits"] == {"cpu": "1", "memory": "64Mi"}
    assert main["securityContext"]["runAsUser"] == 0 and main["securityContext"]["privileged"] is False
    variants: list[tuple[tuple[str, ...], tuple[str, ...], bool]] = [
        (("create", "service", "externalname", "ext", "--external-name=example.com"), ("svc", "ext"), True),
        (("create", "service", "clusterip", "headless", "--clusterip=None"), ("svc", "headless"), True),
        (("create", "service", "loadbalancer", "lb", "--tcp=5678:8080"), ("svc", "lb"), True),
        (
            ("create", "secret", "docker-registry", "reg", "--docker-server=r.io", "--docker-username=u",
             "--docker-password=p"),
            ("secret", "reg"),
            True,
        ),
        (("create", "deployment", "multi", "--image=busybox", "--image=nginx"), ("deploy", "multi"), True),
        (
            ("create", "role", "r2", "--verb=get", "--resource=deployments.apps,pods/log", "--resource-name=x"),
            ("role", "r2"),
            True,
        ),
        (("create", "clusterrole", "agg", "--aggregation-rule=a=b"), ("clusterrole", "agg"), False),
        (
            ("create", "clusterrole", "nonres", "--verb=get", "--non-resource-url=/logs/*"),
            ("clusterrole", "nonres"),
            False,
        ),
        (
            ("create", "rolebinding", "rb2", "--clusterrole=view", f"--serviceaccount={NS}:robot", "--group=devs"),
            ("rolebinding", "rb2"),
            True,
        ),
        (("create", "configmap", "blank", "--from-literal=empty="), ("cm", "blank"), True),
        (("expose", "pod", "rich", "--port=80", "--name=rich", "--session-affinity=ClientIP"), ("svc", "rich"), True),
    ]  # fmt: skip
    for args, get, namespaced in variants:
        create_like_dry_run(api, *args, get=get, namespaced=namespaced)
