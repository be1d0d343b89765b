"""The real kubectl against a real API server: a table of scenarios, easy to extend.

Only the API server runs (no kubelet, scheduler or controllers): these check what the
API itself answers. Each scenario gets a namespace of its own (``{ns}``) and a node
name of its own (``{node}``) on one shared API server, and is a list of steps: kubectl
arguments, optional stdin, the exit code, and fragments expected (or forbidden) in
stdout and stderr. Checking the cluster's state afterwards is just another step
(``get … -o jsonpath=…``).

A scenario that fails because of an API-server bug is marked ``xfail(strict=True)``
with the reason, so it shows up and turns red once the bug is fixed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import Cluster


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    input: str | None = None
    rc: int = 0
    out: tuple[str, ...] = ()
    err: tuple[str, ...] = ()
    no_out: tuple[str, ...] = ()
    no_err: tuple[str, ...] = ("warning",)
    namespaced: bool = True  # add ``-n {ns}``
    editor: str | None = None  # a sed expression KUBE_EDITOR applies to the file


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    xfail: str | None = None


def kubectl(*args: str, **kw: object) -> Step:
    return Step(args=args, **kw)  # type: ignore[arg-type]


# --- manifests -----------------------------------------------------------------------

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}, tier: {tier}}}
spec:
  containers:
  - name: main
    image: {image}
    command: ["sleep", "1000"]
    ports: [{{containerPort: 80}}]
    resources: {{requests: {{cpu: 100m, memory: 32Mi}}}}
"""


def pod(name: str = "web", *, tier: str = "front", image: str = "busybox", node: str | None = None) -> str:
    text = POD.format(name=name, tier=tier, image=image)
    return text + (f"  nodeName: {node}\n" if node else "")


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
      - name: api
        image: python:3.11
        env: [{name: MODE, value: one}]
        ports: [{containerPort: 8080, name: http}]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
"""

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: busybox, command: ["true"]}]
"""

REPLICASET = """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: spare
spec:
  replicas: 3
  selector:
    matchLabels: {app: spare}
  template:
    metadata:
      labels: {app: spare}
    spec:
      containers: [{name: spare, image: busybox}]
"""

ENDPOINTS = """
apiVersion: v1
kind: Endpoints
metadata: {name: manual}
subsets:
- addresses: [{ip: 127.40.0.1}]
  ports: [{port: 80}]
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: http}]
"""

NODE = """
apiVersion: v1
kind: Node
metadata:
  name: {node}
  labels: {kubernetes.io/hostname: {node}}
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  addresses: [{type: InternalIP, address: 127.0.0.1}]
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: kubelet is posting ready status}]
"""

EVENT = """
apiVersion: v1
kind: Event
metadata:
  name: web.1
involvedObject: {kind: Pod, name: web, namespace: "{ns}", uid: "UID"}
reason: Scheduled
message: Successfully assigned {ns}/web to somewhere
type: Normal
source: {component: default-scheduler}
"""

CHANGED_DEPLOYMENT = (
    DEPLOYMENT.replace("python:3.11", "python:3.12")
    .replace("value: one", "value: two")
    .replace("emptyDir: {}", "emptyDir: {medium: Memory}")
    .replace("mountPath: /scratch", "mountPath: /data")
)

SETUP_NODE = kubectl("create", "-f", "-", input=NODE, namespaced=False)

