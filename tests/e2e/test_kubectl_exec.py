"""The real ``kubectl exec`` (WebSocket, v5.channel.k8s.io) against pods a real kubelet runs:
output, exit codes, stdin, containers, env, RBAC, refusals, and no leftovers when the client dies."""

from __future__ import annotations

import subprocess
from typing import Any

import psutil

from shared import pki
from tests.harness import Cluster, wait_for
from tests.support_kubelet import PY, create, node_cluster, programs, start_kubelet

SLEEPER = [PY, "-c", "import time; time.sleep(600)"]


def two_containers(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "n1",
            "containers": [
                {"name": "main", "image": "busybox", "command": SLEEPER,
                 "env": [{"name": "GREETING", "value": "hello-from-spec"}]},
                {"name": "side", "image": "busybox", "command": SLEEPER,
                 "env": [{"name": "GREETING", "value": "side-car"}], "workingDir": "/tmp"},
            ],
        },
    }


def sleepers(marker: str) -> list[psutil.Process]:
    """The exec'd ``sleep MARKER`` processes (not kubectl, whose arguments carry the marker too)."""
    return [p for p in programs(marker) if p.info.get("cmdline", [""])[0] == "sleep"]


def running(cluster: Cluster, name: str) -> None:
    wait_for(lambda: cluster.kubectl_json("get", "pod", name).get("status", {}).get("phase") == "Running",
             timeout=30, message=f"{name} Running")


def kubectl(cluster: Cluster, *args: str, input: str | None = None, kubeconfig: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
    command = ["kubectl", "--kubeconfig", kubeconfig or str(cluster.identity.kubeconfig),
               "--cache-dir", str(cluster.cache_dir), *args]
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)


def test_exec_output_exit_codes_stdin_containers_and_env(node: Cluster) -> None:
    create(node, two_containers("web"))
    running(node, "web")

    hi = kubectl(node, "exec", "web", "-c", "main", "--", "echo", "hi")
    assert hi.returncode == 0, hi.stderr
    assert hi.stdout == "hi\n"

    failed = kubectl(node, "exec", "web", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert failed.returncode == 3, failed.stderr
    assert failed.stdout == "out\n"
    assert "err\n" in failed.stderr
    assert "command terminated with exit code 3" in failed.stderr

    data = "".join(f"line {i}\n" for i in range(2000))  # ~20 KB through stdin and back
    echoed = kubectl(node, "exec", "-i", "web", "-c", "main", "--", "cat", input=data)
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == data  # stdin's end reached cat, so it exited

    big = kubectl(node, "exec", "web", "-c", "main", "--", "seq", "1", "300000")  # ~2 MB: flow control
    assert big.returncode == 0, big.stderr
    assert big.stdout == "".join(f"{i}\n" for i in range(1, 300001))

    env = kubectl(node, "exec", "web", "-c", "main", "--", "sh", "-c", "echo $GREETING $POD_IP; pwd")
    assert env.returncode == 0, env.stderr
    pod_ip = node.kubectl_json("get", "pod", "web")["status"]["podIP"]
    greeting, ip = env.stdout.splitlines()[0].split()
    assert (greeting, ip) == ("hello-from-spec", pod_ip)

    side = kubectl(node, "exec", "web", "-c", "side", "--", "sh", "-c", "echo $GREETING; pwd")
    assert side.returncode == 0, side.stderr
    assert side.stdout.splitlines() == ["side-car", "/tmp"]  # its env and its workingDir

    unknown = kubectl(node, "exec", "web", "-c", "nope", "--", "true")
    assert unknown.returncode != 0
    assert "container nope is not valid for pod web" in unknown.stderr

    missing = kubectl(node, "exec", "web", "-c", "main", "--", "no-such-program-xyz")
    assert missing.returncode != 0
    assert "no-such-program-xyz" in missing.stderr


def test_exec_refused_for_viewers_and_pending_pods(node: Cluster) -> None:
    create(node, two_containers("web"))
    token = pki.ensure_token(node.identity, "viewer", "viewer", ("viewers",))
    node.processes[0].stop()  # the API server reads the token file at start
    node.api_port = 0
    node.start_apiserver()
    kubeconfig = pki.write_kubeconfig(node.identity, server=node.server, token=token,
                                      path=node.home / "viewer.kubeconfig", user="viewer")
    node.kubectl("create", "clusterrolebinding", "viewers", "--clusterrole", "view", "--group", "viewers")
    running(node, "web")
    wait_for(lambda: kubectl(node, "get", "pod", "web", kubeconfig=str(kubeconfig)).returncode == 0,
             timeout=15, message="the view binding takes effect")
    denied = kubectl(node, "exec", "web", "-c", "main", "--", "echo", "hi", kubeconfig=str(kubeconfig))
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr and 'cannot create resource "pods/exec"' in denied.stderr, denied.stderr
    assert "hi" not in denied.stdout

    # Client certificates authenticate the WebSocket upgrade too (a missed certificate would be a 401).
    cert, key = pki.issue_client_cert(node.identity.pki, user="carol", groups=["viewers"])
    carol = node.home / "carol.kubeconfig"
    carol.write_text(pki.client_kubeconfig(server=node.server, ca_pem=node.identity.ca.read_bytes(), user="carol",
                                           cert_pem=cert, key_pem=key))
    denied = kubectl(node, "exec", "web", "-c", "main", "--", "echo", "hi", kubeconfig=str(carol))
    assert 'User "carol" cannot create resource "pods/exec"' in denied.stderr, denied.stderr
    cert, key = pki.issue_client_cert(node.identity.pki, user="root", groups=["system:masters"])
    root = node.home / "root.kubeconfig"
    root.write_text(pki.client_kubeconfig(server=node.server, ca_pem=node.identity.ca.read_bytes(), user="root",
                                          cert_pem=cert, key_pem=key))
    allowed = kubectl(node, "exec", "web", "-c", "main", "--", "echo", "hi", kubeconfig=str(root))
    assert (allowed.returncode, allowed.stdout) == (0, "hi\n"), allowed.stderr

    pending = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere", "namespace": "default"},
               "spec": {"nodeName": "ghost", "containers": [{"name": "main", "image": "busybox",
                                                               "command": SLEEPER}]}}
    create(node, pending)  # bound to a node that does not exist: stays Pending
    refused = kubectl(node, "exec", "nowhere", "--", "echo", "hi")
    assert refused.returncode != 0
    assert "pod nowhere is not running (phase Pending)" in refused.stderr, refused.stderr


