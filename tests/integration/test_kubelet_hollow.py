"""Simulated nodes: ``redkube hollow-nodes`` (many in one process) and ``kubelet --runtime simulated``."""

from __future__ import annotations

from tests.harness import Cluster, wait_for
from tests.support_kubelet import create, get_pod, node_cluster, pod, start_kubelet


def _ready_nodes(cluster: Cluster, prefix: str) -> int:
    items = cluster.kubectl_json("get", "nodes")["items"]
    return sum(
        1
        for n in items
        if n["metadata"]["name"].startswith(prefix + "-")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
    )


def test_hollow_nodes_register_and_run_pods(api: Cluster) -> None:
    hollow = api.start("hollow-nodes", "--count", "50", "--name-prefix", "hollow", "--lease-seconds", "2")
    wait_for(lambda: _ready_nodes(api, "hollow") == 50, timeout=60, interval=0.5, message="50 Ready nodes")
    wait_for(lambda: len([x for x in api.kubectl_json("get", "leases", "-n", "kube-node-lease")["items"]
                          if x["metadata"]["name"].startswith("hollow-")]) == 50, message="50 leases")
    leases = api.kubectl_json("get", "leases", "-n", "kube-node-lease")["items"]
    assert all(x["spec"]["holderIdentity"] == x["metadata"]["name"] for x in leases)
    names = [f"p{i}" for i in range(20)]
    for i, name in enumerate(names):
        create(api, pod(name, ["sleep", "1000"], node=f"hollow-{i % 50 + 1}"))

    def all_running() -> bool:
        pods = [get_pod(api, n) for n in names]
        return all(p and p["status"].get("phase") == "Running" and p["status"].get("podIP") for p in pods)

    wait_for(all_running, timeout=30, message="pods Running")
    found = get_pod(api, "p3")
    assert found is not None
    assert {c["type"]: c["status"] for c in found["status"]["conditions"]}["Ready"] == "True"
    assert found["status"]["containerStatuses"][0]["ready"] is True
    table = api.kubectl("get", "pods", "p3").stdout
    assert "Running" in table and "1/1" in table
    api.kubectl("delete", "pod", "p3", "p4", "--wait=false")
    wait_for(lambda: get_pod(api, "p3") is None and get_pod(api, "p4") is None, message="deletion confirmed")
    assert hollow.alive()
    assert hollow.stop() == 0


def test_simulated_kubelet(cluster: Cluster) -> None:
    node_cluster(cluster, "sim1")
    kubelet = start_kubelet(cluster, "sim1", "--runtime", "simulated", index=202)
    create(cluster, pod("fake", ["/does/not/matter"], node="sim1"))
    wait_for(lambda: (get_pod(cluster, "fake") or {}).get("status", {}).get("phase") == "Running",
             message="simulated pod Running")
    node = cluster.kubectl_json("get", "node", "sim1")
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("redkube-simulated")
    cluster.kubectl("delete", "pod", "fake", "--wait=false")
    wait_for(lambda: get_pod(cluster, "fake") is None, message="deleted at once")
    assert kubelet.stop() == 0