SCENARIOS: list[Scenario] = [
    # --- get ----------------------------------------------------------------------------
    Scenario(
        "get-wide",
        (
            SETUP_NODE,
            kubectl("create", "-f", "-", input=pod(node="{node}")),
            kubectl("get", "pods", out=("NAME", "READY", "STATUS", "RESTARTS", "AGE", "web", "0/1", "Pending")),
            kubectl("get", "pods", "-o", "wide", out=("IP", "NODE", "NOMINATED NODE", "READINESS GATES", "{node}")),
            kubectl(
                "get", "nodes", "{node}", "-o", "wide", out=("INTERNAL-IP", "127.0.0.1", "Ready"), namespaced=False
            ),
        ),
    ),
    Scenario(
        "get-formats",
        (
            kubectl("create", "-f", "-", input=pod()),
            kubectl("get", "pod", "web", "-o", "yaml", out=("kind: Pod", "name: web", "image: busybox")),
            kubectl("get", "pods", "-o", "json", out=('"kind": "List"', '"name": "web"')),
            kubectl("get", "pods", "-o", "name", out=("pod/web",)),
            kubectl("get", "pods", "-o", "jsonpath={.items[*].spec.containers[0].image}", out=("busybox",)),
            kubectl(
                "get",
                "pods",
                "-o",
                "custom-columns=NAME:.metadata.name,CPU:.spec.containers[0].resources.requests.cpu",
                out=("NAME", "CPU", "web", "100m"),
            ),
        ),
    ),
    Scenario(
        "get-selectors",
        (
            kubectl("create", "-f", "-", input=pod("web") + "---\n" + pod("db", tier="back")),
            kubectl("get", "pods", "-l", "tier=back", "-o", "name", out=("pod/db",), no_out=("pod/web",)),
            kubectl("get", "pods", "-l", "tier in (front)", "-o", "name", out=("pod/web",), no_out=("pod/db",)),
            kubectl("get", "pods", "--field-selector", "metadata.name=db", "-o", "name", out=("pod/db",)),
            kubectl("get", "pods", "--field-selector", "status.phase=Pending", "-o", "name", out=("pod/db", "pod/web")),
            kubectl("get", "pods", "-A", "-l", "tier=back", out=("NAMESPACE", "{ns}", "db"), namespaced=False),
            kubectl(
                "get",
                "pods",
                "--field-selector",
                "spec.image=x",
                rc=1,
                err=("field label not supported: spec.image",),
            ),
        ),
    ),
    Scenario(
        "get-namespaces-and-events",
        (
            kubectl("get", "namespaces", "{ns}", out=("STATUS", "Active"), namespaced=False),
            kubectl("create", "-f", "-", input=EVENT.replace('uid: "UID"', 'uid: "x"')),
            kubectl("get", "events", out=("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", "pod/web", "Scheduled")),
        ),
    ),
    Scenario(
        "get-wide-workloads",
        (
            kubectl("create", "-f", "-", input=DEPLOYMENT + "---\n" + SERVICE + "---\n" + JOB + "---\n" + REPLICASET),
            kubectl(
                "get",
                "deploy",
                "-o",
                "wide",
                out=(
                    "READY",
                    "UP-TO-DATE",
                    "AVAILABLE",
                    "CONTAINERS",
                    "IMAGES",
                    "SELECTOR",
                    "0/2",
                    "python:3.11",
                    "app=api",
                ),
            ),
            kubectl(
                "get", "rs", "-o", "wide", out=("DESIRED", "CURRENT", "READY", "CONTAINERS", "spare", "3", "app=spare")
            ),
            kubectl(
                "get",
                "svc",
                "-o",
                "wide",
                out=("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SELECTOR", "80/TCP", "app=api"),
            ),
            kubectl(
                "get",
                "jobs",
                "-o",
                "wide",
                out=("STATUS", "COMPLETIONS", "DURATION", "Running", "0/2", "batch.kubernetes.io/controller-uid="),
            ),
            kubectl(
                "get",
                "all",
                "-o",
                "name",
                out=("deployment.apps/api", "replicaset.apps/spare", "service/api", "job.batch/once"),
            ),
        ),
    ),
    Scenario(
        "get-events-wide",
        (
            kubectl(
                "create", "-f", "-", input=EVENT.replace('uid: "UID"', 'uid: "x", fieldPath: "spec.containers{main}"')
            ),
            kubectl(
                "get",
                "events",
                "-o",
                "wide",
                out=(
                    "SUBOBJECT",
                    "SOURCE",
                    "FIRST SEEN",
                    "COUNT",
                    "NAME",
                    "default-scheduler",
                    "spec.containers{main}",
                    "web.1",
                ),
            ),
            kubectl("get", "events", "--field-selector", "reason=Scheduled", "-o", "name", out=("event/web.1",)),
        ),
    ),
    # --- describe ---------------------------------------------------------------------------
    Scenario(
        "describe-pod-with-events",
        (
            SETUP_NODE,
            kubectl("create", "-f", "-", input=pod(node="{node}")),
            # kubectl selects events by the pod's uid too: run_step writes the real one for "UID".
            kubectl("create", "-f", "-", input=EVENT),
            kubectl(
                "describe",
                "pod",
                "web",
                out=(
                    "Name:",
                    "web",
                    "Node:",
                    "{node}",
                    "Containers:",
                    "busybox",
                    "Events:",
                    "Scheduled",
                    "Successfully assigned",
                ),
            ),
        ),
    ),
    Scenario(
        "describe-node-deployment-service",
        (
            SETUP_NODE,
            kubectl("create", "-f", "-", input=pod(node="{node}")),
            kubectl(
                "describe",
                "node",
                "{node}",
                out=("Name:", "{node}", "Capacity:", "Allocatable:", "Non-terminated Pods:", "web"),
                namespaced=False,
            ),
            kubectl("create", "-f", "-", input=DEPLOYMENT + "---\n" + SERVICE),
            kubectl(
                "describe",
                "deployment",
                "api",
                out=("Replicas:", "2 desired", "StrategyType:", "RollingUpdate", "python:3.11"),
            ),
            kubectl(
                "describe", "service", "api", out=("Selector:", "app=api", "Type:", "ClusterIP", "Port:", "80/TCP")
            ),
        ),
    ),
    # --- create / apply ---------------------------------------------------------------------
    Scenario(
        "create",
        (
            kubectl("create", "-f", "-", input=pod(), out=("pod/web created",)),
            kubectl(
                "create",
                "-f",
                "-",
                input=pod(),
                rc=1,
                err=("Error from server (AlreadyExists)", 'pods "web" already exists'),
            ),
        ),
    ),
    Scenario(
        "apply-create-configure-unchanged",
        (
            kubectl(
                "apply",
                "-f",
                "-",
                input=DEPLOYMENT + "---\n" + SERVICE,
                out=("deployment.apps/api created", "service/api created"),
            ),
            kubectl(
                "apply",
                "-f",
                "-",
                input=DEPLOYMENT + "---\n" + SERVICE,
                out=("deployment.apps/api unchanged", "service/api unchanged"),
            ),
            kubectl("apply", "-f", "-", input=CHANGED_DEPLOYMENT, out=("deployment.apps/api configured",)),
            kubectl(
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value} "
                "{.spec.template.spec.volumes[0].emptyDir.medium} {.spec.template.spec.containers[0].volumeMounts[*].mountPath}",
                out=("python:3.12 two Memory /data",),
                no_out=("/scratch",),
            ),
            kubectl("apply", "-f", "-", input=DEPLOYMENT, out=("deployment.apps/api configured",)),
            kubectl(
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.template.spec.volumes[0].emptyDir}",
                out=("{}",),
                no_out=("Memory",),
            ),
        ),
    ),
    Scenario(
        "apply-server-side",
        (
            kubectl("apply", "--server-side", "-f", "-", input=pod(), out=("pod/web serverside-applied",)),
            kubectl(
                "apply",
                "--server-side",
                "-f",
                "-",
                input=pod(image="busybox:1.36"),
                out=("pod/web serverside-applied",),
            ),
            kubectl("get", "pod", "web", "-o", "jsonpath={.spec.containers[0].image}", out=("busybox:1.36",)),
        ),
    ),
    Scenario(
        "apply-endpoints",
        (
            kubectl("apply", "-f", "-", input=ENDPOINTS, out=("endpoints/manual created",)),
            kubectl(
                "apply",
                "-f",
                "-",
                input=ENDPOINTS.replace("127.40.0.1", "127.40.0.2"),
                out=("endpoints/manual configured",),
            ),
            kubectl("get", "ep", "manual", out=("127.40.0.2:80",)),
        ),
    ),
    # --- delete -----------------------------------------------------------------------------
    Scenario(
        "delete-cascade",
        (
            kubectl("create", "-f", "-", input=DEPLOYMENT),
            kubectl(
                "delete",
                "deployment",
                "api",
                "--cascade=orphan",
                "--wait=false",
                out=('deployment.apps "api" deleted',),
            ),
            kubectl(
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
                out=('["orphan"]', "T"),
            ),
            kubectl("create", "-f", "-", input=pod()),
            kubectl("delete", "pod", "web", "--cascade=foreground", "--wait=false", out=('pod "web" deleted',)),
            kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.finalizers}", out=('["foregroundDeletion"]',)),
            kubectl("create", "-f", "-", input=pod("gone")),
            kubectl("delete", "-f", "-", input=pod("gone"), out=('pod "gone" deleted',)),
            kubectl("get", "pod", "gone", rc=1, err=('pods "gone" not found',)),
        ),
    ),
    # --- edit / label / annotate / scale ------------------------------------------------------
    Scenario(
        "edit",
        (
            kubectl("create", "-f", "-", input=DEPLOYMENT),
            kubectl(
                "edit", "deployment", "api", editor="s/replicas: 2/replicas: 5/", out=("deployment.apps/api edited",)
            ),
            kubectl("get", "deploy", "api", "-o", "jsonpath={.spec.replicas} {.metadata.generation}", out=("5 2",)),
        ),
    ),
    Scenario(
        "label-annotate",
        (
            kubectl("create", "-f", "-", input=pod()),
            kubectl("label", "pod", "web", "env=prod", out=("pod/web labeled",)),
            kubectl(
                "label",
                "pod",
                "web",
                "env=dev",
                rc=1,
                err=("'env' already has a value (prod), and --overwrite is false",),
            ),
            kubectl("label", "pod", "web", "env=dev", "--overwrite", out=("pod/web labeled",)),
            kubectl("annotate", "pod", "web", "note=hello", out=("pod/web annotated",)),
            kubectl("annotate", "pod", "web", "note=bye", rc=1, err=("--overwrite is false",)),
            kubectl("annotate", "pod", "web", "note-", out=("pod/web annotated",)),
            kubectl(
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.metadata.labels.env} [{.metadata.annotations.note}]",
                out=("dev []",),
            ),
        ),
    ),
    Scenario(
        "scale",
        (
            kubectl("create", "-f", "-", input=DEPLOYMENT),
            kubectl("scale", "deployment/api", "--replicas=4", out=("deployment.apps/api scaled",)),
            kubectl(
                "scale",
                "deployment/api",
                "--replicas=1",
                "--current-replicas=3",
                rc=1,
                err=("Expected replicas to be 3, was 4",),
            ),
            kubectl("get", "deploy", "api", "-o", "jsonpath={.spec.replicas}", out=("4",)),
        ),
    ),
    Scenario(
        "patch-and-dry-run",
        (
            kubectl("create", "-f", "-", input=DEPLOYMENT),
            kubectl("patch", "deploy", "api", "-p", '{"spec":{"replicas":3}}', out=("deployment.apps/api patched",)),
            kubectl(
                "patch",
                "deploy",
                "api",
                "--type=json",
                "-p",
                '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"python:3.13"}]',
                out=("deployment.apps/api patched",),
            ),
            kubectl(
                "patch", "deploy", "api", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"x"}}}', out=("patched",)
            ),
            kubectl(
                "patch",
                "deploy",
                "api",
                "--type=json",
                "-p",
                '[{"op":"test","path":"/spec/replicas","value":9}]',
                rc=1,
                err=("test failed at /spec/replicas",),
            ),
            kubectl(
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.labels.tier}",
                out=("3 python:3.13 x",),
            ),
            kubectl(
                "apply",
                "--dry-run=server",
                "-f",
                "-",
                input=DEPLOYMENT.replace("replicas: 2", "replicas: 7"),
                out=("(server dry run)",),
            ),
            kubectl("create", "--dry-run=client", "-o", "name", "-f", "-", input=pod("ghost"), out=("pod/ghost",)),
            kubectl("get", "deploy", "api", "-o", "jsonpath={.spec.replicas}", out=("3",)),
            kubectl("get", "pod", "ghost", rc=1, err=('pods "ghost" not found',)),
        ),
    ),
    Scenario(
        "delete-by-label",
        (
            kubectl(
                "create", "-f", "-", input=pod("a") + "---\n" + pod("b", tier="back") + "---\n" + pod("c", tier="back")
            ),
            kubectl(
                "delete", "pods", "-l", "tier=back", out=('pod "b" deleted', 'pod "c" deleted'), no_out=('pod "a"',)
            ),
            kubectl("get", "pods", "-o", "name", out=("pod/a",), no_out=("pod/b", "pod/c")),
        ),
    ),
    # --- nodes: cordon, drain ---------------------------------------------------------------
    Scenario(
        "cordon-uncordon",
        (
            SETUP_NODE,
            kubectl("cordon", "{node}", out=("node/{node} cordoned",), namespaced=False),
            kubectl("get", "node", "{node}", out=("Ready,SchedulingDisabled",), namespaced=False),
            kubectl("uncordon", "{node}", out=("node/{node} uncordoned",), namespaced=False),
            kubectl("get", "node", "{node}", "-o", "jsonpath=[{.spec.unschedulable}]", out=("[]",), namespaced=False),
        ),
    ),
    Scenario(
        "drain",
        (
            SETUP_NODE,
            kubectl("create", "-f", "-", input=pod("a", node="{node}") + "---\n" + pod("b", node="{node}")),
            kubectl(
                "drain",
                "{node}",
                "--force",
                "--grace-period=0",
                "--timeout=20s",
                out=("node/{node} cordoned", "evicting pod {ns}/a", "node/{node} drained"),
                no_err=(),
                namespaced=False,
            ),
            kubectl("get", "pods", "-o", "name", no_out=("pod/a", "pod/b")),
            kubectl("get", "node", "{node}", "-o", "jsonpath={.spec.unschedulable}", out=("true",), namespaced=False),
        ),
    ),
    Scenario(
        "drain-without-eviction",
        (
            SETUP_NODE,
            kubectl("create", "-f", "-", input=pod("a", node="{node}")),
            kubectl(
                "drain",
                "{node}",
                "--force",
                "--disable-eviction",
                "--grace-period=0",
                "--timeout=20s",
                out=("node/{node} cordoned", "pod/a deleted", "node/{node} drained"),
                no_err=(),
                namespaced=False,
            ),
            kubectl("get", "pods", "-o", "name", no_out=("pod/a",)),
        ),
    ),
    Scenario(
        "drain-graceful-eviction",
        (
            SETUP_NODE,
            kubectl("create", "-f", "-", input=pod("a", node="{node}")),
            # No kubelet confirms the deletion: the eviction leaves the pod terminating, so drain times out.
            kubectl(
                "drain",
                "{node}",
                "--force",
                "--timeout=3s",
                rc=1,
                out=("node/{node} cordoned", "evicting pod {ns}/a"),
                err=('error when waiting for pod "a" in namespace "{ns}" to terminate',),
                no_err=(),
                namespaced=False,
            ),
            kubectl("get", "pod", "a", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds}", out=("30",)),
            kubectl("get", "pod", "a", out=("Terminating",)),
        ),
    ),
    # --- discovery --------------------------------------------------------------------------
    Scenario(
        "discovery",
        (
            kubectl(
                "api-resources", out=("pods", "po", "deployments", "apps/v1", "true", "Deployment"), namespaced=False
            ),
            kubectl(
                "api-resources",
                "--namespaced=false",
                "-o",
                "name",
                out=("nodes", "namespaces"),
                no_out=("pods",),
                namespaced=False,
            ),
            kubectl("api-versions", out=("v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1"), namespaced=False),
            kubectl("version", out=("Server Version: v1.32.0-redkube",), namespaced=False),
            kubectl(
                "cluster-info", out=("Kubernetes control plane is running at https://127.0.0.1",), namespaced=False
            ),
            kubectl(
                "explain",
                "pods.spec.containers",
                out=("KIND:       Pod", "FIELD: containers <[]Container>", "image", "resources"),
                namespaced=False,
            ),
            kubectl("explain", "deployment.spec.template.spec.volumes.emptyDir", out=("medium",), namespaced=False),
            kubectl(
                "explain", "pods.spec.nope", rc=1, err=('field "nope" does not exist',), no_err=(), namespaced=False
            ),
        ),
    ),
    Scenario(
        "create-imperative",
        (
            kubectl("create", "namespace", "{ns}-extra", out=("namespace/{ns}-extra created",), namespaced=False),
            kubectl("create", "deployment", "web", "--image=busybox", out=("deployment.apps/web created",)),
        ),
    ),
    Scenario(
        "auth-can-i",
        (
            kubectl("auth", "can-i", "create", "pods", out=("yes",)),
            kubectl("auth", "can-i", "delete", "nodes", out=("yes",), namespaced=False),
        ),
    ),
    # --- errors: kubectl's wording, non-zero exit, nothing changed ----------------------------
    Scenario(
        "errors",
        (
            kubectl("create", "-f", "-", input=pod()),
            kubectl("get", "pod", "nope", rc=1, err=('Error from server (NotFound): pods "nope" not found',)),
            kubectl("get", "foos", rc=1, err=('error: the server doesn\'t have a resource type "foos"',)),
            kubectl(
                "apply",
                "-f",
                "-",
                input="apiVersion: v1\nkind: Pod\nmetadata: {name: x\n",
                rc=1,
                err=("error converting YAML to JSON",),
            ),
            kubectl(
                "apply",
                "-f",
                "-",
                input=pod("bad").replace("name: main", "name: Main_1"),
                rc=1,
                err=('The Pod "bad" is invalid', "spec.containers[0].name: Invalid value"),
            ),
            kubectl(
                "apply",
                "-f",
                "-",
                input=pod("bad").replace("    image: busybox", "    image: busybox\n    imagee: x"),
                rc=1,
                err=('unknown field "spec.containers[0].imagee"',),
            ),
            kubectl("get", "pod", "bad", rc=1, err=('pods "bad" not found',)),
            kubectl(
                "replace",
                "-f",
                "-",
                input=pod(image="busybox:2").replace("  name: web\n", '  name: web\n  resourceVersion: "1"\n'),
                rc=1,
                err=("Error from server (Conflict)", "the object has been modified"),
            ),
            kubectl(
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.containers[0].image}",
                out=("busybox",),
                no_out=("busybox:2",),
            ),
        ),
    ),
]