def test_killed_client_leaves_no_process_or_stream(node: Cluster) -> None:
    create(node, two_containers("web"))
    running(node, "web")
    marker = "4242.5"
    client = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(node.identity.kubeconfig), "--cache-dir", str(node.cache_dir),
         "exec", "web", "-c", "main", "--", "sleep", marker],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: sleepers(marker), timeout=20, message="the exec'd sleep runs")
        exec_keys = list(node.redis.scan_iter(match=f"{node.prefix}:exec:n1:*", count=1000))
        assert any(key.endswith(b":alive") for key in exec_keys), exec_keys
    finally:
        client.kill()
        client.wait()
    wait_for(lambda: not sleepers(marker), timeout=20, message="the exec'd sleep is killed")

    def session_keys() -> list[bytes]:
        return [k for k in node.redis.scan_iter(match=f"{node.prefix}:exec:n1:*") if not k.endswith(b":requests")]

    wait_for(lambda: not session_keys(), timeout=20, message="the session's streams are gone")


def test_bad_stream_input_then_pod_deletion_kills_the_command(node: Cluster) -> None:
    create(node, two_containers("web"))
    running(node, "web")
    kubelet = node.processes[-1]
    requests = node.keys.exec_requests("n1")
    session = "ab" * 16
    for listened in ("cd" * 16, session):  # someone listens (a heartbeat), so only the pod's deletion kills
        node.redis.set(node.keys.exec_alive("n1", listened), "1", ex=60)
    for fields in ({"junk": "1"}, {"session": "../../etc"}, {"session": "cd" * 16, "command": "{not json"},
                   {"session": "ef" * 16, "namespace": "default", "pod": "web", "container": "main",
                    "command": '"echo"'},
                   {"session": session, "namespace": "default", "pod": "web", "container": "main",
                    "command": '["sleep", "4343.5"]', "stdin": "1"}):
        node.redis.xadd(requests, fields)
    wait_for(lambda: sleepers("4343.5"), timeout=20, message="the hand-requested sleep runs")
    node.redis.xadd(node.keys.exec_input("n1", session), {"t": "bogus", "d": "x"})
    node.redis.xadd(node.keys.exec_input("n1", session), {"nothing": "here"})
    out = node.keys.exec_output("n1", "cd" * 16)
    wait_for(lambda: node.redis.xrange(out), timeout=10, message="the bad command is answered")
    assert node.redis.xrange(out)[-1][1][b"t"] == b"error"
    assert kubelet.alive()

    marker = "4444.5"
    client = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(node.identity.kubeconfig), "--cache-dir", str(node.cache_dir),
         "exec", "web", "-c", "main", "--", "sleep", marker],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: sleepers(marker), timeout=20, message="the exec'd sleep runs")
        node.kubectl("delete", "pod", "web", "--wait=false")
        wait_for(lambda: not sleepers(marker), timeout=20, message="the exec'd sleep dies with its pod")
        wait_for(lambda: not sleepers("4343.5"), timeout=20, message="the hand-requested sleep too")
        assert client.wait(timeout=20) != 0  # the command was killed: 137
    finally:
        client.kill()
        client.wait()
    assert kubelet.alive()


