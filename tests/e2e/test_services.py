"""Services end to end: ``examples/web.yaml`` on a real node, reached through the proxy.

A real API server, scheduler, controller manager (Deployment, ReplicaSet and Endpoints
controllers), kubelet (pods are real python3 web servers on their own loopback
addresses) and proxy; the user's side is the real kubectl and plain HTTP requests to
the ClusterIP and the NodePort, as the README tells a new user to do.
"""

from __future__ import annotations

import json
import random
import re
import urllib.request
from pathlib import Path

from tests.harness import ROOT, Cluster, wait_for
from tests.support_kubelet import cleanup, node_cluster, start_kubelet, wait_kubelet_ready
from tests.support_proxy import start_proxy

EXAMPLE = ROOT / "examples" / "web.yaml"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.read().decode()


def pod_names(cluster: Cluster) -> set[str]:
    pods = cluster.kubectl_json("get", "pods", "-l", "app=web")["items"]
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def ready_addresses(cluster: Cluster) -> list[str]:
    found = cluster.kubectl("get", "endpoints", "web", "-o", "json", check=False)
    if found.returncode != 0:
        return []
    subsets = json.loads(found.stdout).get("subsets") or []
    return [a["ip"] for s in subsets for a in s.get("addresses") or []]


def answers(url: str, count: int) -> set[str]:
    names = set()
    for _ in range(count):
        match = re.fullmatch(r"hello from (\S+) \((\S+)\)\n", get(url))
        assert match, "unexpected answer"
        names.add(match.group(1))
    return names


def test_web_example_through_cluster_ip_and_node_port(cluster: Cluster, tmp_path: Path) -> None:
    index = random.randrange(150, 250)  # a node address and pod range of this test's own
    node_ip = f"127.10.{index}.1"
    node_port = random.randrange(30100, 32700)
    manifest = EXAMPLE.read_text().replace("nodePort: 30080", f"nodePort: {node_port}")
    node_cluster(cluster, "n1")
    try:
        kubelet = start_kubelet(cluster, "n1", index=index)
        cluster.start("scheduler", token="scheduler")
        cluster.start("controller-manager", token="controller-manager")
        start_proxy(cluster, "n1", node_ip)
        wait_kubelet_ready(kubelet)

        cluster.kubectl("apply", "-f", "-", input=manifest)
        wait_for(lambda: len(ready_addresses(cluster)) == 3, timeout=40, message="3 ready endpoints")
        service = cluster.kubectl_json("get", "service", "web")
        cluster_ip = service["spec"]["clusterIP"]
        pods = pod_names(cluster)
        assert len(pods) == 3

        through_cluster_ip = wait_for(lambda: answers(f"http://{cluster_ip}:8080/", 12) == pods, timeout=10,
                                      message="every pod answering through the ClusterIP")
        assert through_cluster_ip
        assert answers(f"http://{node_ip}:{node_port}/", 12) == pods

        cluster.kubectl("scale", "deployment", "web", "--replicas", "2")
        wait_for(lambda: len(ready_addresses(cluster)) == 2, timeout=30, message="2 ready endpoints")
        remaining = pod_names(cluster)
        wait_for(lambda: len(remaining) == 2 and answers(f"http://{cluster_ip}:8080/", 10) <= remaining,
                 timeout=10, message="traffic only to the remaining pods")
        assert answers(f"http://{node_ip}:{node_port}/", 10) == remaining
    finally:
        cleanup(cluster.home)
