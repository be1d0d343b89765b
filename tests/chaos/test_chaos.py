"""Chaos: a whole cluster under a steady load while every kind of process is killed with
kill -9 and restarted, and Redis itself is restarted once.

The cluster runs on its own redis-server with AOF persistence (the suite's shared Redis
must not be restarted). The load: pods created and deleted, a Deployment scaled up and
down, Deployments created and deleted, Jobs created (all through the request stream),
and TCP requests through a Service's ClusterIP to real pods via the proxies. Figures
are printed (run pytest with ``-s`` to see them).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared import redis_server
from tests.harness import Cluster, Process, wait_for
from tests.support_faults import (
    BusLoad,
    check_all,
    container_processes,
    converged,
    deployment,
    final_state,
    items,
    jobs_complete,
    leader,
    node_tokens,
    nothing_terminating,
    start_apiserver,
    start_controller_manager,
    start_kubelet,
    start_proxy,
    start_scheduler,
    unconverged,
)
from tests.support_proxy import ask, create_service, service_port

NODES = ["c1", "c2"]
FAULT_CONVERGE_BOUND = 45.0  # seconds from a fault to the desired state again, under load
FINAL_CONVERGE_BOUND = 60.0  # seconds once the load stops

ECHO = (
    "import os, socketserver\n"
    "class H(socketserver.StreamRequestHandler):\n"
    "    def handle(self):\n"
    "        for line in self.rfile:\n"
    "            self.wfile.write(os.environ['HOSTNAME'].encode() + b' ' + line)\n"
    "            self.wfile.flush()\n"
    "class S(socketserver.ThreadingTCPServer):\n"
    "    allow_reuse_address = True\n"
    "    daemon_threads = True\n"
    "S((os.environ['POD_IP'], int(os.environ['PORT'])), H).serve_forever()\n"
)


class TcpProbe:
    """A client hitting the Service's ClusterIP every 100 ms; each try succeeds or fails, counted."""

    def __init__(self, ip: str, port: int) -> None:
        self.ip, self.port = ip, port
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tcp-probe", daemon=True)

    def __enter__(self) -> TcpProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                ask(self.ip, self.port, timeout=2.0)
                self.results.append((at, True))
            except OSError:
                self.results.append((at, False))
            self._stop.wait(0.1)

    def failed_between(self, start: float, end: float) -> int:
        return sum(1 for at, ok in self.results if start <= at < end and not ok)


def echo_deployment(port: int, marker: str) -> dict[str, Any]:
    body = deployment("echo", replicas=2, cpu="50m", command=[sys.executable, "-c", ECHO, marker])
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "PORT", "value": str(port)}]
    container["ports"] = [{"containerPort": port}]
    container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    return body


def test_cluster_survives_kill_9_of_every_process_and_a_redis_restart(tmp_path: Path) -> None:
    redis_port = redis_server.free_port()
    data = tmp_path / "redis"
    redis_procs = [redis_server.start(port=redis_port, data_dir=data, persistent=True)]
    cluster = Cluster(f"redis://127.0.0.1:{redis_port}/0", tmp_path / "home")
    try:
        _scenario(cluster, redis_port, data, redis_procs)
    finally:
        cluster.stop()
        redis_procs[-1].terminate()
        redis_procs[-1].wait(timeout=15)