def test_abandoned_session_is_killed_when_the_heartbeat_lapses(node: Cluster) -> None:
    create(node, two_containers("web"))
    running(node, "web")
    marker = "4545.5"
    client = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(node.identity.kubeconfig), "--cache-dir", str(node.cache_dir),
         "exec", "web", "-c", "main", "--", "sleep", marker],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: sleepers(marker), timeout=20, message="the exec'd sleep runs")
        node.processes[0].kill()  # the API server dies: nobody refreshes the session's heartbeat
        wait_for(lambda: not sleepers(marker), timeout=30, message="the abandoned sleep is killed")
    finally:
        client.kill()
        client.wait()
    wait_for(lambda: not [k for k in node.redis.scan_iter(match=f"{node.prefix}:exec:n1:*:out")], timeout=10,
             message="its output stream is gone")
    node.processes[-1].kill()  # a kubelet without its API server is slow to stop; the test is over


def test_kubectl_cp_both_ways(node: Cluster) -> None:
    create(node, two_containers("web"))
    running(node, "web")
    inside = node.home / "inside"
    inside.mkdir()
    (inside / "report.txt").write_text("from the pod\n" * 1000)
    local = node.home / "copied.txt"
    pulled = kubectl(node, "cp", "-c", "main", f"web:{inside}/report.txt", str(local))
    assert pulled.returncode == 0, pulled.stderr
    assert local.read_text() == "from the pod\n" * 1000

    upload = node.home / "upload.txt"
    upload.write_text("to the pod\n")
    pushed = kubectl(node, "cp", "-c", "main", str(upload), f"web:{inside}/uploaded.txt")
    assert pushed.returncode == 0, pushed.stderr
    assert (inside / "uploaded.txt").read_text() == "to the pod\n"


def test_killed_kubelet_ends_the_session_and_the_command(node: Cluster) -> None:
    create(node, two_containers("web"))
    running(node, "web")
    marker = "4646.5"
    client = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(node.identity.kubeconfig), "--cache-dir", str(node.cache_dir),
         "exec", "web", "-c", "main", "--", "sleep", marker],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: sleepers(marker), timeout=20, message="the exec'd sleep runs")
        node.processes[-1].kill()  # kill -9 the kubelet
        wait_for(lambda: not sleepers(marker), timeout=10, message="the command dies with its kubelet")
        _out, err = client.communicate(timeout=40)
        assert client.returncode != 0
        assert "lost contact with the kubelet of node n1" in err, err
    finally:
        client.kill()
        client.wait()


def test_simulated_runtime_answers_a_clear_error(cluster: Cluster) -> None:
    node_cluster(cluster, "sim")
    start_kubelet(cluster, "sim", "--runtime", "simulated", index=202)
    pod = two_containers("fake")
    pod["spec"]["nodeName"] = "sim"
    create(cluster, pod)
    running(cluster, "fake")
    answer = kubectl(cluster, "exec", "fake", "-c", "main", "--", "echo", "hi")
    assert answer.returncode != 0
    assert "exec is not supported by the simulated runtime of node sim" in answer.stderr, answer.stderr
