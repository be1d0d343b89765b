"""The StatefulSet controller in a real controller manager, driven with the real kubectl.

A fake node agent (tests/support_controllers.py) binds pods and makes them Ready a
moment after it first sees them, so OrderedReady has something to wait for; the pods'
watch stream, replayed from Redis, shows the order things happened in.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, replay_pods, start_controller_manager

CONTROLLERS = "statefulset,garbage_collector"
PODS = "/api/v1/namespaces/default/pods"

STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  podManagementPolicy: {policy}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sleep", "1000"]
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 1Gi
"""


def manifest(*, replicas: int = 3, policy: str = "OrderedReady") -> str:
    return STATEFULSET.format(replicas=replicas, policy=policy)


def live(http: httpx.Client) -> dict[str, dict[str, Any]]:
    items = http.get(PODS, params={"labelSelector": "app=web"}).json()["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def pod_history(api: Cluster) -> list[tuple[str, str, set[str]]]:
    """(event, pod name, names of the ready live pods just before it) for the StatefulSet's pods."""
    out: list[tuple[str, str, set[str]]] = []
    before: set[str] = set()
    for kind, obj, pods in replay_pods(api):
        name = obj["metadata"]["name"]
        if name.startswith("web-"):
            event = "TERMINATING" if kind == "MODIFIED" and obj["metadata"].get("deletionTimestamp") else kind
            out.append((event, name, set(before)))
        before = {p["metadata"]["name"] for p in pods.values()
                  if ready(p) and not p["metadata"].get("deletionTimestamp")}
    return out


def test_statefulset_ordered_scaling_identity_and_rollout(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running" if age > 0.3 else "NotReady", interval=0.05)
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        assert "statefulset.apps/web created" in api.kubectl("apply", "-f", "-", input=manifest()).stdout
        api.kubectl("rollout", "status", "sts/web", "--timeout=30s", timeout=40)
        pods = live(http)
        assert sorted(pods) == ["web-0", "web-1", "web-2"]
        assert pods["web-1"]["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
        assert pods["web-1"]["spec"]["hostname"] == "web-1" and pods["web-1"]["spec"]["subdomain"] == "web"
        # OrderedReady: each pod is created only once all lower ordinals are ready.
        added = [(name, before) for event, name, before in pod_history(api) if event == "ADDED"]
        assert [n for n, _ in added] == ["web-0", "web-1", "web-2"]
        assert {"web-0"} <= added[1][1] and {"web-0", "web-1"} <= added[2][1]
        sts = api.kubectl_json("get", "sts", "web")
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        assert sts["status"]["readyReplicas"] == 3 and sts["status"]["currentRevision"] == sts["status"][
            "updateRevision"]
        table = api.kubectl("get", "sts").stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].split()[:2] == ["web", "3/3"]

        # Scale up then down: down goes from the highest ordinal, one at a time.
        api.kubectl("scale", "sts/web", "--replicas=5")
        wait_for(lambda: sorted(n for n, p in live(http).items() if ready(p)) == [f"web-{i}" for i in range(5)],
                 timeout=20, message="five ready pods")
        api.kubectl("scale", "sts/web", "--replicas=2")
        wait_for(lambda: sorted(http.get(PODS, params={"labelSelector": "app=web"}).json()["items"] and live(http))
                 == ["web-0", "web-1"] and len(http.get(PODS, params={"labelSelector": "app=web"}).json()["items"])
                 == 2, timeout=20, message="scaled down to two")
        gone = [name for event, name, _ in pod_history(api) if event == "TERMINATING"]
        assert gone == ["web-4", "web-3", "web-2"]

        # A deleted pod comes back under its name.
        uid = live(http)["web-1"]["metadata"]["uid"]
        # (--wait=false: kubectl's wait can miss the deletion when the new web-1 is listed first.)
        api.kubectl("delete", "pod", "web-1", "--wait=false")
        wait_for(lambda: (p := live(http).get("web-1")) is not None and p["metadata"]["uid"] != uid and ready(p),
                 timeout=20, message="web-1 recreated")

        # A rolling update replaces pods from the highest ordinal down.
        api.kubectl("set", "image", "sts/web", "main=busybox:1.37")
        api.kubectl("rollout", "status", "sts/web", "--timeout=30s", timeout=40)
        pods = live(http)
        assert {p["spec"]["containers"][0]["image"] for p in pods.values()} == {"busybox:1.37"}
        replaced = [name for event, name, _ in pod_history(api) if event == "TERMINATING"][3:]
        assert replaced == ["web-1", "web-1", "web-0"]  # the manual deletion, then the update: 1 before 0
        status = api.kubectl_json("get", "sts", "web")["status"]
        assert status["updatedReplicas"] == 2 and status["currentRevision"] == status["updateRevision"]

        api.kubectl("delete", "sts", "web", "--timeout=30s", timeout=40)
        wait_for(lambda: not http.get(PODS, params={"labelSelector": "app=web"}).json()["items"], timeout=20,
                 message="pods deleted with their StatefulSet")


def test_statefulset_parallel_does_not_wait(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "NotReady", interval=0.1)  # never ready
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        api.kubectl("apply", "-f", "-", input=manifest(policy="Parallel"))
        wait_for(lambda: sorted(live(http)) == ["web-0", "web-1", "web-2"], timeout=20,
                 message="all pods created without waiting")
        status = wait_for(lambda: (s := api.kubectl_json("get", "sts", "web").get("status") or {}).get("replicas") == 3
                          and s, timeout=10)
        assert status.get("readyReplicas", 0) == 0
