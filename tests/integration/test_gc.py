"""The garbage collector: background, foreground and orphan deletion of a
Deployment -> ReplicaSet -> Pod chain built by hand, and owners that never were."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, start_controller_manager

NS = "/api/v1/namespaces/default"
APPS = "/apis/apps/v1/namespaces/default"
CONTROLLERS = "garbage_collector"
LABELS = {"app": "web", "pod-template-hash": "abc"}


def owner_ref(obj: dict[str, Any], *, block: bool = True) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": block}


def template() -> dict[str, Any]:
    return {"metadata": {"labels": LABELS},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "100"]}]}}


def build_chain(http: httpx.Client, replicas: int = 2) -> dict[str, Any]:
    """A paused Deployment owning a ReplicaSet owning ``replicas`` pods, consistent with one another
    so that ReplicaSet/Deployment controllers, if they run, have nothing to change."""
    deployment = http.post(f"{APPS}/deployments", json={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "paused": True, "selector": {"matchLabels": {"app": "web"}},
                 "template": template()}})
    assert deployment.status_code == 201, deployment.text
    rs = http.post(f"{APPS}/replicasets", json={
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "labels": LABELS, "ownerReferences": [owner_ref(deployment.json())]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS}, "template": template()}})
    assert rs.status_code == 201, rs.text
    pods = []
    for n in range(replicas):
        pod = http.post(f"{NS}/pods", json={
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-abc-{n}", "labels": LABELS, "ownerReferences": [owner_ref(rs.json())]},
            "spec": template()["spec"]})
        assert pod.status_code == 201, pod.text
        pods.append(pod.json())
    return {"deployment": deployment.json(), "rs": rs.json(), "pods": pods}


def names(http: httpx.Client, path: str) -> set[str]:
    return {o["metadata"]["name"] for o in http.get(path).json()["items"]}


def running(http: httpx.Client, count: int) -> None:
    wait_for(lambda: sum(1 for p in http.get(f"{NS}/pods").json()["items"]
                         if p["status"].get("phase") == "Running") == count, message=f"{count} pods running")


def test_background_deletion_removes_the_chain(api: Cluster) -> None:
    agent = FakeNodeAgent(api)
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        build_chain(http)
        running(http, 2)
        api.kubectl("delete", "deployment", "web")
        wait_for(lambda: not names(http, f"{APPS}/replicasets"), message="replicaset collected")
        wait_for(lambda: not names(http, f"{NS}/pods"), message="pods collected")
        assert http.get(f"{APPS}/deployments/web").status_code == 404


def test_orphan_deletion_leaves_dependents(api: Cluster) -> None:
    agent = FakeNodeAgent(api)
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        chain = build_chain(http)
        running(http, 2)
        api.kubectl("delete", "deployment", "web", "--cascade=orphan")
        wait_for(lambda: http.get(f"{APPS}/deployments/web").status_code == 404, message="deployment removed")
        rs = http.get(f"{APPS}/replicasets/web-abc").json()
        assert not rs["metadata"].get("ownerReferences")  # released, not deleted
        assert rs["metadata"]["uid"] == chain["rs"]["metadata"]["uid"]
        # The pods keep their (living) owner and stay, past the collector's grace period.
        http.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "marker", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "nobody",
                                                   "uid": "00000000-0000-0000-0000-000000000000"}]},
            "spec": template()["spec"]})
        wait_for(lambda: http.get(f"{NS}/pods/marker").status_code == 404, message="marker collected")
        assert names(http, f"{NS}/pods") == {"web-abc-0", "web-abc-1"}
        pod = http.get(f"{NS}/pods/web-abc-0").json()
        assert pod["metadata"]["ownerReferences"][0]["uid"] == chain["rs"]["metadata"]["uid"]


def test_foreground_deletion_deletes_dependents_first(api: Cluster) -> None:
    agent = FakeNodeAgent(api)
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        build_chain(http)
        running(http, 2)
        agent.paused.set()  # pods will wait in Terminating until the kubelet confirms
        api.kubectl("delete", "deployment", "web", "--cascade=foreground", "--wait=false")

        def pods_terminating() -> bool:
            pods = http.get(f"{NS}/pods").json()["items"]
            return len(pods) == 2 and all(p["metadata"].get("deletionTimestamp") for p in pods)

        wait_for(pods_terminating, message="pods terminating")
        deployment = http.get(f"{APPS}/deployments/web").json()
        rs = http.get(f"{APPS}/replicasets/web-abc").json()
        # Owners wait for their blocking dependents.
        assert deployment["metadata"]["deletionTimestamp"] and "foregroundDeletion" in deployment["metadata"][
            "finalizers"]
        assert rs["metadata"]["deletionTimestamp"] and "foregroundDeletion" in rs["metadata"]["finalizers"]
        agent.paused.clear()
        wait_for(lambda: http.get(f"{APPS}/deployments/web").status_code == 404, message="deployment gone last")
        assert not names(http, f"{NS}/pods") and not names(http, f"{APPS}/replicasets")


def test_missing_and_partial_owners(api: Cluster) -> None:
    start_controller_manager(api, controllers=CONTROLLERS)
    with api.http() as http:
        owner = http.post(f"{NS}/services", json={"apiVersion": "v1", "kind": "Service", "metadata": {"name": "own"},
                                                  "spec": {"ports": [{"port": 80}]}}).json()
        ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
                 "uid": "11111111-1111-1111-1111-111111111111"}
        http.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "orphaned", "ownerReferences": [ghost]},
                                      "spec": template()["spec"]})
        http.post(f"{NS}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "shared", "ownerReferences": [ghost, owner_ref(owner, block=False) | {"controller": False}]},
            "spec": template()["spec"]})
        wait_for(lambda: http.get(f"{NS}/pods/orphaned").status_code == 404, message="orphaned pod collected")
        # A dependent with one living owner stays; only the dangling reference goes.
        shared = wait_for(lambda: (lambda p: p if len(p["metadata"]["ownerReferences"]) == 1 else None)(
            http.get(f"{NS}/pods/shared").json()), message="dangling reference removed")
        assert shared["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        # Deleting that owner collects it too (any kind may own any other).
        http.delete(f"{NS}/services/own")
        wait_for(lambda: http.get(f"{NS}/pods/shared").status_code == 404, message="shared pod collected")
