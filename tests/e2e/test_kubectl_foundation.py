"""The real kubectl against a real API server: everyday verbs of the foundation."""

from __future__ import annotations

import subprocess

from tests.harness import Cluster, wait_for
from tests.manifests import DEPLOYMENT

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "1000"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
"""



def test_apply_get_describe_delete(api: Cluster) -> None:
    assert api.kubectl("apply", "-f", "-", input=POD).stdout.strip() == "pod/web created"
    assert api.kubectl("apply", "-f", "-", input=POD).stdout.strip() == "pod/web unchanged"
    table = api.kubectl("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:3] == ["web", "0/1", "Pending"]
    wide = api.kubectl("get", "pods", "-o", "wide").stdout.splitlines()[0].split()
    assert "NODE" in wide and "IP" in wide
    pod = api.kubectl_json("get", "pod", "web")
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in pod["metadata"]["annotations"]
    changed = POD.replace("busybox", "busybox:1.36")
    assert api.kubectl("apply", "-f", "-", input=changed).stdout.strip() == "pod/web configured"
    assert api.kubectl_json("get", "pod", "web")["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert api.kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.strip() == "pod/web"
    assert (
        api.kubectl(
            "get",
            "pods",
            "-A",
            "--field-selector",
            "metadata.name=web",
            "-o",
            "jsonpath={.items[0].metadata.namespace}",
        ).stdout
        == "default"
    )
    api.kubectl("label", "pod", "web", "tier=front")
    assert api.kubectl_json("get", "pod", "web")["metadata"]["labels"]["tier"] == "front"
    assert "Name:" in api.kubectl("describe", "pod", "web").stdout
    assert api.kubectl("delete", "pod", "web").stdout.strip() == 'pod "web" deleted'
    missing = api.kubectl("get", "pod", "web", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "web" not found'


def test_multi_document_apply_and_scale(api: Cluster) -> None:
    out = api.kubectl("apply", "-f", "-", input=DEPLOYMENT).stdout
    assert "deployment.apps/api created" in out and "service/api created" in out
    svc = api.kubectl("get", "svc", "api").stdout.splitlines()[1].split()
    assert svc[1] == "ClusterIP" and svc[2].startswith("127.96.") and svc[4] == "80/TCP"
    api.kubectl("scale", "deployment/api", "--replicas=4")
    assert api.kubectl_json("get", "deploy", "api")["spec"]["replicas"] == 4
    dup = api.kubectl("create", "-f", "-", input=DEPLOYMENT, check=False)
    assert dup.returncode == 1 and 'deployments.apps "api" already exists' in dup.stderr
    bad = api.kubectl("apply", "-f", "-", input=POD.replace("name: main", "name: Main_1"), check=False)
    assert bad.returncode == 1 and "spec.containers[0].name: Invalid value" in bad.stderr
    unknown = api.kubectl(
        "apply", "-f", "-", input=POD.replace("    image: busybox", "    image: busybox\n    imagee: x"), check=False
    )
    assert unknown.returncode == 1 and 'unknown field "spec.containers[0].imagee"' in unknown.stderr
    api.kubectl("delete", "-f", "-", input=DEPLOYMENT)
    assert api.kubectl("get", "deploy,svc", "-o", "name").stdout.strip() == ""


def test_get_watch_sees_changes(api: Cluster) -> None:
    api.kubectl("apply", "-f", "-", input=POD)
    command = [
        "kubectl",
        "--kubeconfig",
        str(api.identity.kubeconfig),
        "--cache-dir",
        str(api.cache_dir),
        "get",
        "pods",
        "-w",
        "--output-watch-events",
    ]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        lines: list[str] = []

        def listed() -> bool:
            lines.append(watcher.stdout.readline())  # type: ignore[union-attr]
            return lines[-1].startswith("ADDED")

        # kubectl has listed once it prints the pod's row: only then does a change show as an event.
        wait_for(listed, timeout=20, message="kubectl's initial listing")
        api.kubectl("label", "pod", "web", "seen=yes")
        api.kubectl("delete", "pod", "web")

        def deleted() -> bool:
            lines.append(watcher.stdout.readline())  # type: ignore[union-attr]
            return "DELETED" in lines[-1]

        wait_for(deleted, timeout=20, message="DELETED event")
        events = [line.split()[0] for line in lines if line.strip() and not line.startswith("EVENT")]
        assert events[0] == "ADDED" and "MODIFIED" in events and events[-1] == "DELETED"
    finally:
        watcher.kill()
        watcher.wait()


def test_api_resources_and_version(api: Cluster) -> None:
    resources = api.kubectl("api-resources").stdout
    for expected in ("pods", "po", "deployments", "deploy", "jobs", "leases", "namespaces"):
        assert expected in resources
    assert "Server Version: v1.32.0-redkube" in api.kubectl("version").stdout
