"""The ``redkube`` client verbs against a real API server (HTTPS, bearer token, kubeconfig).

No kubelet or controllers run: where a verb waits on status (``rollout status``,
``apply --wait``), the test writes that status itself, as a controller would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import yaml

from tests.harness import ROOT, Cluster, wait_for
from tests.manifests import DEPLOYMENT

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "1000"]
"""



def redkube(
    cluster: Cluster, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("REDKUBE_", "KUBECONFIG"))}
    environment["KUBECONFIG"] = str(cluster.identity.kubeconfig)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "services.redkube.main", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environment,
    )


def put_status(cluster: Cluster, path: str, status: dict[str, Any]) -> None:
    with cluster.http() as http:
        obj = http.get(path).json()
        obj["status"] = status
        response = http.put(f"{path}/status", json=obj)
        assert response.status_code == 200, response.text


def test_apply_create_configure_unchanged_and_get(api: Cluster) -> None:
    first = redkube(api, "apply", "-f", "-", input=POD + "---\n" + DEPLOYMENT)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["pod/web created", "deployment.apps/api created", "service/api created"]
    again = redkube(api, "apply", "-f", "-", input=POD)
    assert again.stdout.strip() == "pod/web unchanged"
    # The three-way patch drops what the last manifest had and this one does not (label tier, env B), and keeps
    # what someone else added (label extra).
    api.kubectl("label", "pod", "web", "extra=yes")
    changed = POD.replace("{app: web, tier: front}", "{app: web}").replace("image: busybox", "image: busybox:1.36")
    assert redkube(api, "apply", "-f", "-", input=changed).stdout.strip() == "pod/web configured"
    pod = api.kubectl_json("get", "pod", "web")
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert pod["metadata"]["labels"] == {"app": "web", "extra": "yes"}
    # kubectl agrees the object matches the manifest (and reads our last-applied record without a warning).
    interop = api.kubectl("apply", "-f", "-", input=changed)
    assert interop.stdout.strip() == "pod/web unchanged" and "warning" not in interop.stderr
    with_env = DEPLOYMENT.replace(
        "        image: python:3.11\n",
        '        image: python:3.11\n        env: [{name: A, value: "1"}, {name: B, value: "2"}]\n',
    )
    assert "deployment.apps/api configured" in redkube(api, "apply", "-f", "-", input=with_env).stdout
    fewer = with_env.replace('{name: A, value: "1"}, {name: B, value: "2"}', '{name: A, value: "3"}')
    assert "deployment.apps/api configured" in redkube(api, "apply", "-f", "-", input=fewer).stdout
    container = api.kubectl_json("get", "deploy", "api")["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "A", "value": "3"}]


def test_get_tables_and_formats(api: Cluster) -> None:
    api.kubectl("apply", "-f", "-", input=POD + "---\n" + DEPLOYMENT)
    table = redkube(api, "get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:3] == ["web", "0/1", "Pending"]
    wide = redkube(api, "get", "pods", "-o", "wide").stdout.splitlines()[0]
    assert "NODE" in wide and "NOMINATED NODE" in wide
    assert redkube(api, "get", "deploy", "api", "-o", "name").stdout.strip() == "deployment.apps/api"
    assert yaml.safe_load(redkube(api, "get", "pod", "web", "-o", "yaml").stdout)["metadata"]["name"] == "web"
    listed = json.loads(redkube(api, "get", "svc", "-o", "json").stdout)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["api"]
    assert redkube(api, "get", "pods", "-l", "app=nothing").stdout == ""
    everywhere = redkube(api, "get", "pods", "-A").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"] and everywhere[1].split()[:2] == ["default", "web"]
    both = redkube(api, "get", "deploy,svc").stdout
    assert "deployment.apps/api" in both and "service/api" in both


def test_errors_read_like_kubectl_with_exit_codes(api: Cluster) -> None:
    missing = redkube(api, "get", "pod", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    wrong = redkube(api, "get", "foos")
    assert wrong.returncode == 1 and wrong.stderr.strip() == 'error: the server doesn\'t have a resource type "foos"'
    malformed = redkube(api, "apply", "-f", "-", input="kind: Pod\nmetadata: {name: x\n")
    assert malformed.returncode == 1 and "error parsing STDIN" in malformed.stderr
    invalid = redkube(api, "apply", "-f", "-", input=POD.replace("name: main", "name: Main_1"))
    assert invalid.returncode == 1
    assert 'Error from server (Invalid): error when creating "STDIN"' in invalid.stderr
    assert "spec.containers[0].name: Invalid value" in invalid.stderr
    assert api.kubectl("get", "pods", "-o", "name").stdout == ""
    usage = redkube(api, "scale", "deploy/x")
    assert usage.returncode == 2  # argparse: --replicas is required
    nowhere = redkube(api, "get", "pods", env={"KUBECONFIG": str(api.home / "absent")})
    assert nowhere.returncode == 1 and "cannot read kubeconfig" in nowhere.stderr
    config = yaml.safe_load(api.identity.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "wrong"
    (api.home / "bad-token").write_text(yaml.safe_dump(config))
    denied = redkube(api, "get", "pods", "--kubeconfig", str(api.home / "bad-token"))
    assert denied.returncode == 1
    assert denied.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    (api.home / "no-server").write_text(yaml.safe_dump(config))
    refused = redkube(api, "get", "pods", "--kubeconfig", str(api.home / "no-server"))
    assert refused.returncode == 1 and "The connection to the server 127.0.0.1:1 was refused" in refused.stderr


def test_describe_delete_and_cascade(api: Cluster) -> None:
    redkube(api, "apply", "-f", "-", input=POD + "---\n" + DEPLOYMENT)
    uid = api.kubectl_json("get", "pod", "web")["metadata"]["uid"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": uid},
        "reason": "Scheduled",
        "message": "Successfully assigned default/web to n1",
        "type": "Normal",
        "source": {"component": "default-scheduler"},
    }
    api.kubectl("create", "-f", "-", input=json.dumps(event))
    described = redkube(api, "describe", "pod", "web")
    assert described.returncode == 0, described.stderr
    for fragment in ("Name:", "web", "Containers:", "busybox", "Events:", "Scheduled", "default-scheduler"):
        assert fragment in described.stdout
    replicas = [
        line for line in redkube(api, "describe", "deploy", "api").stdout.splitlines() if line.startswith("Replicas:")
    ]
    assert replicas and replicas[0].split()[1:3] == ["2", "desired"]
    assert "app=api" in redkube(api, "describe", "svc", "api").stdout

    orphaned = redkube(api, "delete", "deployment", "api", "--cascade=orphan")
    assert orphaned.stdout.strip() == 'deployment.apps "api" deleted'
    assert api.kubectl_json("get", "deploy", "api")["metadata"]["finalizers"] == ["orphan"]
    assert redkube(api, "delete", "pod/web").stdout.strip() == 'pod "web" deleted'
    assert redkube(api, "delete", "-f", "-", input=DEPLOYMENT.split("---")[1]).stdout.strip() == 'service "api" deleted'
    again = redkube(api, "delete", "pod", "web")
    assert again.returncode == 1 and 'pods "web" not found' in again.stderr
    assert redkube(api, "delete", "pod", "web", "--ignore-not-found").returncode == 0


def test_scale_and_rollout_status(api: Cluster) -> None:
    redkube(api, "apply", "-f", "-", input=DEPLOYMENT)
    scaled = redkube(api, "scale", "deployment/api", "--replicas", "3")
    assert scaled.stdout.strip() == "deployment.apps/api scaled"
    deployment = api.kubectl_json("get", "deploy", "api")
    assert deployment["spec"]["replicas"] == 3 and deployment["metadata"]["generation"] == 2
    assert redkube(api, "scale", "pod/web", "--replicas", "3").returncode == 1

    path = "/apis/apps/v1/namespaces/default/deployments/api"
    pending = redkube(api, "rollout", "status", "deployment/api", "--timeout", "1")
    assert pending.returncode == 1
    assert "Waiting for deployment spec update to be observed..." in pending.stdout
    assert "timed out" in pending.stderr

    def progress() -> None:
        put_status(api, path, {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 1})
        wait_for(lambda: watcher.poll() is not None or "1 out of 3" in "".join(lines), timeout=20, message="progress")
        put_status(api, path, {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})

    environment = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_")}
    environment["KUBECONFIG"] = str(api.identity.kubeconfig)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "services.redkube.main", "rollout", "status", "deploy/api", "--timeout", "25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environment,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    progress()
    assert watcher.wait(timeout=30) == 0
    reader.join(timeout=5)
    text = "".join(lines)
    assert 'Waiting for deployment "api" rollout to finish: 1 out of 3 new replicas have been updated...' in text
    assert 'deployment "api" successfully rolled out' in text

    put_status(
        api,
        path,
        {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
        },
    )
    failed = redkube(api, "rollout", "status", "deployment/api")
    assert failed.returncode == 1 and 'deployment "api" exceeded its progress deadline' in failed.stderr


def test_apply_wait_for_pod_running(api: Cluster) -> None:
    path = "/api/v1/namespaces/default/pods/web"

    def run_pod() -> None:
        with api.http() as http:
            wait_for(lambda: http.get(path).status_code == 200, timeout=20, message="pod created")
        put_status(
            api,
            path,
            {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "podIP": "127.1.0.5"},
        )

    starter = threading.Thread(target=run_pod, daemon=True)
    starter.start()
    applied = redkube(api, "apply", "-f", "-", "--wait", "--timeout", "25", input=POD)
    starter.join(timeout=5)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[0] == "pod/web created"
    assert 'pod "web" is running' in applied.stdout


def test_nodes_summary_and_logs(api: Cluster) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    api.kubectl("create", "-f", "-", input=json.dumps(node))
    bound = yaml.safe_load(POD)
    bound["spec"]["nodeName"] = "n1"
    bound["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}}
    api.kubectl("create", "-f", "-", input=json.dumps(bound))
    out = redkube(api, "nodes").stdout.splitlines()
    assert out[0].split()[:3] == ["NODE", "STATUS", "PODS"]
    assert out[1].split() == ["n1", "Ready", "1/110", "500m/2000m", "25%", "1Gi/4Gi", "25%"]

    key = api.keys.logs("default", "web", "main")
    for n in range(5):
        api.redis.xadd(key, {"line": f"line {n}"})
    logs = redkube(api, "logs", "web", "--tail", "2")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "line 3\nline 4\n"
    api.redis.xadd(key, {"eof": "1"})
    assert redkube(api, "logs", "web", "-f").stdout.splitlines()[-1] == "line 4"
    bad = redkube(api, "logs", "web", "-c", "other")
    assert bad.returncode == 1 and "container other is not valid for pod web" in bad.stderr


def test_get_watch_prints_changes(api: Cluster) -> None:
    redkube(api, "apply", "-f", "-", input=POD)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_")}
    environment["KUBECONFIG"] = str(api.identity.kubeconfig)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "services.redkube.main", "get", "pods", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environment,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split()[0] == "NAME"
        assert watcher.stdout.readline().split()[0] == "web"
        api.kubectl("delete", "pod", "web")
        wait_for(lambda: watcher.stdout.readline().split()[0] == "web", timeout=20, message="watch row")  # type: ignore[union-attr]
    finally:
        watcher.kill()
        watcher.wait()
