"""The ReplicaSet controller in a real controller manager against a real API server.

A fake node agent (tests/support_workloads.py) plays scheduler and kubelet.
"""

from __future__ import annotations

from typing import Any

from tests.harness import Cluster, wait_for
from tests.support_workloads import FakeNodeAgent, Sampler, events, live_pods, now, pods, start_control_plane

RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}, tier: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sleep", "1000"]
"""


def rs_manifest(name: str, *, replicas: int, app: str | None = None) -> str:
    return RS.format(name=name, replicas=replicas, app=app or name)


def rs_status(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = cluster.kubectl_json("get", "rs", name)
    status: dict[str, Any] = obj.get("status") or {}
    status["_generation"] = obj["metadata"]["generation"]
    return status


def settled(cluster: Cluster, name: str, replicas: int) -> bool:
    status = rs_status(cluster, name)
    return (status.get("observedGeneration") == status["_generation"] and status.get("replicas") == replicas
            and status.get("readyReplicas", 0) == replicas and status.get("availableReplicas", 0) == replicas
            and status.get("fullyLabeledReplicas", 0) == replicas)


def test_replicaset_keeps_its_replicas(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster) as agent, cluster.http() as http:
        with Sampler(cluster, lambda h: live_pods(h, selector="app=web")) as sampler:
            cluster.kubectl("apply", "-f", "-", input=rs_manifest("web", replicas=3))
            wait_for(lambda: settled(cluster, "web", 3), message="3 ready replicas")
        assert max(sampler.samples) == 3
        owned = pods(http, selector="app=web")
        assert len(owned) == 3
        for pod in owned:
            assert pod["metadata"]["generateName"] == "web-"
            assert pod["metadata"]["name"].startswith("web-")
            (ref,) = pod["metadata"]["ownerReferences"]
            assert ref["kind"] == "ReplicaSet" and ref["name"] == "web"
            assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
            assert pod["metadata"]["labels"] == {"app": "web", "tier": "web"}

        # A pod that goes is replaced.
        victim = owned[0]["metadata"]["name"]
        cluster.kubectl("delete", "pod", victim, "--wait=false")
        wait_for(lambda: victim not in {p["metadata"]["name"] for p in pods(http, selector="app=web")}
                 and settled(cluster, "web", 3), message="replacement pod")

        cluster.kubectl("scale", "rs", "web", "--replicas", "5")
        wait_for(lambda: settled(cluster, "web", 5), message="scaled up to 5")
        cluster.kubectl("scale", "rs", "web", "--replicas", "1")
        wait_for(lambda: settled(cluster, "web", 1) and len(pods(http, selector="app=web")) == 1,
                 message="scaled down to 1")

        # Expectations: exactly one creation per pod ever needed (3 + 1 replacement + 2), no doubles.
        created = events(http, name="web", reason="SuccessfulCreate")
        assert len(created) == 6, created
        assert len(agent.bound_at) == 6
        assert len(events(http, name="web", reason="SuccessfulDelete")) == 4
        assert all(m.startswith("Created pod: web-") for m in created)
        table = cluster.kubectl("get", "rs", "web").stdout.split("\n")[1].split()
        assert table[:4] == ["web", "1", "1", "1"]


def test_adopts_orphans_and_releases_pods_that_stop_matching(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster), cluster.http() as http:
        for index in range(2):
            response = http.post("/api/v1/namespaces/default/pods", json={
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"orphan-{index}", "labels": {"app": "adopt", "tier": "web"}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}})
            assert response.status_code == 201
        cluster.kubectl("apply", "-f", "-", input=rs_manifest("adopt", replicas=3))
        wait_for(lambda: settled(cluster, "adopt", 3), message="3 replicas with orphans adopted")
        names = {p["metadata"]["name"] for p in pods(http, selector="app=adopt")}
        assert {"orphan-0", "orphan-1"} <= names and len(names) == 3
        rs_uid = cluster.kubectl_json("get", "rs", "adopt")["metadata"]["uid"]
        for pod in pods(http, selector="app=adopt"):
            assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [rs_uid]
        assert len(events(http, name="adopt", reason="SuccessfulCreate")) == 1

        cluster.kubectl("label", "pod", "orphan-0", "app=elsewhere", "--overwrite")
        wait_for(lambda: not http.get("/api/v1/namespaces/default/pods/orphan-0").json()["metadata"].get(
            "ownerReferences"), message="pod released")
        wait_for(lambda: settled(cluster, "adopt", 3) and len(pods(http, selector="app=adopt")) == 3,
                 message="a replacement for the released pod")
        assert http.get("/api/v1/namespaces/default/pods/orphan-0").json()["metadata"].get("deletionTimestamp") is None


def test_scale_down_gives_up_the_least_valuable_pods_first(cluster: Cluster) -> None:
    start_control_plane(cluster)
    # This agent binds, runs and deletes nothing: the test sets every pod's state itself.
    with FakeNodeAgent(cluster, bind=False, run=False, confirm=False), cluster.http() as http:
        base = "/api/v1/namespaces/default/pods"

        def make(name: str) -> dict[str, Any]:
            response = http.post(base, json={
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "victims"}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}})
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        oldest = make("p-old")
        # Creation times have one-second resolution: let the clock move on before the rest.
        wait_for(lambda: now() > oldest["metadata"]["creationTimestamp"], timeout=3, message="next second")
        for name in ("p-new", "p-restarts", "p-notready", "p-pending", "p-unsched"):
            make(name)
        for name in ("p-old", "p-new", "p-restarts", "p-notready", "p-pending"):
            response = http.post(f"{base}/{name}/binding", json={
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
            assert response.status_code == 201, response.text
        ready_since = "2026-01-01T00:00:00Z"
        for name, ready, restarts in (("p-old", True, 0), ("p-new", True, 0), ("p-restarts", True, 5),
                                      ("p-notready", False, 0)):
            status = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                "lastTransitionTime": ready_since}],
                "containerStatuses": [{"name": "main", "ready": ready, "restartCount": restarts,
                                       "image": "busybox:1.36", "imageID": "", "state": {"running": {}}}],
            }
            response = http.patch(f"{base}/{name}/status", json={"status": status},
                                  headers={"Content-Type": "application/merge-patch+json"})
            assert response.status_code == 200, response.text

        cluster.kubectl("apply", "-f", "-", input=rs_manifest("victims", replicas=6))
        wait_for(lambda: rs_status(cluster, "victims").get("replicas") == 6, message="all six adopted")
        assert events(http, name="victims", reason="SuccessfulCreate") == []

        def remaining() -> set[str]:
            return {p["metadata"]["name"] for p in pods(http, selector="app=victims")
                    if not p["metadata"].get("deletionTimestamp")}

        expected = ["p-unsched", "p-pending", "p-notready", "p-restarts", "p-new"]
        alive = {"p-old", *expected}
        for replicas, victim in zip(range(5, 0, -1), expected, strict=True):
            cluster.kubectl("scale", "rs", "victims", "--replicas", str(replicas))
            alive.discard(victim)
            wait_for(lambda a=alive: remaining() == a, message=f"{victim} to go first")  # type: ignore[misc]
            assert remaining() == alive


BAD_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bad}}
spec:
  replicas: {replicas}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: {surge}}}}}
  selector: {{matchLabels: {{app: bad}}}}
  template:
    metadata: {{labels: {{app: {label}}}}}
    spec: {{containers: [{{name: main, image: busybox:1.36}}]}}
"""


