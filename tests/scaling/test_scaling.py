"""Scaling each control-plane service 1 -> 3 -> 1 under a steady load, with kill -9 on the way.

What a user would see is asserted at the end: the cluster converges, no request the load
sent was lost or applied twice, no pod was bound twice, no node is overcommitted, and no
controller acted twice. Kubelets are one per node: one is killed and restarted instead.
"""

from __future__ import annotations

import sys
import time
import uuid

import pytest

from tests.harness import Cluster, Process, wait_for
from tests.support_faults import (
    BusLoad,
    check_all,
    converged,
    deployment,
    final_state,
    get_json,
    jobs_complete,
    leader,
    node_tokens,
    nothing_terminating,
    start_apiserver,
    start_controller_manager,
    start_kubelet,
    start_scheduler,
    time_to,
)
from tests.support_kubelet import programs

SIM_NODES = ["s1", "s2"]
JOB_NODE = "p1"
CONVERGE_BOUND = 60.0  # seconds the cluster gets to reach the desired state once the load stops


def _start(cluster: Cluster, service: str, name: str) -> Process:
    if service == "apiserver":
        return start_apiserver(cluster, name)
    if service == "scheduler":
        return start_scheduler(cluster, name)
    return start_controller_manager(cluster, name)


def _leader_first(cluster: Cluster, service: str, group: list[Process]) -> list[Process]:
    """The replicas, the controller manager's current leader first (the one worth killing)."""
    if service != "controller-manager":
        return list(group)
    holder = wait_for(lambda: leader(cluster), timeout=10, message="a leader")
    return sorted(group, key=lambda p: p.name != holder)


@pytest.mark.parametrize("service", ["apiserver", "scheduler", "controller-manager"])
def test_scale_one_to_three_and_back_under_load_with_kills(cluster: Cluster, service: str) -> None:
    nodes = [*SIM_NODES, JOB_NODE]
    node_tokens(cluster, *nodes)
    replicas = {"apiserver": [start_apiserver(cluster, "api-0")]}
    replicas["scheduler"] = [start_scheduler(cluster, "sched-0")]
    replicas["controller-manager"] = [start_controller_manager(cluster, "cm-0")]
    for node in SIM_NODES:
        start_kubelet(cluster, node)
    start_kubelet(cluster, JOB_NODE, runtime="process")  # Jobs need pods that finish
    with cluster.http() as http:
        assert http.post("/apis/apps/v1/namespaces/default/deployments",
                         json=deployment("web", replicas=3)).status_code == 201
    wait_for(lambda: converged(cluster, deployments=("web",)), timeout=30, message="web available")

    job_spec = {"nodeSelector": {"kubernetes.io/hostname": JOB_NODE}}
    started = time.monotonic()
    load = BusLoad(cluster, scale_target="web", scale_range=(2, 5), deployment_every=25, job_every=30,
                   job_pod_spec=job_spec)
    converge_after: dict[str, float] = {}

    def measure(label: str, since: float) -> None:
        """Seconds from a fault until the user's view is whole again (under the running load)."""
        converge_after[label] = time_to(lambda: converged(cluster, deployments=("web",), settle=2.0), since=since,
                                        timeout=CONVERGE_BOUND, message=f"convergence after {label}")

    with load:
        load.wait_progress(20)
        group = replicas[service]
        base = group[0].name.rsplit("-", 1)[0]
        # Scale up: 1 -> 3.
        for index in (1, 2):
            group.append(_start(cluster, service, f"{base}-{index}"))
        load.wait_progress(60)
        # kill -9 one (for the controller manager: the leader), then bring it back.
        victim = _leader_first(cluster, service, group)[0]
        killed_at = time.monotonic()
        victim.kill()
        load.wait_progress(60)
        group.remove(victim)
        group.append(_start(cluster, service, victim.name))
        measure(f"kill -9 {victim.name}", killed_at)
        load.wait_progress(60)
        # Scale down: 3 -> 1: one (the leader, if any) killed, one stopped cleanly.
        first, second, survivor = _leader_first(cluster, service, group)
        killed_at = time.monotonic()
        first.kill()
        assert second.stop() == 0, second.log()[-2000:]
        load.wait_progress(60)
        measure(f"scale down (kill -9 {first.name}, SIGTERM {second.name})", killed_at)
        assert survivor.alive(), survivor.log()[-3000:]
        if service == "controller-manager":
            assert leader(cluster) == survivor.name
    lost = load.unanswered()
    codes = load.codes()
    wait_for(lambda: converged(cluster, deployments=("web",)) and jobs_complete(cluster) and nothing_terminating(cluster),
             timeout=CONVERGE_BOUND,
             interval=0.3, message="desired state after the load")
    converge_s = round(time.monotonic() - started, 1)
    claimed = sum(p.log().count("claimed requests of a dead replica") for p in replicas["apiserver"])
    state = final_state(cluster)
    figures = check_all(cluster, nodes)
    print(f"\n[scaling {service}] convergence-after-fault={converge_after} requests={load.count()} not-sent={len(load.send_failures)} "
          f"codes={dict(codes)} lost={len(lost)} duplicate-replies={load.duplicated_replies()} "
          f"jobs={len(load.created_jobs)} final={state} invariants={figures} claims-by-survivors={claimed} "
          f"load-start-to-final-convergence={converge_s}s")
    assert not lost, [(s.op, s.key) for s in lost[:10]]
    # Every request got a definite answer; with Redis up, every one should have succeeded.
    assert set(codes) <= {200, 201}, codes
    web = get_json(cluster, "/apis/apps/v1/namespaces/default/deployments/web")
    assert web["status"]["availableReplicas"] == web["spec"]["replicas"] == load.scale_history[-1]


