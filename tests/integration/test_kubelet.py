"""The kubelet against a real API server: pods as real processes, status, probes, deletion, restarts."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil

from tests.harness import Cluster, wait_for
from tests.support_kubelet import (
    PY,
    create,
    get_pod,
    pod,
    programs,
    start_kubelet,
    status_of,
    wait_kubelet_ready,
)


def test_registers_node_and_renews_lease(node: Cluster) -> None:
    start_kubelet(node, "n1", "--cpu", "3", "--memory", "5Gi", "--max-pods", "20")
    found = wait_for(lambda: node.kubectl_json("get", "node", "n1"), message="node n1")
    status = found["status"]
    assert status["capacity"]["cpu"] == "3" and status["allocatable"]["memory"] == "5Gi"
    assert status["capacity"]["pods"] == "20"
    assert found["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert found["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert {"type": "InternalIP", "address": "127.10.201.1"} in status["addresses"]
    assert {"type": "Hostname", "address": "n1"} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0-redkube"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "redkube-process://0.1"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    lease = wait_for(lambda: node.kubectl_json("get", "lease", "-n", "kube-node-lease", "n1"), message="lease")
    first = lease["spec"]["renewTime"]
    assert lease["spec"]["holderIdentity"] == "n1" and lease["spec"]["leaseDurationSeconds"] == 40
    assert len(first) == len("2026-12-04T20:00:00.000000Z") and first.endswith("Z")
    wait_for(
        lambda: node.kubectl_json("get", "lease", "-n", "kube-node-lease", "n1")["spec"]["renewTime"] != first,
        message="a renewed lease",
    )
    assert "NAME" in node.kubectl("get", "nodes").stdout


def test_pod_runs_with_env_and_logs(node: Cluster) -> None:
    with node.http() as http:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-db"},
                   "spec": {"ports": [{"port": 5432, "name": "pg"}], "selector": {"app": "db"}}}
        assert http.post("/api/v1/namespaces/default/services", json=service).status_code == 201
    kubelet = start_kubelet(node)
    wait_kubelet_ready(kubelet)
    script = (
        "import os, sys, time\n"
        "print('hello from', os.environ['MY_NAME'], os.environ['POD_IP'], os.environ['NODE'])\n"
        "print('greeting', os.environ['GREETING'])\n"
        "print('svc', os.environ.get('MY_DB_SERVICE_HOST'), os.environ.get('MY_DB_SERVICE_PORT'),"
        " os.environ.get('MY_DB_PORT_5432_TCP_PORT'))\n"
        "print('cwd', os.getcwd())\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.stdout.flush()\n"
        "time.sleep(300)\n"
    )
    create(node, pod(
        "hello", [PY, "-u", "-c", script, "marker-hello"],
        env=[{"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
             {"name": "WHO", "value": "world"}, {"name": "GREETING", "value": "hi $(WHO) $$(WHO)"}],
        workingDir="/tmp",
    ))

    def running() -> dict | None:
        found = get_pod(node, "hello")
        return found if found and found["status"].get("phase") == "Running" else None

    found = wait_for(running, message="pod hello running")
    status = found["status"]
    assert status["podIP"].startswith("127.11.201.") and status["hostIP"] == "127.10.201.1"
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    wait_for(lambda: {c["type"]: c["status"] for c in get_pod(node, "hello")["status"]["conditions"]}["Ready"]
             == "True", message="Ready")
    assert conditions["Initialized"] == "True" and conditions["PodScheduled"] == "True"
    container = status_of(node, "hello")
    assert "running" in container["state"] and container["containerID"].startswith("redkube-process://")
    assert container["restartCount"] == 0
    assert len(programs("marker-hello")) == 1

    def logs() -> str:
        out = node.kubectl("logs", "hello").stdout
        return out if "cwd" in out else ""

    out = wait_for(logs, message="kubectl logs")
    ip = status["podIP"]
    assert f"hello from hello {ip} n1" in out
    assert "greeting hi world $(WHO)" in out
    assert "svc 127." in out and " 5432 5432" in out
    assert "cwd /tmp" in out and "to stderr" in out
    assert node.kubectl("logs", "hello", "--tail", "1").stdout.strip() in ("cwd /tmp", "to stderr")
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=hello").stdout
    assert "Started" in events and "Created" in events
    metrics = httpx.get(f"http://127.0.0.1:{kubelet.port}/metrics", timeout=5).text
    assert "kubelet_container_starts_total" in metrics and "kubelet_pods" in metrics


def test_crashing_container_backs_off(node: Cluster) -> None:
    start_kubelet(node)
    create(node, pod("crash", [PY, "-c", "print('dying'); raise SystemExit(3)"]))
    wait_for(lambda: status_of(node, "crash").get("restartCount", 0) >= 2, timeout=30, message="restarts")
    seen: set[str] = set()

    def crash_loop() -> bool:
        state = status_of(node, "crash").get("state") or {}
        seen.update(((state.get("waiting") or {}).get("reason") or "-",))
        return "CrashLoopBackOff" in seen

    wait_for(crash_loop, timeout=20, interval=0.02, message="CrashLoopBackOff")
    container = status_of(node, "crash")
    last = container["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert get_pod(node, "crash")["status"]["phase"] == "Running"
    previous = wait_for(lambda: node.kubectl("logs", "crash", "--previous", check=False).stdout,
                        message="previous logs")
    assert "dying" in previous
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=crash").stdout
    assert "BackOff" in events


def test_never_and_missing_command(node: Cluster) -> None:
    start_kubelet(node)
    create(node, pod("done", [PY, "-c", "print('ok')"], restartPolicy="Never"))
    create(node, pod("fails", [PY, "-c", "raise SystemExit(2)"], restartPolicy="Never"))
    create(node, pod("nocmd", ["/no/such/program"], restartPolicy="Never"))
    wait_for(lambda: get_pod(node, "done")["status"]["phase"] == "Succeeded", message="Succeeded")
    wait_for(lambda: get_pod(node, "fails")["status"]["phase"] == "Failed", message="Failed")
    done = status_of(node, "done")["state"]["terminated"]
    assert done["exitCode"] == 0 and done["reason"] == "Completed"
    assert status_of(node, "fails")["state"]["terminated"]["exitCode"] == 2
    wait_for(lambda: get_pod(node, "nocmd")["status"]["phase"] == "Failed", message="nocmd Failed")
    terminated = status_of(node, "nocmd")["state"]["terminated"]
    assert terminated["reason"] == "StartError" and terminated["exitCode"] == 128
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=nocmd").stdout
    assert "Failed" in events
    create(node, pod("nocmd-loop", ["/no/such/program"]))
    wait_for(lambda: status_of(node, "nocmd-loop").get("restartCount", 0) >= 1, message="start error restarted")
    wait_for(lambda: (status_of(node, "nocmd-loop").get("lastState") or {}).get("terminated", {}).get("reason")
             == "StartError", message="lastState StartError")
    assert get_pod(node, "nocmd-loop")["status"]["phase"] == "Running"  # Always: being restarted, never Failed


def test_delete_stops_process_within_grace(node: Cluster) -> None:
    start_kubelet(node)
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n"
    create(node, pod("stubborn", [PY, "-c", script, "marker-stubborn"], terminationGracePeriodSeconds=2))
    create(node, pod("polite", [PY, "-c", "import time; time.sleep(600)", "marker-polite"]))
    wait_for(lambda: programs("marker-stubborn") and programs("marker-polite"), message="both running")
    wait_for(lambda: "running" in status_of(node, "stubborn").get("state", {}), message="stubborn running")
    stubborn = programs("marker-stubborn")[0]
    polite = programs("marker-polite")[0]
    started = time.monotonic()
    node.kubectl("delete", "pod", "stubborn", "polite", "--wait=false")
    wait_for(lambda: not polite.is_running() or polite.status() == psutil.STATUS_ZOMBIE, message="polite gone")
    wait_for(lambda: not stubborn.is_running() or stubborn.status() == psutil.STATUS_ZOMBIE, timeout=15,
             message="stubborn gone")
    assert time.monotonic() - started >= 1.5  # it ignored SIGTERM: only the SIGKILL after the grace period ends it
    wait_for(lambda: get_pod(node, "stubborn") is None and get_pod(node, "polite") is None, message="pods deleted")


def test_kill9_kubelet_adopts_containers(node: Cluster) -> None:
    kubelet = start_kubelet(node)
    create(node, pod("keep", [PY, "-u", "-c", "import time\nfor i in range(10**6):\n print('tick', i)\n"
                                               " time.sleep(0.2)\n", "marker-keep"]))
    wait_for(lambda: len(programs("marker-keep")) == 1, message="program running")
    wait_for(lambda: "running" in status_of(node, "keep").get("state", {}), message="status running")
    before = programs("marker-keep")[0].pid
    pod_ip = get_pod(node, "keep")["status"]["podIP"]
    container_id = status_of(node, "keep")["containerID"]
    os.kill(kubelet.popen.pid, signal.SIGKILL)
    kubelet.popen.wait()
    assert [p.pid for p in programs("marker-keep")] == [before]  # the container outlives its kubelet
    again = start_kubelet(node)
    wait_kubelet_ready(again)
    ticks = node.kubectl("logs", "keep").stdout.split("\n")
    wait_for(lambda: len(node.kubectl("logs", "keep").stdout.split("\n")) > len(ticks) + 3, message="more logs")
    assert [p.pid for p in programs("marker-keep")] == [before]
    status = status_of(node, "keep")
    assert status["containerID"] == container_id and status["restartCount"] == 0
    assert get_pod(node, "keep")["status"]["podIP"] == pod_ip
    lines = [line for line in node.kubectl("logs", "keep").stdout.splitlines() if line]
    assert len(lines) == len(set(lines)), "a log line was copied twice"
    again.stop()  # SIGTERM: exits 0, containers keep running
    assert again.popen.returncode == 0
    assert [p.pid for p in programs("marker-keep")] == [before]


def test_pod_deleted_while_kubelet_down_is_stopped(node: Cluster) -> None:
    kubelet = start_kubelet(node)
    create(node, pod("gone", [PY, "-c", "import time; time.sleep(600)", "marker-gone"]))
    create(node, pod("stays", [PY, "-c", "import time; time.sleep(600)", "marker-stays"]))
    wait_for(lambda: len(programs("marker-gone")) == 1 and len(programs("marker-stays")) == 1, message="running")
    assert kubelet.stop() == 0
    assert len(programs("marker-gone")) == 1
    node.kubectl("delete", "pod", "gone", "--grace-period=0", "--force")
    wait_for(lambda: get_pod(node, "gone") is None, message="force-deleted")
    again = start_kubelet(node)
    wait_kubelet_ready(again)
    wait_for(lambda: not programs("marker-gone"), message="orphan stopped")
    assert len(programs("marker-stays")) == 1


def test_stop_pods_on_exit_flag(node: Cluster) -> None:
    kubelet = start_kubelet(node, "n1", "--stop-pods-on-exit", "--stop-grace-seconds", "1")
    create(node, pod("bye", [PY, "-c", "import time; time.sleep(600)", "marker-bye"]))
    wait_for(lambda: len(programs("marker-bye")) == 1, message="running")
    assert kubelet.stop() == 0
    assert programs("marker-bye") == []


def test_recreated_pod_of_the_same_name(node: Cluster) -> None:
    start_kubelet(node)
    first = create(node, pod("again", [PY, "-u", "-c", "import time; print('first'); time.sleep(600)", "marker-1"],
                             terminationGracePeriodSeconds=1))
    wait_for(lambda: "first" in node.kubectl("logs", "again", check=False).stdout, message="first run")
    node.kubectl("delete", "pod", "again", "--wait=false")
    wait_for(lambda: get_pod(node, "again") is None, message="deleted")
    second = create(node, pod("again", [PY, "-u", "-c", "import time; print('second'); time.sleep(600)",
                                        "marker-2"]))
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    wait_for(lambda: node.kubectl("logs", "again", check=False).stdout.strip() == "second", message="second run")
    assert programs("marker-1") == [] and len(programs("marker-2")) == 1
    wait_for(lambda: (get_pod(node, "again") or {})["status"]["phase"] == "Running", message="Running")
