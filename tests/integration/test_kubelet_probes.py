"""Probes, init containers and bad input against a real kubelet."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Cluster, wait_for
from tests.support_kubelet import (
    PY,
    create,
    get_pod,
    pod,
    programs,
    start_kubelet,
    status_of,
)


def _ready(cluster: Cluster, name: str) -> str:
    found = get_pod(cluster, name) or {}
    return {c["type"]: c["status"] for c in (found.get("status") or {}).get("conditions") or []}.get("Ready", "")


def test_liveness_failure_restarts(node: Cluster, tmp_path: Path) -> None:
    flag = tmp_path / "healthy"
    start_kubelet(node)
    script = f"import pathlib, time\npathlib.Path({str(flag)!r}).touch()\ntime.sleep(600)\n"
    create(node, pod("live", [PY, "-c", script, "marker-live"],
                     livenessProbe={"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
                                    "failureThreshold": 2}, terminationGracePeriodSeconds=1))
    wait_for(lambda: flag.exists() and "running" in status_of(node, "live").get("state", {}), message="running")
    first = programs("marker-live")[0].pid
    flag.unlink()
    wait_for(lambda: status_of(node, "live").get("restartCount", 0) >= 1, timeout=30, message="restarted")
    wait_for(lambda: [p.pid for p in programs("marker-live")] not in ([], [first]), message="a new process")
    assert len(programs("marker-live")) == 1
    wait_for(lambda: "running" in status_of(node, "live").get("state", {}), message="running again")
    last = status_of(node, "live")["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143) and last["reason"] == "Error"
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=live").stdout
    assert "Unhealthy" in events and "Killing" in events and "Liveness probe failed" in events


def test_readiness_toggles_ready(node: Cluster, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    start_kubelet(node)
    server = (
        "import http.server, os, pathlib\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        ok = pathlib.Path({str(flag)!r}).exists()\n"
        "        self.send_response(200 if ok else 503); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
    )
    create(node, pod("web", [PY, "-c", server, "marker-web"], ports=[{"containerPort": 8080, "name": "http"}],
                     readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
                                     "failureThreshold": 1},
                     livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1, "initialDelaySeconds": 1}))
    wait_for(lambda: "running" in status_of(node, "web").get("state", {}), message="running")
    assert _ready(node, "web") == "False"
    flag.touch()
    wait_for(lambda: _ready(node, "web") == "True", message="Ready")
    assert status_of(node, "web")["ready"] is True
    flag.unlink()
    wait_for(lambda: _ready(node, "web") == "False", message="not Ready")
    flag.touch()
    wait_for(lambda: _ready(node, "web") == "True", message="Ready again")
    assert status_of(node, "web")["restartCount"] == 0  # the tcp liveness probe keeps passing


def test_hanging_probe_times_out(node: Cluster) -> None:
    start_kubelet(node)
    create(node, pod("hang", [PY, "-c", "import time; time.sleep(600)", "marker-hang"],
                     livenessProbe={"exec": {"command": ["sleep", "30"]}, "periodSeconds": 1, "timeoutSeconds": 1,
                                    "failureThreshold": 1}, terminationGracePeriodSeconds=1))
    wait_for(lambda: status_of(node, "hang").get("restartCount", 0) >= 1, timeout=30, message="restart")
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=hang").stdout
    assert "timed out" in events


def test_init_containers_run_first(node: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "init-output"
    start_kubelet(node)
    body = pod("withinit", [PY, "-u", "-c", f"print(open({str(out)!r}).read()); import time; time.sleep(600)"])
    body["spec"]["initContainers"] = [
        {"name": "first", "image": "busybox", "command": [PY, "-c", f"open({str(out)!r}, 'w').write('one')"]},
        {"name": "second", "image": "busybox",
         "command": [PY, "-c", f"open({str(out)!r}, 'a').write(' two')"]},
    ]
    create(node, body)
    wait_for(lambda: (get_pod(node, "withinit") or {}).get("status", {}).get("phase") == "Running",
             message="Running")
    status = get_pod(node, "withinit")["status"]
    inits = status["initContainerStatuses"]
    assert [i["name"] for i in inits] == ["first", "second"]
    assert all(i["state"]["terminated"]["reason"] == "Completed" for i in inits)
    assert {c["type"]: c["status"] for c in status["conditions"]}["Initialized"] == "True"
    wait_for(lambda: "one two" in node.kubectl("logs", "withinit").stdout, message="main saw both inits")


def test_flood_is_capped(node: Cluster) -> None:
    start_kubelet(node, "n1", "--log-cap-bytes", "200000")
    script = "import sys, time\nfor i in range(200000):\n    print('x' * 50, i)\nsys.stdout.flush()\ntime.sleep(600)\n"
    created = create(node, pod("flood", [PY, "-c", script]))
    key = node.keys.logs("default", "flood", "main")
    wait_for(lambda: node.redis.xlen(key) > 5000, timeout=30, message="log stream filling")
    uid = created["metadata"]["uid"]
    run_dir = node.home / "nodes" / "n1" / "pods" / uid / "main" / "0"

    def finished_flooding() -> bool:
        return any(b"199999" in line for line in (run_dir / "log").read_bytes().splitlines()[-3:])

    wait_for(finished_flooding, timeout=30, message="flood written")
    assert sum(p.stat().st_size for p in run_dir.glob("log*")) < 3 * 200000
    wait_for(lambda: node.redis.xrevrange(key, count=1)[0][1][b"line"].endswith(b"199999"), timeout=30,
             message="tail caught up")
    assert node.redis.xlen(key) < 12000
    assert "running" in status_of(node, "flood")["state"]
    assert node.kubectl("logs", "flood", "--tail", "1").stdout.strip().endswith("199999")


def test_memory_limit_oomkilled(node: Cluster) -> None:
    start_kubelet(node)
    hog = "import time\nblob = b'x' * (120 * 1024 * 1024)\ntime.sleep(600)\n"
    body = pod("hog", [PY, "-c", hog], restartPolicy="Never")
    body["spec"]["containers"][0]["resources"] = {"limits": {"memory": "40Mi"}}
    create(node, body)
    wait_for(lambda: (get_pod(node, "hog") or {}).get("status", {}).get("phase") == "Failed", timeout=30,
             message="Failed")
    terminated = status_of(node, "hog")["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137


def test_startup_probe_gates_started_and_ready(node: Cluster, tmp_path: Path) -> None:
    flag = tmp_path / "started"
    start_kubelet(node)
    create(node, pod("slow", [PY, "-c", "import time; time.sleep(600)", "marker-slow"],
                     startupProbe={"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
                                   "failureThreshold": 60}))
    wait_for(lambda: "running" in status_of(node, "slow").get("state", {}), message="running")
    status = status_of(node, "slow")
    assert status["started"] is False and status["ready"] is False
    assert _ready(node, "slow") == "False"
    flag.touch()
    wait_for(lambda: status_of(node, "slow").get("started") is True, message="started")
    wait_for(lambda: _ready(node, "slow") == "True", message="Ready")
    assert status_of(node, "slow")["restartCount"] == 0
