"""Leader election across controller-manager replicas: one leads, a kill -9 hands over,
and the work goes on with nothing done twice."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx

from shared import redis_server
from tests.harness import Cluster, Process, wait_for
from tests.support_controllers import FakeNodeAgent, owned_by, replay_pods, start_controller_manager

NS = "/api/v1/namespaces/default"
JOBS = "/apis/batch/v1/namespaces/default/jobs"


def leading(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    found = re.search(r"^redkube_leader (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def start_replicas(api: Cluster, count: int) -> list[tuple[Process, int]]:
    replicas = []
    for n in range(count):
        port = redis_server.free_port()
        process = start_controller_manager(api, "--lease-ms", "2000", "--renew-ms", "500", name=f"cm-{n}",
                                           env={"REDKUBE_METRICS_PORT": str(port)}, controllers="job,endpoints")
        replicas.append((process, port))
    return replicas


def the_leader(replicas: list[tuple[Process, int]]) -> tuple[Process, int] | None:
    """The one replica whose /metrics says it leads, while every other live one says it does not."""
    states = [(p, port, leading(port)) for p, port in replicas if p.alive()]
    if any(state is None for _, _, state in states):
        return None
    leaders = [(p, port) for p, port, state in states if state == 1.0]
    return leaders[0] if len(leaders) == 1 else None


def job(name: str, completions: int) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": completions, "parallelism": 2, "template": {
                "metadata": {"labels": {"app": "batch"}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "w", "image": "busybox", "command": ["true"]}]}}}}


def test_one_leader_and_handover_on_kill(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running" if age < 0.4 else "Succeeded")
    agent.create_node()
    replicas = start_replicas(api, 3)
    first = wait_for(lambda: the_leader(replicas), timeout=30, message="exactly one leader")
    holder = api.redis.get(api.keys.leader("controller-manager"))
    assert holder is not None
    samples: list[int] = []
    stop = threading.Event()
    threading.Thread(target=sampler, args=(replicas, samples, stop), daemon=True).start()

    with agent, api.http() as http:
        uid = http.post(JOBS, json=job("batch", 8)).json()["metadata"]["uid"]
        http.post(f"{NS}/services", json={"apiVersion": "v1", "kind": "Service", "metadata": {"name": "batch"},
                                          "spec": {"selector": {"app": "batch"}, "ports": [{"port": 80}]}})
        wait_for(lambda: (http.get(f"{JOBS}/batch").json().get("status") or {}).get("succeeded", 0) >= 2,
                 message="job under way")

        first[0].popen.kill()  # kill -9: no lease release, the lease must expire
        first[0].popen.wait()
        killed_at = time.monotonic()
        survivors = [r for r in replicas if r[0] is not first[0]]
        second = wait_for(lambda: the_leader(survivors), timeout=30, message="a new leader")
        handover = time.monotonic() - killed_at
        print(f"leader handover after kill -9: {handover:.2f} s (lease 2.0 s, renew 0.5 s, retry 1.0 s)")
        assert second[0] is not first[0]

        def complete() -> bool:
            status = http.get(f"{JOBS}/batch").json().get("status") or {}
            return any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions") or [])

        wait_for(complete, timeout=40, message="job complete under the new leader")
        status = http.get(f"{JOBS}/batch").json()["status"]
        assert status["succeeded"] == 8 and not status.get("failed")
        created = {obj["metadata"]["name"] for kind, obj, _ in replay_pods(api) if kind == "ADDED"
                   and owned_by(obj, uid)}
        assert len(created) == 8, f"{len(created)} pods created for 8 completions"

        # Endpoints keep following pods under the new leader.
        http.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "live", "labels": {"app": "batch"}},
                                      "spec": {"containers": [{"name": "w", "image": "busybox"}]}})

        def live_listed() -> bool:
            ep = http.get(f"{NS}/endpoints/batch").json()
            return any(a["targetRef"]["name"] == "live" for s in ep.get("subsets") or []
                       for a in s.get("addresses") or [])

        wait_for(live_listed, message="new pod in endpoints")
        # Still exactly one leader among the survivors.
        assert the_leader(survivors) is not None

    # A clean stop releases the lease: the last replica takes over, and the stopped one exits 0.
    assert second[0].stop() == 0
    last = [r for r in survivors if r[0] is not second[0]]
    wait_for(lambda: the_leader(last), timeout=30, message="the last replica leads")
    stop.set()
    assert max(samples) == 1, f"two replicas led at once: {samples}"


def sampler(replicas: list[tuple[Process, int]], samples: list[int], stop: threading.Event) -> None:
    """How many live replicas claim to lead, sampled every 50 ms."""
    while not stop.wait(0.05):
        samples.append(sum(1 for p, port in replicas if p.alive() and leading(port) == 1.0))