# --- runner ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One API server for every scenario of this module (each scenario has its own namespace)."""
    cluster = Cluster(redis_url, tmp_path_factory.mktemp("scenarios") / "home")
    cluster.start_apiserver()
    yield cluster
    cluster.stop()


def _editor(tmp: Path, expression: str) -> str:
    script = tmp / "editor.sh"
    script.write_text(f'#!/bin/sh\nsed -i {json.dumps(expression)} "$1"\n')
    script.chmod(0o755)
    return str(script)


def run_step(cluster: Cluster, step: Step, *, ns: str, node: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    def fill(text: str) -> str:
        return text.replace("{ns}", ns).replace("{node}", node)

    args = [fill(a) for a in step.args]
    if step.namespaced:
        args += ["-n", ns]
    env = dict(os.environ)
    if step.editor:
        env["KUBE_EDITOR"] = _editor(tmp, step.editor)
    text = fill(step.input) if step.input is not None else None
    if text is not None and "UID" in text:
        uid = cluster.kubectl("get", "pod", "web", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
        text = text.replace("UID", uid)
    command = ["kubectl", "--kubeconfig", str(cluster.identity.kubeconfig), "--cache-dir", str(cluster.cache_dir)]
    return subprocess.run([*command, *args], input=text, capture_output=True, text=True, timeout=60, env=env)


def check_step(result: subprocess.CompletedProcess[str], step: Step, *, ns: str, node: str) -> None:
    def fill(text: str) -> str:
        return text.replace("{ns}", ns).replace("{node}", node)

    where = f"kubectl {' '.join(result.args[5:])}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == step.rc, f"exit {result.returncode}, expected {step.rc}: {where}"
    for fragment in map(fill, step.out):
        assert fragment in result.stdout, f"{fragment!r} missing from stdout: {where}"
    for fragment in map(fill, step.err):
        assert fragment in result.stderr, f"{fragment!r} missing from stderr: {where}"
    for fragment in map(fill, step.no_out):
        assert fragment not in result.stdout, f"{fragment!r} unexpected in stdout: {where}"
    for fragment in map(fill, step.no_err):
        assert fragment not in result.stderr, f"{fragment!r} unexpected in stderr: {where}"


def _params() -> list[object]:
    return [
        pytest.param(s, id=s.name, marks=[pytest.mark.xfail(strict=True, reason=s.xfail)] if s.xfail else [])
        for s in SCENARIOS
    ]


@pytest.mark.parametrize("scenario", _params())
def test_kubectl_scenario(scenario: Scenario, shared_api: Cluster, tmp_path: Path) -> None:
    ns = f"s-{scenario.name}"[:50]
    node = f"{ns}-node"
    shared_api.kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    for step in scenario.steps:
        result = run_step(shared_api, step, ns=ns, node=node, tmp=tmp_path)
        check_step(result, step, ns=ns, node=node)


def test_scenarios_have_unique_names() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))


if __name__ == "__main__":  # list the scenarios: python -m tests.e2e.test_kubectl_scenarios
    sys.stdout.write("\n".join(s.name for s in SCENARIOS) + "\n")