def test_refused_pods_back_off_without_wedging_the_controller(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster), cluster.http() as http:
        # A valid ReplicaSet name, but "<name>-xxxxx" is too long for a pod: every create is refused.
        long = "x" * 250
        cluster.kubectl("apply", "-f", "-", input=rs_manifest(long, replicas=2, app="long"))
        wait_for(lambda: len(events(http, name=long, reason="FailedCreate")) >= 2, message="failed creations")
        failure = next(c for c in rs_status(cluster, long)["conditions"] if c["type"] == "ReplicaFailure")
        assert failure["status"] == "True" and failure["reason"] == "FailedCreate"
        assert "is invalid" in failure["message"]

        # The controller carries on with everything else.
        cluster.kubectl("apply", "-f", "-", input=rs_manifest("fine", replicas=2))
        wait_for(lambda: settled(cluster, "fine", 2), message="a healthy ReplicaSet alongside")
        # Retries back off (one create per attempt, waits doubling): a hot loop would have made hundreds.
        assert len(events(http, name=long, reason="FailedCreate")) < 30

        # Specs the controllers could not act on never reach them: the API refuses them.
        for replicas, surge, label in ((-1, 1, "bad"), (2, '"x"', "bad"), (2, 1, "other")):
            result = cluster.kubectl("apply", "-f", "-", check=False,
                                     input=BAD_DEPLOYMENT.format(replicas=replicas, surge=surge, label=label))
            assert result.returncode != 0 and "is invalid" in result.stderr, result.stderr
        assert all(p.alive() for p in cluster.processes)


def test_available_only_after_min_ready_seconds(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster):
        body = rs_manifest("slow", replicas=2).replace("spec:\n  replicas", "spec:\n  minReadySeconds: 3\n  replicas")
        cluster.kubectl("apply", "-f", "-", input=body)
        wait_for(lambda: rs_status(cluster, "slow").get("readyReplicas") == 2, message="2 ready")
        # Ready, but not yet for minReadySeconds (the clock has one-second resolution, so this is
        # seen well before the two seconds are up).
        assert rs_status(cluster, "slow").get("availableReplicas", 0) == 0
        # Nothing else changes: only the controller's own requeue can make them available.
        wait_for(lambda: rs_status(cluster, "slow").get("availableReplicas") == 2, timeout=10, message="2 available")
