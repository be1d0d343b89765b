"""The scheduler against a real API server: binding, constraints, unschedulable pods, outages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from shared import redis_server
from tests.harness import Cluster, wait_for
from tests.support_scheduler import (
    PODS,
    condition,
    create,
    events_for,
    node,
    node_of,
    pod,
    start_scheduler,
    wait_bound,
)

NODES = "/api/v1/nodes"


def test_pods_are_bound_spread_and_reported(api: Cluster) -> None:
    with api.http() as http:
        for name in ("n1", "n2", "n3"):
            create(http, NODES, node(name))
        start_scheduler(api)
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid-1", "controller": True}
        for index in range(6):
            create(http, PODS, pod(f"web-{index}", ownerReferences=[owner]))
        placed = {f"web-{i}": wait_bound(http, f"web-{i}") for i in range(6)}
        # Same requests and the same owner: least-allocated plus spreading gives two each.
        assert sorted(Counter(placed.values()).values()) == [2, 2, 2], placed
        scheduled = condition(http, "web-0")
        assert scheduled is not None and scheduled["status"] == "True"

        def scheduled_event() -> dict | None:
            return next((e for e in events_for(http, "web-0") if e["reason"] == "Scheduled"), None)

        event = wait_for(scheduled_event, message="Scheduled event")
        assert event["type"] == "Normal"
        assert event["message"] == f"Successfully assigned default/web-0 to {placed['web-0']}"
        assert event["source"]["component"] == "default-scheduler"

        # Pods for another scheduler, or already given a node, are left alone.
        create(http, PODS, pod("other", schedulerName="my-scheduler"))
        create(http, PODS, pod("pinned", nodeName="n3"))
        create(http, PODS, pod("after"))
        wait_bound(http, "after")
        assert node_of(http, "other") is None
        assert node_of(http, "pinned") == "n3"
        assert not [e for e in events_for(http, "pinned") if e["reason"] == "Scheduled"]


def test_selectors_affinity_taints_and_tolerations(api: Cluster) -> None:
    gpu_taint = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
    with api.http() as http:
        create(http, NODES, node("ssd", labels={"disk": "ssd", "zone": "a", "rank": "1"}))
        create(http, NODES, node("plain", labels={"zone": "b", "rank": "5"}))
        create(http, NODES, node("gpu", labels={"gpu": "yes", "zone": "b", "rank": "9"}, taints=[gpu_taint]))
        create(http, NODES, node("cordoned", labels={"zone": "c"}, unschedulable=True))
        create(http, NODES, node("down", labels={"zone": "c"}, ready="False"))
        start_scheduler(api)

        def affinity(*expressions: dict, fields: list[dict] | None = None) -> dict:
            term: dict = {"matchExpressions": list(expressions)} if expressions else {}
            if fields:
                term["matchFields"] = fields
            return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}

        tolerate_gpu = [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
        cases = {
            "by-selector": (pod("by-selector", nodeSelector={"disk": "ssd"}), "ssd"),
            "tolerating": (pod("tolerating", nodeSelector={"gpu": "yes"}, tolerations=tolerate_gpu), "gpu"),
            "in-zone": (pod("in-zone", affinity=affinity({"key": "zone", "operator": "In", "values": ["b"]})), "plain"),
            "gt": (
                pod("gt", affinity=affinity({"key": "rank", "operator": "Gt", "values": ["3"]}),
                    tolerations=[{"key": "gpu", "operator": "Exists"}]),
                None,  # plain or gpu
            ),
            "lt": (pod("lt", affinity=affinity({"key": "rank", "operator": "Lt", "values": ["3"]})), "ssd"),
            "not-in": (
                pod("not-in", affinity=affinity({"key": "zone", "operator": "NotIn", "values": ["a", "c"]},
                                                {"key": "gpu", "operator": "DoesNotExist"})),
                "plain",
            ),
            "exists": (pod("exists", affinity=affinity({"key": "disk", "operator": "Exists"})), "ssd"),
            "by-field": (
                pod("by-field", affinity=affinity(fields=[{"key": "metadata.name", "operator": "In",
                                                           "values": ["plain"]}])),
                "plain",
            ),
            # Tolerating everything (empty key, Exists) reaches even a node that is not Ready.
            "anywhere": (
                pod("anywhere", tolerations=[{"operator": "Exists"}],
                    affinity=affinity(fields=[{"key": "metadata.name", "operator": "In", "values": ["down"]}])),
                "down",
            ),
        }
        for body, _ in cases.values():
            create(http, PODS, body)
        for name, (_, expected) in cases.items():
            placed = wait_bound(http, name)
            if expected is None:
                assert placed in ("plain", "gpu"), (name, placed)
            else:
                assert placed == expected, (name, placed)

        # Plain pods never land on the tainted, cordoned or not-ready nodes.
        for index in range(8):
            create(http, PODS, pod(f"plain-{index}"))
        assert {wait_bound(http, f"plain-{i}") for i in range(8)} <= {"ssd", "plain"}

        # Selecting the GPU node without tolerating its taint: unschedulable, and the message says why.
        create(http, PODS, pod("untolerated", nodeSelector={"gpu": "yes"}))
        scheduled = wait_for(
            lambda: (c := condition(http, "untolerated")) and c["status"] == "False" and c, message="condition"
        )
        assert scheduled["reason"] == "Unschedulable"
        assert scheduled["message"].startswith(
            "0/5 nodes are available: 1 node(s) had untolerated taint {gpu: true}, "
            "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
            "1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. preemption: "
        ), scheduled["message"]
        assert node_of(http, "untolerated") is None


def test_unschedulable_until_a_big_enough_node_appears(api: Cluster) -> None:
    with api.http() as http:
        create(http, NODES, node("small-1", cpu="1"))
        create(http, NODES, node("small-2", cpu="1"))
        start_scheduler(api)
        create(http, PODS, pod("big", cpu="8"))

        def unschedulable() -> dict | None:
            found = condition(http, "big")
            return found if found and found["status"] == "False" else None

        found = wait_for(unschedulable, message="PodScheduled=False")
        assert found["reason"] == "Unschedulable"
        assert found["message"].startswith("0/2 nodes are available: 2 Insufficient cpu. preemption: ")

        def failed_event() -> dict | None:
            return next((e for e in events_for(http, "big") if e["reason"] == "FailedScheduling"), None)

        event = wait_for(failed_event, message="FailedScheduling event")
        assert event["type"] == "Warning" and event["message"].startswith("0/2 nodes are available: 2 Insufficient cpu.")
        assert node_of(http, "big") is None
        described = api.kubectl("describe", "pod", "big").stdout
        assert "FailedScheduling" in described and "0/2 nodes are available: 2 Insufficient cpu." in described
        assert "PodScheduled" in described

        # Filling the small nodes does not help; a big node does.
        create(http, NODES, node("large", cpu="16"))
        assert wait_bound(http, "big") == "large"
        assert condition(http, "big")["status"] == "True"
        wide = api.kubectl("get", "pod", "big", "-o", "wide").stdout
        assert "large" in wide.splitlines()[1]


def test_capacity_freed_by_a_deleted_pod_is_reused(api: Cluster) -> None:
    with api.http() as http:
        create(http, NODES, node("only", cpu="1", pods="2"))
        start_scheduler(api)
        create(http, PODS, pod("first", cpu="600m"))
        wait_bound(http, "first")
        create(http, PODS, pod("second", cpu="600m"))
        wait_for(lambda: (c := condition(http, "second")) and c["status"] == "False", message="second unschedulable")
        # The pod is bound, so deletion is graceful; confirm it as a kubelet would.
        assert http.delete(f"{PODS}/first", params={"gracePeriodSeconds": "0"}).status_code == 200
        wait_for(lambda: http.get(f"{PODS}/first").status_code == 404, message="first gone")
        assert wait_bound(http, "second") == "only"


def test_survives_api_and_redis_outages(tmp_path: Path) -> None:
    """No API server for a while, then Redis restarted: the scheduler backs off and carries on."""
    port = redis_server.free_port()
    data = tmp_path / "redis"
    proc = redis_server.start(port=port, data_dir=data, persistent=True, log_file=tmp_path / "redis.log")
    cluster = Cluster(f"redis://127.0.0.1:{port}/0", tmp_path / "home")
    try:
        api = cluster.start_apiserver()
        with cluster.http() as http:
            create(http, NODES, node("n1"))
            for index in range(5):
                create(http, PODS, pod(f"p{index}"))
        api.stop()
        scheduler = start_scheduler(cluster, "--api-timeout-seconds", "0.5")
        wait_for(lambda: "binding failed; retrying" in scheduler.log(), timeout=20, message="bind retries")
        cluster.start_apiserver(port=api.port, consumer="api-again")
        with cluster.http() as http:
            for index in range(5):
                assert wait_bound(http, f"p{index}") == "n1"

        proc.terminate()
        proc.wait(timeout=10)
        wait_for(lambda: "redis unavailable" in scheduler.log(), timeout=20, message="scheduler noticed")
        proc = redis_server.start(port=port, data_dir=data, persistent=True, log_file=tmp_path / "redis.log")
        with cluster.http() as http:

            def created() -> bool:
                return http.post(PODS, json=pod("after-outage")).status_code in (201, 409)

            wait_for(created, timeout=30, message="API usable again")
            assert wait_bound(http, "after-outage", timeout=30) == "n1"
        assert scheduler.alive()
        assert scheduler.stop() == 0
    finally:
        cluster.stop()
        proc.terminate()
        proc.wait(timeout=10)
