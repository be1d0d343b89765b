"""Several schedulers at once: optimistic binding must never overcommit a node or bind a pod twice."""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from shared import codec, quantity
from tests.harness import Cluster, Process, wait_for
from tests.support_scheduler import PODS, create, node, pod, start_scheduler


def _create_pods(cluster: Cluster, names: list[str], *, cpu: str, memory: str) -> None:
    def one(chunk: list[str]) -> None:
        with cluster.http() as http:
            for name in chunk:
                create(http, PODS, pod(name, cpu=cpu, memory=memory))

    chunks = [names[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, chunks))


def _all_pods(http: httpx.Client) -> list[dict[str, Any]]:
    response = http.get(PODS)
    assert response.status_code == 200
    return response.json()["items"]


def _bind_total(process: Process) -> int:
    """Successful bindings this scheduler made, from its /metrics."""
    text = httpx.get(f"http://127.0.0.1:{process.port}/metrics", timeout=5).text
    total = 0
    for line in text.splitlines():
        if line.startswith("redkube_scheduler_binds_total{") and 'result="bound"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _check_placement(cluster: Cluster, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
    """Every pod bound once, no node over its allocatable, and the node streams agree."""
    assert all(p["spec"].get("nodeName") for p in pods), [p["metadata"]["name"] for p in pods if not p["spec"].get(
        "nodeName")]
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pods:
        by_node[p["spec"]["nodeName"]].append(p)
    for n in nodes:
        allocatable = n["status"]["allocatable"]
        placed = by_node.get(n["metadata"]["name"], [])
        cpu = sum(quantity.milli(p["spec"]["containers"][0]["resources"]["requests"]["cpu"]) for p in placed)
        mem = sum(quantity.whole(p["spec"]["containers"][0]["resources"]["requests"]["memory"]) for p in placed)
        assert cpu <= quantity.milli(allocatable["cpu"]), (n["metadata"]["name"], cpu)
        assert mem <= quantity.whole(allocatable["memory"]), (n["metadata"]["name"], mem)
        assert len(placed) <= int(allocatable["pods"])
    # Each pod appears exactly once, as ADDED, in exactly one node's pod stream: the one it is bound to.
    streamed: Counter[str] = Counter()
    for n in nodes:
        name = n["metadata"]["name"]
        entries = cluster.redis.xrange(cluster.keys.kind("pods").node_stream(name))
        added = [codec.unpack(f[b"obj"]) for _id, f in entries if f[b"type"] == b"ADDED"]
        for obj in added:
            assert obj["spec"]["nodeName"] == name
            streamed[obj["metadata"]["name"]] += 1
        assert len(added) == len(by_node.get(name, [])), name
    assert set(streamed) == {p["metadata"]["name"] for p in pods}
    assert set(streamed.values()) == {1}


def test_three_schedulers_bind_500_pods_without_overcommit(api: Cluster) -> None:
    nodes = []
    with api.http() as http:
        # 20 nodes of 2.6 cpu hold 520 pods of 100m: the 500 fit, tightly, so the last slots are raced for.
        for index in range(20):
            nodes.append(create(http, "/api/v1/nodes", node(f"n{index:02d}", cpu="2600m", memory="4Gi", pods="40")))
        schedulers = [start_scheduler(api, name=f"scheduler-{i}") for i in range(3)]
        names = [f"p{i:03d}" for i in range(500)]
        _create_pods(api, names, cpu="100m", memory="64Mi")
        wait_for(lambda: all(p["spec"].get("nodeName") for p in _all_pods(http)), timeout=60, message="500 bound")
        pods = _all_pods(http)
    assert len(pods) == 500
    _check_placement(api, nodes, pods)
    # The schedulers' own counts of successful bindings add up to one per pod.
    wait_for(lambda: sum(_bind_total(s) for s in schedulers) == 500, timeout=10, message="bind counts")
    assert all(_bind_total(s) > 0 for s in schedulers), [_bind_total(s) for s in schedulers]
    for scheduler in schedulers:
        assert scheduler.stop() == 0


def test_killing_a_scheduler_loses_no_pod(api: Cluster) -> None:
    nodes = []
    with api.http() as http:
        for index in range(10):
            nodes.append(create(http, "/api/v1/nodes", node(f"k{index}", cpu="4", memory="4Gi", pods="40")))
        victim = start_scheduler(api, name="victim")
        survivor = start_scheduler(api, name="survivor")
        names = [f"q{i:03d}" for i in range(300)]
        with ThreadPoolExecutor(1) as pool:
            creating = pool.submit(_create_pods, api, names, cpu="100m", memory="32Mi")
            wait_for(lambda: sum(1 for p in _all_pods(http) if p["spec"].get("nodeName")) >= 30 and _bind_total(victim),
                     timeout=30, message="some pods bound, some by the victim")
            victim.kill()  # SIGKILL, mid-way
            creating.result()
        wait_for(lambda: all(p["spec"].get("nodeName") for p in _all_pods(http)), timeout=60, message="300 bound")
        pods = _all_pods(http)
    assert len(pods) == 300
    _check_placement(api, nodes, pods)
    assert survivor.alive()
