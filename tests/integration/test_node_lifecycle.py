"""Node lifecycle: a silent node goes Unknown and tainted, its pods are evicted; it recovers."""

from __future__ import annotations

from typing import Any

from shared import pki
from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, LeaseRenewer, start_controller_manager

NS = "/api/v1/namespaces/default"
UNREACHABLE = "node.kubernetes.io/unreachable"


def pod(name: str, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
            "spec": {"tolerations": tolerations or [],
                     "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1000"]}]}}


def ready(node: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def taints(node: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node.get("spec", {}).get("taints") or []}


def test_stale_lease_taints_evicts_and_recovers(cluster: Cluster) -> None:
    for name in ("n1", "n2"):
        pki.ensure_node_token(cluster.identity, name)
    cluster.start_apiserver()
    n1 = FakeNodeAgent(cluster, "n1")
    n1.create_node()
    n2 = FakeNodeAgent(cluster, "n2", bind=False)
    n2.create_node()
    never = FakeNodeAgent(cluster, "n3", bind=False)
    never.create_node()  # a node whose kubelet never renews a lease
    with n1, n2, LeaseRenewer(cluster, "n1") as lease1, LeaseRenewer(cluster, "n2"), cluster.http() as http:
        start_controller_manager(cluster, "--node-grace-seconds", "2", "--eviction-seconds", "2",
                                 controllers="node_lifecycle,job")
        http.post(f"{NS}/pods", json=pod("plain"))
        http.post(f"{NS}/pods", json=pod("patient", [{"key": UNREACHABLE, "operator": "Exists",
                                                      "effect": "NoExecute", "tolerationSeconds": 5}]))
        http.post(f"{NS}/pods", json=pod("forever", [{"key": UNREACHABLE, "operator": "Exists",
                                                      "effect": "NoExecute"}]))
        http.post("/apis/batch/v1/namespaces/default/jobs", json={
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "worker"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "w", "image": "busybox", "command": ["sleep", "1000"]}]}}}})
        wait_for(lambda: len([p for p in http.get(f"{NS}/pods").json()["items"]
                              if p["status"].get("phase") == "Running"]) == 4, message="4 pods running on n1")
        # A healthy node stays healthy past the grace period (the third never had a lease: it goes Unknown).
        wait_for(lambda: ready(http.get("/api/v1/nodes/n3").json())["status"] == "Unknown", timeout=15,
                 message="lease-less node judged after the grace period")
        assert ready(http.get("/api/v1/nodes/n1").json())["status"] == "True"

        # n1's kubelet dies: no more lease renewals, no more pod status.
        n1.paused.set()
        lease1.renewing.clear()
        n2.bind = True  # replacements can only go to n2 now
        node = wait_for(lambda: (lambda n: n if ready(n)["status"] == "Unknown" and (UNREACHABLE, "NoExecute")
                                 in taints(n) else None)(http.get("/api/v1/nodes/n1").json()),
                        timeout=15, message="n1 Unknown and tainted")
        assert ready(node)["reason"] == "NodeStatusUnknown"
        assert ready(node)["message"] == "Kubelet stopped posting node status."
        assert (UNREACHABLE, "NoSchedule") in taints(node)
        # The event is written after the status it describes: wait for it rather than race it.
        wait_for(lambda: "NodeNotReady" in [e["reason"] for e in http.get(
            "/api/v1/events", params={"fieldSelector": "involvedObject.name=n1"}).json()["items"]],
            timeout=10, message="the NodeNotReady event")
        forever = http.get(f"{NS}/pods/forever").json()
        assert any(c["type"] == "Ready" and c["status"] == "False" for c in forever["status"]["conditions"])

        # Pods without a toleration go after eviction-seconds; the Job replaces its pod on n2.
        wait_for(lambda: http.get(f"{NS}/pods/plain").status_code == 404, timeout=15, message="plain evicted")
        wait_for(lambda: any(p["spec"].get("nodeName") == "n2" and p["status"].get("phase") == "Running"
                             for p in http.get(f"{NS}/pods").json()["items"]
                             if p["metadata"]["name"].startswith("worker-")), timeout=15,
                 message="job pod replaced on n2")
        assert http.get(f"{NS}/pods/patient").status_code == 200  # tolerates 5 s
        wait_for(lambda: http.get(f"{NS}/pods/patient").status_code == 404, timeout=15, message="patient evicted")
        assert http.get(f"{NS}/pods/forever").status_code == 200  # tolerates for ever
        assert ready(http.get("/api/v1/nodes/n2").json())["status"] == "True"
        assert not taints(http.get("/api/v1/nodes/n2").json())

        # The kubelet comes back: lease renewed, Ready posted; the taints go.
        lease1.renewing.set()
        lease1.post_ready()
        n1.paused.clear()
        wait_for(lambda: not taints(http.get("/api/v1/nodes/n1").json()), timeout=15, message="taints removed")
        assert ready(http.get("/api/v1/nodes/n1").json())["status"] == "True"
        assert http.get(f"{NS}/pods/forever").status_code == 200


def test_pods_of_a_deleted_node_are_removed(api: Cluster) -> None:
    agent = FakeNodeAgent(api, "gone")
    agent.create_node()
    start_controller_manager(api, controllers="node_lifecycle")
    with agent, api.http() as http:
        http.post(f"{NS}/pods", json=pod("stranded"))
        wait_for(lambda: http.get(f"{NS}/pods/stranded").json()["status"].get("phase") == "Running",
                 message="pod running")
        agent.paused.set()
        api.kubectl("delete", "node", "gone")
        wait_for(lambda: http.get(f"{NS}/pods/stranded").status_code == 404, message="pod of deleted node removed")