def _sleeper(name: str, marker: str) -> dict[str, object]:
    command = [sys.executable, "-c", "import time; time.sleep(3600)", marker]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "k1", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "command": command}]}}


def _pod(cluster: Cluster, name: str) -> dict[str, object] | None:
    return get_json(cluster, f"/api/v1/namespaces/default/pods/{name}")  # type: ignore[no-any-return]


def _running(cluster: Cluster, name: str) -> bool:
    pod = _pod(cluster, name) or {}
    return (pod.get("status") or {}).get("phase") == "Running"  # type: ignore[union-attr]


def test_kubelet_killed_and_restarted_keeps_one_copy_of_each_container(cluster: Cluster) -> None:
    node_tokens(cluster, "k1")
    start_apiserver(cluster, "api-0")
    kubelet = start_kubelet(cluster, "k1", runtime="process")
    run = uuid.uuid4().hex[:8]
    markers = {f"sleeper-{i}": f"marker-{run}-{i}" for i in range(3)}
    with cluster.http() as http:
        for name in ("sleeper-0", "sleeper-1"):
            assert http.post("/api/v1/namespaces/default/pods", json=_sleeper(name, markers[name])).status_code == 201
    for name in ("sleeper-0", "sleeper-1"):
        wait_for(lambda name=name: _running(cluster, name) and len(programs(markers[name])) == 1, timeout=30,
                 message=f"{name} running")
    before = {name: [p.pid for p in programs(markers[name])] for name in ("sleeper-0", "sleeper-1")}

    kubelet.kill()  # kill -9: the containers outlive it, as with a real kubelet
    with cluster.http() as http:  # a pod arriving while the node agent is down
        assert http.post("/api/v1/namespaces/default/pods",
                         json=_sleeper("sleeper-2", markers["sleeper-2"])).status_code == 201
    kubelet = start_kubelet(cluster, "k1", runtime="process")
    wait_for(lambda: _running(cluster, "sleeper-2") and len(programs(markers["sleeper-2"])) == 1, timeout=30,
             message="the pod created while the kubelet was down runs")
    # Exactly one copy of each container, and the old ones were kept, not duplicated.
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # stays true across several sync loops of the new kubelet
        counts = {name: len(programs(marker)) for name, marker in markers.items()}
        assert counts == {name: 1 for name in markers}, counts
        time.sleep(0.5)
    after = {name: [p.pid for p in programs(markers[name])] for name in ("sleeper-0", "sleeper-1")}
    restarts = {name: ((_pod(cluster, name) or {})["status"]["containerStatuses"][0]["restartCount"])  # type: ignore[index]
                for name in markers}
    print(f"\n[kubelet restart] pids before={before} after={after} restartCounts={restarts}")
    assert after == before, "the restarted kubelet started the containers again"
    # Deleting a pod after the restart stops its one process.
    with cluster.http() as http:
        assert http.delete("/api/v1/namespaces/default/pods/sleeper-0").status_code == 200
    wait_for(lambda: _pod(cluster, "sleeper-0") is None and not programs(markers["sleeper-0"]), timeout=30,
             message="sleeper-0 gone")
    assert kubelet.alive()