def _scenario(cluster: Cluster, redis_port: int, data: Path, redis_procs: list[Any]) -> None:
    cidr = ("--service-cidr", f"127.{random.randrange(60, 90)}.0.0/16")  # apart from other tests' ClusterIPs
    node_tokens(cluster, *NODES)
    procs: dict[str, Process] = {}
    starters: dict[str, Callable[[], Process]] = {
        "api-0": lambda: start_apiserver(cluster, "api-0", *cidr),
        "api-1": lambda: start_apiserver(cluster, "api-1", *cidr),
        "sched-0": lambda: start_scheduler(cluster, "sched-0"),
        "sched-1": lambda: start_scheduler(cluster, "sched-1"),
        "cm-0": lambda: start_controller_manager(cluster, "cm-0"),
        "cm-1": lambda: start_controller_manager(cluster, "cm-1"),
        **{f"kubelet-{n}": (lambda n=n: start_kubelet(cluster, n, runtime="process")) for n in NODES},
        **{f"proxy-{n}": (lambda n=n: start_proxy(cluster, n)) for n in NODES},
    }
    for name, start in starters.items():
        procs[name] = start()

    marker = f"0.{random.randrange(10**8, 10**9)}"  # `sleep 3600 0.NNN`: a sleep we can recognise
    sleep = ["sleep", "3600", marker]
    port = service_port()
    with cluster.http() as http:
        service = create_service(http, "echo", port=port)
        for body in (deployment("web", replicas=2, command=sleep), echo_deployment(port, marker)):
            response = http.post("/apis/apps/v1/namespaces/default/deployments", json=body)
            assert response.status_code == 201, response.text
    ip = service["spec"]["clusterIP"]
    deployments = ("web", "echo")

    def healthy() -> bool:
        return converged(cluster, deployments=deployments, settle=2.0) and bool(ask(ip, port, timeout=1.0))

    wait_for(healthy, timeout=60, interval=0.3, message="the cluster up and serving")

    load = BusLoad(cluster, interval=0.1, scale_target="web", scale_range=(1, 3), scale_every=25,
                   job_every=30, deployment_every=40, max_load_pods=4, pod_command=sleep)
    faults: list[dict[str, Any]] = []

    def restart(name: str) -> None:
        procs[name] = starters[name]()

    def kill_and_restart(name: str) -> Callable[[], None]:
        def inject() -> None:
            procs[name].kill()
            load.wait_progress(15, timeout=45)  # the rest of the cluster keeps working meanwhile
            restart(name)
        return inject

    def kill_leader() -> None:
        holder = wait_for(lambda: leader(cluster), timeout=10, message="a controller-manager leader")
        kill_and_restart(holder)()

    def restart_redis() -> None:
        redis_procs[-1].terminate()  # SIGTERM: the AOF is flushed
        redis_procs[-1].wait(timeout=15)
        time.sleep(2.0)  # the outage itself, not a synchronisation
        redis_procs.append(redis_server.start(port=redis_port, data_dir=data, persistent=True))

    schedule: list[tuple[str, Callable[[], None]]] = [
        ("kill -9 apiserver api-0", kill_and_restart("api-0")),
        ("kill -9 scheduler sched-0", kill_and_restart("sched-0")),
        ("kill -9 controller-manager leader", kill_leader),
        ("kill -9 kubelet c1", kill_and_restart("kubelet-c1")),
        ("kill -9 proxy c1", kill_and_restart("proxy-c1")),
        ("restart redis", restart_redis),
        ("kill -9 apiserver api-1", kill_and_restart("api-1")),
    ]
    started = time.monotonic()
    with load, TcpProbe(ip, port) as probe:
        load.wait_progress(20)
        for label, inject in schedule:
            at = time.monotonic()
            inject()
            try:
                wait_for(healthy, timeout=FAULT_CONVERGE_BOUND, interval=0.2, message=f"convergence after {label}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {unconverged(cluster, deployments=deployments)}") from None
            done = time.monotonic()
            faults.append({"fault": label, "converged_s": round(done - at, 2), "start": at, "end": done})
            load.wait_progress(10, timeout=30)
        load_end = time.monotonic()
    lost = load.unanswered()
    final_at = time.monotonic()
    wait_for(lambda: converged(cluster, deployments=deployments) and jobs_complete(cluster) and nothing_terminating(cluster),
             timeout=FINAL_CONVERGE_BOUND, interval=0.3, message="the desired state after the load")
    final_s = round(time.monotonic() - final_at, 2)
    state = final_state(cluster)
    wait_for(lambda: cluster.redis.ping(), timeout=10, message="redis")
    figures = check_all(cluster, NODES)

    # Exactly one process per running container; none left behind by deleted pods.
    running = {p["metadata"]["name"] for p in items(cluster, "pods") if p["status"].get("phase") == "Running"}
    expected = {name: 1 for name in running}
    wait_for(lambda: container_processes(marker) == expected, timeout=20,
             message=f"one process per container (want {sorted(expected)})")

    in_faults = sum(load.failed_between(f["start"], f["end"]) for f in faults)
    tcp_total, tcp_failed = len(probe.results), sum(1 for _at, ok in probe.results if not ok)
    tcp_in_faults = sum(probe.failed_between(f["start"], f["end"]) for f in faults)
    report = {
        "faults_injected": len(faults),
        "requests_sent": load.count() + len(load.send_failures),
        "requests_not_sent_redis_down": len(load.send_failures),
        "requests_failed": sum(n for code, n in load.codes().items() if code >= 300) + len(load.send_failures),
        "requests_failed_during_faults": in_faults,
        "requests_sent_during_faults": sum(load.sent_between(f["start"], f["end"]) for f in faults),
        "requests_lost": len(lost),
        "reply_codes": dict(load.codes()),
        "tcp_requests": tcp_total,
        "tcp_failed": tcp_failed,
        "tcp_failed_during_faults": tcp_in_faults,
        "jobs_created": len(load.created_jobs),
        "convergence_s": {f["fault"]: f["converged_s"] for f in faults},
        "final_convergence_s": final_s,
        "load_seconds": round(load_end - started, 1),
        "final": state,
        "invariants": figures,
    }
    print("\n[chaos] " + "\n[chaos] ".join(f"{k}: {v}" for k, v in report.items()))
    assert not lost, [(s.op, s.key) for s in lost[:10]]
    assert len(faults) == len(schedule)


