"""The DaemonSet controller in a real controller manager, driven with the real kubectl.

Fake node agents (tests/support_controllers.py, ``bind=False``: daemon pods come bound)
play the kubelets of the nodes; nodes come and go through the API.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, node_body, start_controller_manager

CONTROLLERS = "daemonset,garbage_collector"
PODS = "/api/v1/namespaces/default/pods"

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  labels: {app: agent}
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sleep", "1000"]
"""


def daemon_pods(http: httpx.Client) -> dict[str, dict[str, Any]]:
    """Live daemon pods by node."""
    items = http.get(PODS, params={"labelSelector": "app=agent"}).json()["items"]
    out: dict[str, dict[str, Any]] = {}
    for pod in items:
        if not pod["metadata"].get("deletionTimestamp"):
            assert pod["spec"]["nodeName"] not in out, "two daemon pods on one node"
            out[pod["spec"]["nodeName"]] = pod
    return out


def test_daemonset_follows_nodes_rolls_out_and_cascades(api: Cluster) -> None:
    agents = [FakeNodeAgent(api, name, bind=False, interval=0.1) for name in ("n1", "n2", "n3")]
    for agent in agents[:2]:
        agent.create_node()
    tainted = node_body("n3")
    tainted["spec"] = {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}
    with api.http() as http:
        assert http.post("/api/v1/nodes", json=tainted).status_code == 201
    start_controller_manager(api, controllers=CONTROLLERS)
    for agent in agents:
        agent.start()
    try:
        applied = api.kubectl("apply", "-f", "-", input=DAEMONSET)
        assert "daemonset.apps/agent created" in applied.stdout
        api.kubectl("rollout", "status", "ds/agent", "--timeout=30s", timeout=40)
        with api.http() as http:
            pods = daemon_pods(http)
            assert set(pods) == {"n1", "n2"}  # the tainted node gets none
            first = pods["n1"]
            assert first["metadata"]["labels"]["controller-revision-hash"]
            assert first["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
            assert any(t.get("key") == "node.kubernetes.io/unreachable" for t in first["spec"]["tolerations"])

            table = api.kubectl("get", "ds").stdout.splitlines()
            assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                        "SELECTOR", "AGE"]
            assert table[1].split()[:7] == ["agent", "2", "2", "2", "2", "2", "<none>"]

            # A new node gets its pod.
            agent4 = FakeNodeAgent(api, "n4", bind=False, interval=0.1)
            agent4.create_node()
            with agent4:
                wait_for(lambda: set(daemon_pods(http)) == {"n1", "n2", "n4"}, timeout=20,
                         message="a pod on the new node")
                # Tolerating the taint brings the tainted node in.
                api.kubectl("patch", "ds", "agent", "--type=json", "-p",
                            '[{"op":"add","path":"/spec/template/spec/tolerations",'
                            '"value":[{"key":"dedicated","operator":"Exists"}]}]')
                api.kubectl("rollout", "status", "ds/agent", "--timeout=30s", timeout=40)
                pods = daemon_pods(http)
                assert set(pods) == {"n1", "n2", "n3", "n4"}
                revisions = {p["metadata"]["labels"]["controller-revision-hash"] for p in pods.values()}
                assert len(revisions) == 1 and first["metadata"]["labels"]["controller-revision-hash"] not in revisions
                assert pods["n1"]["metadata"]["uid"] != first["metadata"]["uid"]  # replaced by the rolling update
                # The node goes: so does its pod.
                assert http.delete("/api/v1/nodes/n4").status_code == 200
                wait_for(lambda: {p["spec"]["nodeName"] for p in http.get(
                    PODS, params={"labelSelector": "app=agent"}).json()["items"]} == {"n1", "n2", "n3"},
                    timeout=20, message="the removed node's pod gone")
            wait_for(lambda: api.kubectl_json("get", "ds", "agent")["status"].get("desiredNumberScheduled") == 3,
                     timeout=10)
            assert api.kubectl_json("get", "ds", "agent")["status"]["observedGeneration"] == 2

            api.kubectl("delete", "ds", "agent", "--timeout=30s", timeout=40)
            wait_for(lambda: not http.get(PODS, params={"labelSelector": "app=agent"}).json()["items"], timeout=20,
                     message="daemon pods deleted with their DaemonSet")
    finally:
        for agent in agents:
            agent.stop()


def test_daemonset_node_selector(api: Cluster) -> None:
    agents = [FakeNodeAgent(api, name, bind=False, interval=0.1) for name in ("a1", "a2")]
    for agent in agents:
        agent.create_node()
    with api.http() as http:
        assert http.patch("/api/v1/nodes/a2", json={"metadata": {"labels": {"disk": "ssd"}}},
                          headers={"Content-Type": "application/merge-patch+json"}).status_code == 200
    start_controller_manager(api, controllers=CONTROLLERS)
    manifest = DAEMONSET.replace("    spec:\n      containers:", "    spec:\n      nodeSelector: {disk: ssd}\n"
                                 "      containers:")
    for agent in agents:
        agent.start()
    try:
        api.kubectl("apply", "-f", "-", input=manifest)
        api.kubectl("rollout", "status", "ds/agent", "--timeout=30s", timeout=40)
        with api.http() as http:
            assert set(daemon_pods(http)) == {"a2"}
            assert "disk=ssd" in api.kubectl("get", "ds", "agent").stdout
            # Label the other node: it joins.
            http.patch("/api/v1/nodes/a1", json={"metadata": {"labels": {"disk": "ssd"}}},
                       headers={"Content-Type": "application/merge-patch+json"})
            wait_for(lambda: set(daemon_pods(http)) == {"a1", "a2"}, timeout=20, message="the labelled node joins")
    finally:
        for agent in agents:
            agent.stop()
