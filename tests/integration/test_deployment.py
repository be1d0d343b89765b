"""The Deployment controller in a real controller manager against a real API server.

A fake node agent (tests/support_workloads.py) plays scheduler and kubelet; the
rollout scenarios driven by ``kubectl rollout`` are in tests/e2e/test_rollout.py.
"""

from __future__ import annotations

from typing import Any

from tests.harness import Cluster, wait_for
from tests.support_workloads import FakeNodeAgent, events, pods, start_control_plane

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  revisionHistoryLimit: {history}
  progressDeadlineSeconds: {deadline}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: {image}
        command: ["sleep", "1000"]
"""


def manifest(name: str = "web", *, replicas: int = 3, image: str = "busybox:1.36", history: int = 10,
             deadline: int = 600) -> str:
    return DEPLOYMENT.format(name=name, replicas=replicas, image=image, history=history, deadline=deadline)


def deployment(cluster: Cluster, name: str = "web") -> dict[str, Any]:
    obj: dict[str, Any] = cluster.kubectl_json("get", "deployment", name)
    return obj


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def rolled_out(cluster: Cluster, name: str = "web", *, replicas: int = 3) -> bool:
    obj = deployment(cluster, name)
    status = obj.get("status") or {}
    return (status.get("observedGeneration") == obj["metadata"]["generation"]
            and status.get("replicas") == replicas and status.get("updatedReplicas") == replicas
            and status.get("availableReplicas") == replicas and status.get("readyReplicas") == replicas
            and condition(obj, "Progressing").get("reason") == "NewReplicaSetAvailable")


def replicasets(cluster: Cluster, app: str = "web") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kubectl_json("get", "rs", "-l", f"app={app}")["items"]
    return items


def test_deployment_of_three_becomes_available(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=manifest())
        wait_for(lambda: rolled_out(cluster), message="3 available replicas")
        obj = deployment(cluster)
        assert condition(obj, "Available")["status"] == "True"
        assert condition(obj, "Available")["reason"] == "MinimumReplicasAvailable"
        progressing = condition(obj, "Progressing")
        assert progressing["status"] == "True"
        assert progressing["message"].startswith('ReplicaSet "web-') and "successfully progressed" in progressing[
            "message"]
        assert obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        assert obj["status"]["unavailableReplicas"] == 0

        (rs,) = replicasets(cluster)
        digest = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{digest}"
        assert 5 <= len(digest) <= 10 and digest.isalnum()
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": digest}
        assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": digest}
        annotations = rs["metadata"]["annotations"]
        assert annotations["deployment.kubernetes.io/revision"] == "1"
        assert annotations["deployment.kubernetes.io/desired-replicas"] == "3"
        assert annotations["deployment.kubernetes.io/max-replicas"] == "4"
        (ref,) = rs["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"]) == ("Deployment", "web", obj["metadata"]["uid"])
        assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
        assert all(p["metadata"]["labels"]["pod-template-hash"] == digest for p in pods(http, selector="app=web"))
        assert events(http, name="web", reason="ScalingReplicaSet") == [
            f"Scaled up replica set web-{digest} from 0 to 3"]
        table = cluster.kubectl("get", "deployment", "web").stdout.splitlines()
        assert table[1].split()[:4] == ["web", "3/3", "3", "3"]
        described = cluster.kubectl("describe", "deployment", "web").stdout
        assert f"NewReplicaSet:   web-{digest} (3/3 replicas created)" in described
        assert f"Scaled up replica set web-{digest} from 0 to 3" in described
        assert "3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in described
        assert "deployment-controller" in described


def test_kubectl_scale_up_and_down(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=manifest(replicas=2))
        wait_for(lambda: rolled_out(cluster, replicas=2), message="2 replicas")
        cluster.kubectl("scale", "deployment", "web", "--replicas", "5")
        wait_for(lambda: rolled_out(cluster, replicas=5), message="scaled up to 5")
        assert len(pods(http, selector="app=web")) == 5
        cluster.kubectl("scale", "deployment", "web", "--replicas", "1")
        wait_for(lambda: rolled_out(cluster, replicas=1) and len(pods(http, selector="app=web")) == 1,
                 message="scaled down to 1")
        (rs,) = replicasets(cluster)
        name = rs["metadata"]["name"]
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"
        assert sorted(events(http, name="web", reason="ScalingReplicaSet")) == [
            f"Scaled down replica set {name} from 5 to 1",
            f"Scaled up replica set {name} from 0 to 2",
            f"Scaled up replica set {name} from 2 to 5",
        ]


def test_revision_history_limit_deletes_idle_old_replicasets(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster):
        for number, image in enumerate(("busybox:1.34", "busybox:1.35", "busybox:1.36", "busybox:1.37"), 1):
            cluster.kubectl("apply", "-f", "-", input=manifest(replicas=2, image=image, history=1))
            wait_for(lambda: rolled_out(cluster, replicas=2), message=f"rollout {number}")
        wait_for(lambda: len(replicasets(cluster)) == 2, message="only one old replica set kept")
        revisions = sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                           for rs in replicasets(cluster))
        assert revisions == [3, 4]
        images = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
                  for rs in replicasets(cluster)}
        assert images == {"busybox:1.36": 0, "busybox:1.37": 2}


def test_progress_deadline_exceeded(cluster: Cluster) -> None:
    start_control_plane(cluster)
    # Pods are bound but never become ready: the rollout cannot progress.
    with FakeNodeAgent(cluster, run=False):
        cluster.kubectl("apply", "-f", "-", input=manifest(replicas=2, deadline=2))
        wait_for(lambda: condition(deployment(cluster), "Progressing").get("reason") == "ProgressDeadlineExceeded",
                 timeout=20, message="progress deadline exceeded")
        obj = deployment(cluster)
        progressing = condition(obj, "Progressing")
        assert progressing["status"] == "False"
        assert progressing["message"] == f'ReplicaSet "{replicasets(cluster)[0]["metadata"]["name"]}" has timed out ' \
                                         "progressing."
        assert condition(obj, "Available") == {**condition(obj, "Available"), "status": "False",
                                               "reason": "MinimumReplicasUnavailable"}
        result = cluster.kubectl("rollout", "status", "deployment/web", "--timeout", "20s", check=False)
        assert result.returncode != 0
        assert 'deployment "web" exceeded its progress deadline' in result.stderr


def test_deleting_a_deployment(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster):
        cluster.kubectl("apply", "-f", "-", input=manifest(replicas=2))
        wait_for(lambda: rolled_out(cluster, replicas=2), message="2 replicas")
        (rs,) = replicasets(cluster)
        assert cluster.kubectl("delete", "deployment", "web").stdout.strip() == 'deployment.apps "web" deleted'
        assert cluster.kubectl("get", "deployment", "web", check=False).returncode != 0
        # Its ReplicaSet is the garbage collector's to delete; the Deployment controller must
        # not create another, and the controller manager carries on.
        cluster.kubectl("apply", "-f", "-", input=manifest("other", replicas=1))
        wait_for(lambda: rolled_out(cluster, "other", replicas=1), message="another deployment still rolls out")
        names = {r["metadata"]["name"] for r in replicasets(cluster)}
        assert names <= {rs["metadata"]["name"]}


def test_scaling_during_a_stuck_rollout_is_proportional(cluster: Cluster) -> None:
    """The example of the Kubernetes documentation: 10 replicas, maxSurge 3, maxUnavailable 2,
    a rollout to an image that never starts, then a scale to 15: 3 more for the old
    ReplicaSet (8 -> 11) and 2 for the new one (5 -> 7)."""
    start_control_plane(cluster)
    broken = "busybox:broken"
    with FakeNodeAgent(cluster, runs=lambda pod: pod["spec"]["containers"][0]["image"] != broken):
        body = manifest(replicas=10).replace("spec:\n  replicas", "spec:\n  strategy: {rollingUpdate: "
                                             "{maxSurge: 3, maxUnavailable: 2}}\n  replicas")
        cluster.kubectl("apply", "-f", "-", input=body)
        wait_for(lambda: rolled_out(cluster, replicas=10), message="10 replicas")
        (first,) = replicasets(cluster)
        cluster.kubectl("apply", "-f", "-", input=body.replace("busybox:1.36", broken))

        def sizes() -> dict[str, int]:
            return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
                    for rs in replicasets(cluster)}

        wait_for(lambda: sizes() == {"busybox:1.36": 8, broken: 5}, message="a stuck rollout at 8 + 5")
        wait_for(lambda: deployment(cluster)["status"].get("availableReplicas") == 8, message="8 available")
        cluster.kubectl("scale", "deployment/web", "--replicas", "15")
        wait_for(lambda: sizes() == {"busybox:1.36": 11, broken: 7}, message="proportional scale to 11 + 7")
        assert first["metadata"]["name"] in {rs["metadata"]["name"] for rs in replicasets(cluster)}

        # Undo the bad rollout: the old ReplicaSet takes everything back.
        cluster.kubectl("rollout", "undo", "deployment/web")
        wait_for(lambda: rolled_out(cluster, replicas=15), timeout=30, message="rolled back to 15 healthy replicas")
        assert sizes() == {"busybox:1.36": 15, broken: 0}


ORPHAN_RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-handmade
  labels: {app: web, pod-template-hash: handmade}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web, pod-template-hash: handmade}
  template:
    metadata:
      labels: {app: web, pod-template-hash: handmade}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sleep", "1000"]
"""


def test_adopts_an_orphan_replicaset_with_the_same_template(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=ORPHAN_RS)
        wait_for(lambda: len([p for p in pods(http, selector="app=web") if p["status"].get("phase") == "Running"])
                 == 2, message="the orphan's pods run")
        before = {p["metadata"]["name"] for p in pods(http, selector="app=web")}
        cluster.kubectl("apply", "-f", "-", input=manifest(replicas=2))
        wait_for(lambda: rolled_out(cluster, replicas=2), message="deployment available")
        (rs,) = replicasets(cluster)
        assert rs["metadata"]["name"] == "web-handmade"
        (ref,) = rs["metadata"]["ownerReferences"]
        assert ref["kind"] == "Deployment" and ref["uid"] == deployment(cluster)["metadata"]["uid"]
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        assert {p["metadata"]["name"] for p in pods(http, selector="app=web")} == before