def test_controller_manager_that_wins_its_lease_back_keeps_reconciling(tmp_path: Path) -> None:
    """The deterministic core of one chaos finding: one controller manager, Redis down long enough
    for its lease to lapse, then up again: the same process leads again and must still act."""
    redis_port = redis_server.free_port()
    data = tmp_path / "redis"
    redis_procs = [redis_server.start(port=redis_port, data_dir=data, persistent=True)]
    cluster = Cluster(f"redis://127.0.0.1:{redis_port}/0", tmp_path / "home")
    try:
        node_tokens(cluster, "s1")
        start_apiserver(cluster, "api-0")
        start_scheduler(cluster, "sched-0")
        cm = start_controller_manager(cluster, "cm-0")
        start_kubelet(cluster, "s1")
        with cluster.http() as http:
            assert http.post("/apis/apps/v1/namespaces/default/deployments",
                             json=deployment("web", replicas=2)).status_code == 201
        wait_for(lambda: converged(cluster, deployments=("web",)), timeout=30, message="web available")
        redis_procs[-1].terminate()
        redis_procs[-1].wait(timeout=15)
        wait_for(lambda: "stopped leading" in cm.log(), timeout=20, message="the lease lapses")
        redis_procs.append(redis_server.start(port=redis_port, data_dir=data, persistent=True))
        wait_for(lambda: cm.log().count("became leader") >= 2, timeout=30, message="cm-0 leads again")
        with cluster.http() as http:
            wait_for(lambda: http.patch("/apis/apps/v1/namespaces/default/deployments/web",
                                        json={"spec": {"replicas": 4}},
                                        headers={"Content-Type": "application/merge-patch+json"}).status_code == 200,
                     timeout=20, message="scale web to 4")
        try:
            wait_for(lambda: converged(cluster, deployments=("web",)), timeout=30, message="web scaled to 4")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {unconverged(cluster, deployments=('web',))}") from None
    finally:
        cluster.stop()
        redis_procs[-1].terminate()
        redis_procs[-1].wait(timeout=15)
