"""The scheduler's pure parts: tolerations, node affinity, messages, accounting, decisions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.scheduler.resources import pod_requests
from services.scheduler.scheduling import BadPod, Scheduler
from shared import node_filters as filters
from shared.metrics import Metrics
from tests.support_scheduler import node, pod


class _Informer:
    def __init__(self) -> None:
        self.handlers: list[Any] = []
        self.cache: dict[str, Any] = {}

    def add_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def get(self, key: str) -> Any:
        return self.cache.get(key)

    def __len__(self) -> int:
        return len(self.cache)


def scheduler(*nodes: dict[str, Any]) -> Scheduler:
    made = Scheduler(pods=_Informer(), nodes=_Informer(), client=None, recorder=None, metrics=Metrics())  # type: ignore[arg-type]
    for item in nodes:
        made.on_node("ADDED", item, None)
    return made


def test_tolerations() -> None:
    taint = filters.Taint("gpu", "true", "NoSchedule")
    assert filters.tolerates([{"key": "gpu", "operator": "Equal", "value": "true"}], taint)
    assert filters.tolerates([{"key": "gpu", "value": "true"}], taint)  # Equal is the default
    assert not filters.tolerates([{"key": "gpu", "value": "false"}], taint)
    assert filters.tolerates([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert not filters.tolerates([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert filters.tolerates([{"operator": "Exists"}], taint)  # empty key + Exists: everything
    assert not filters.tolerates([{"key": "other", "operator": "Exists"}], taint)
    assert not filters.tolerates([], taint)


def test_node_affinity_operators() -> None:
    facts = filters.node_facts(node("n1", labels={"zone": "a", "rank": "5"}))

    def req(**requirement: Any) -> bool:
        return filters.term_matches({"matchExpressions": [requirement]}, facts)

    assert req(key="zone", operator="In", values=["a", "b"])
    assert not req(key="zone", operator="In", values=["b"])
    assert req(key="zone", operator="NotIn", values=["b"]) and req(key="nope", operator="NotIn", values=["b"])
    assert req(key="rank", operator="Exists") and not req(key="nope", operator="Exists")
    assert req(key="nope", operator="DoesNotExist") and not req(key="zone", operator="DoesNotExist")
    assert req(key="rank", operator="Gt", values=["3"]) and not req(key="rank", operator="Gt", values=["5"])
    assert req(key="rank", operator="Lt", values=["6"]) and not req(key="zone", operator="Lt", values=["6"])
    assert not req(key="rank", operator="Gt", values=["x"])
    assert filters.term_matches({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, facts)
    assert not filters.term_matches({}, facts)  # an empty term matches nothing


def test_not_ready_node_counts_as_tainted() -> None:
    assert filters.node_facts(node("a", ready="False")).taints[0].key == filters.NOT_READY_TAINT
    assert filters.node_facts(node("b", ready="Unknown")).taints[0].key == filters.UNREACHABLE_TAINT
    assert filters.node_facts(node("c")).taints == ()


def test_requests_like_the_api_server() -> None:
    spec = pod("p", cpu="250m", memory="64Mi")["spec"]
    spec["containers"].append({"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})
    spec["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "2"}}}]
    requests = pod_requests(spec)
    assert (requests.cpu, requests.memory) == (2000, 64 * 2**20 + 2**30)
    none = pod_requests(pod("q", cpu=None)["spec"])
    assert (none.cpu, none.memory) == (0, 0) and none.score_cpu == 100


def test_message_in_kubernetes_style() -> None:
    message = filters.unavailable_message(
        3, {"Insufficient cpu": 1, "node(s) had untolerated taint {node.kubernetes.io/unreachable: }": 2}, unresolvable=2
    )
    assert message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
        "{node.kubernetes.io/unreachable: }. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    )


async def test_decisions_count_assumed_pods_and_spread_owners() -> None:
    made = scheduler(node("a", cpu="1"), node("b", cpu="1"), node("down", ready="Unknown"))
    placed = []
    for index in range(4):
        body = pod(f"p{index}", cpu="400m")
        body["metadata"]["namespace"] = "default"
        decision = made.decide(body)
        assert decision.node in ("a", "b") and decision.requests is not None
        made.cache.assume(f"default/p{index}", node=decision.node, requests=decision.requests, owner="")
        placed.append(decision.node)
    assert sorted(placed) == ["a", "a", "b", "b"]
    full = made.decide(pod("p9", cpu="400m"))
    assert full.node is None
    assert full.message.startswith(
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
        "2 Insufficient cpu. preemption: "
    )
    made.cache.forget("default/p0")
    assert made.decide(pod("p9", cpu="400m")).node == placed[0]

    bad = {"metadata": {"name": "bad", "namespace": "default", "resourceVersion": "7"},
           "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "lots"}}}]}}
    with pytest.raises(BadPod):
        made.decide(bad)
    # A malformed pod is parked with a condition and an event queued, not retried in a loop nor fatal.
    weird = {"metadata": {"name": "weird", "namespace": "default", "resourceVersion": "8"},
             "spec": {"containers": [{"name": "c"}], "nodeSelector": ["not", "a", "map"]}}
    for item in (bad, weird):
        made.pods.cache[f"default/{item['metadata']['name']}"] = item  # type: ignore[attr-defined]
        await made.schedule_one(f"default/{item['metadata']['name']}")
        assert made.queue.is_parked(f"default/{item['metadata']['name']}")
    assert len(made._urgent) == 4  # a condition and a FailedScheduling event each


async def test_queue_backoff_parking_and_moves() -> None:
    from services.scheduler.queueing import SchedulingQueue

    queue = SchedulingQueue(initial_backoff=0.05, max_backoff=0.2, unschedulable_flush=60)
    queue.add("a")
    queue.add("b")
    queue.add("a")  # deduplicated
    assert await queue.pop() == "a" and await queue.pop() == "b"
    queue.attempted("a")
    queue.park("a")
    assert queue.is_parked("a") and len(queue) == 1
    assert queue.move_all() == 1 and not queue.is_parked("a")
    assert queue.counts() == {"active": 0, "backoff": 1, "unschedulable": 0}
    assert await asyncio.wait_for(queue.pop(), 1) == "a"  # after its back-off
    queue.add_backoff("c", 0.01)
    queue.delete("c")
    queue.add("d")
    assert await asyncio.wait_for(queue.pop(), 1) == "d"  # "c" was forgotten
    assert len(queue) == 0


def test_preferred_affinity_and_prefer_no_schedule_taints_steer_scores() -> None:
    soft = [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]
    made = scheduler(node("a", labels={"disk": "hdd"}), node("b", labels={"disk": "ssd"}),
                     node("c", labels={"disk": "ssd"}, taints=soft))
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    # ssd preferred; of the two ssd nodes, the one without the PreferNoSchedule taint.
    assert {made.decide(pod("p", affinity=preferred)).node for _ in range(20)} == {"b"}
    # Tolerating the taint makes b and c equal.
    tolerant = pod("q", affinity=preferred, tolerations=[{"key": "spot", "operator": "Exists"}])
    assert {made.decide(tolerant).node for _ in range(40)} == {"b", "c"}
    # Without preferences the soft taint alone keeps plain pods off c.
    assert "c" not in {made.decide(pod("r")).node for _ in range(20)}


def test_replicas_split_pods_by_rendezvous_hashing() -> None:
    from services.scheduler.membership import Peers

    replicas = [Peers(store=None, client=None, identity=name, scheduler_name="default-scheduler")  # type: ignore[arg-type]
                for name in ("s1", "s2", "s3")]
    for peers in replicas:
        peers.alive = ["s1", "s2", "s3"]
    keys = [f"default/p{i}" for i in range(300)]
    owners = [[p.mine(k) for p in replicas] for k in keys]
    assert all(sum(row) == 1 for row in owners)  # exactly one replica owns each pod
    shares = [sum(row[i] for row in owners) for i in range(3)]
    assert all(share > 50 for share in shares), shares
    # When s3 goes, only its pods move; the others keep theirs.
    before = {k: replicas[0].owner(k) for k in keys}
    replicas[0].alive = ["s1", "s2"]
    assert all(replicas[0].owner(k) == before[k] for k in keys if before[k] != "s3")
