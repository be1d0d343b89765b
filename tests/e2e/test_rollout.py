"""``kubectl rollout`` against the Deployment and ReplicaSet controllers.

Real kubectl, a real API server and controller manager; a fake node agent
(tests/support_workloads.py) binds pods, marks them ready after a short delay (so a
rollout takes observable steps) and finishes their deletion.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import Cluster, wait_for
from tests.support_workloads import FakeNodeAgent, Sampler, available_pods, live_pods, pods, start_control_plane

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: "{cause}"
spec:
  replicas: {replicas}
  strategy: {strategy}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: {image}
        command: ["sleep", "1000"]
"""

ROLLING = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}"


def manifest(*, image: str, cause: str = "", replicas: int = 4, strategy: str = ROLLING) -> str:
    return DEPLOYMENT.format(image=image, cause=cause or f"image {image}", replicas=replicas, strategy=strategy)


def rollout_status(cluster: Cluster) -> str:
    result = cluster.kubectl("rollout", "status", "deployment/web", "--timeout", "60s")
    return result.stdout


def replicasets(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {rs["metadata"]["name"]: rs for rs in cluster.kubectl_json("get", "rs", "-l", "app=web")["items"]}


def revision(rs: dict[str, Any]) -> str:
    return str(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])


def image_of(obj: dict[str, Any]) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def pod_images(http: httpx.Client) -> list[str]:
    return sorted(p["spec"]["containers"][0]["image"] for p in pods(http, selector="app=web")
                  if not p["metadata"].get("deletionTimestamp"))


def history_rows(cluster: Cluster) -> list[list[str]]:
    lines = cluster.kubectl("rollout", "history", "deployment/web").stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("REVISION")))
    return [line.split(None, 1) for line in lines[header + 1:] if line.strip()]


def test_rolling_update_keeps_availability_then_undo_reuses_the_old_replicaset(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster, ready_delay=0.5), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=manifest(image="busybox:1.36"))
        assert "successfully rolled out" in rollout_status(cluster)
        (first,) = replicasets(cluster).values()

        # replicas 4, maxUnavailable 1, maxSurge 1: never fewer than 3 available, never more than 5 pods.
        with Sampler(cluster, lambda h: available_pods(h, selector="app=web")) as available, \
                Sampler(cluster, lambda h: live_pods(h, selector="app=web")) as total:
            cluster.kubectl("apply", "-f", "-", input=manifest(image="busybox:1.37"))
            out = rollout_status(cluster)
        assert out.strip().endswith('deployment "web" successfully rolled out')
        assert len(available.samples) > 10 and len(total.samples) > 10
        assert min(available.samples) >= 3, available.samples
        assert max(total.samples) <= 5, total.samples
        assert pod_images(http) == ["busybox:1.37"] * 4

        sets = replicasets(cluster)
        assert len(sets) == 2
        second = next(rs for name, rs in sets.items() if name != first["metadata"]["name"])
        assert revision(second) == "2" and second["spec"]["replicas"] == 4
        assert sets[first["metadata"]["name"]]["spec"]["replicas"] == 0
        assert history_rows(cluster) == [["1", "image busybox:1.36"], ["2", "image busybox:1.37"]]
        detail = cluster.kubectl("rollout", "history", "deployment/web", "--revision", "1").stdout
        assert "busybox:1.36" in detail

        # Undo: kubectl copies revision 1's template back; its ReplicaSet is reused, as revision 3.
        undo = cluster.kubectl("rollout", "undo", "deployment/web")
        assert undo.stdout.strip() == "deployment.apps/web rolled back"
        assert "successfully rolled out" in rollout_status(cluster)
        assert image_of(cluster.kubectl_json("get", "deployment", "web")) == "busybox:1.36"
        sets = replicasets(cluster)
        assert set(sets) == {first["metadata"]["name"], second["metadata"]["name"]}
        reused = sets[first["metadata"]["name"]]
        assert revision(reused) == "3"
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
        assert reused["spec"]["replicas"] == 4 and sets[second["metadata"]["name"]]["spec"]["replicas"] == 0
        assert pod_images(http) == ["busybox:1.36"] * 4
        digest = reused["metadata"]["labels"]["pod-template-hash"]
        assert all(p["metadata"]["labels"]["pod-template-hash"] == digest for p in pods(http, selector="app=web")
                   if not p["metadata"].get("deletionTimestamp"))
        assert [row[0] for row in history_rows(cluster)] == ["2", "3"]
        deployment = cluster.kubectl_json("get", "deployment", "web")
        assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


def test_pause_resume_and_restart(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=manifest(image="busybox:1.36", replicas=2))
        rollout_status(cluster)
        assert cluster.kubectl("rollout", "pause", "deployment/web").stdout.strip() == "deployment.apps/web paused"
        cluster.kubectl("set", "image", "deployment/web", "main=busybox:1.37")

        def paused_and_observed() -> bool:
            obj = cluster.kubectl_json("get", "deployment", "web")
            conds = {c["type"]: c for c in obj["status"].get("conditions") or []}
            return (obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
                    and conds["Progressing"]["reason"] == "DeploymentPaused")

        wait_for(paused_and_observed, message="paused deployment observed")
        assert len(replicasets(cluster)) == 1
        assert pod_images(http) == ["busybox:1.36"] * 2
        # A paused deployment still scales.
        cluster.kubectl("scale", "deployment/web", "--replicas", "3")
        wait_for(lambda: pod_images(http) == ["busybox:1.36"] * 3, message="paused deployment scaled")

        assert cluster.kubectl("rollout", "resume", "deployment/web").stdout.strip() == "deployment.apps/web resumed"
        assert "successfully rolled out" in rollout_status(cluster)
        assert pod_images(http) == ["busybox:1.37"] * 3

        before = set(replicasets(cluster))
        assert cluster.kubectl("rollout", "restart", "deployment/web").stdout.strip() == \
            "deployment.apps/web restarted"
        assert "successfully rolled out" in rollout_status(cluster)
        after = replicasets(cluster)
        (fresh,) = set(after) - before
        assert "kubectl.kubernetes.io/restartedAt" in after[fresh]["spec"]["template"]["metadata"]["annotations"]
        assert after[fresh]["spec"]["replicas"] == 3 and revision(after[fresh]) == "3"
        live = [p for p in pods(http, selector="app=web") if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 3
        assert all("kubectl.kubernetes.io/restartedAt" in p["metadata"].get("annotations", {}) for p in live)


def test_recreate_never_runs_old_and_new_pods_together(cluster: Cluster) -> None:
    start_control_plane(cluster)
    with FakeNodeAgent(cluster, ready_delay=0.2), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=manifest(image="busybox:1.36", replicas=3,
                                                           strategy="{type: Recreate}"))
        rollout_status(cluster)

        seen: list[frozenset[str]] = []

        def image_kinds(h: httpx.Client) -> int:
            # Every pod that exists, terminating ones included: Recreate waits for them to be gone.
            images = frozenset(p["spec"]["containers"][0]["image"] for p in pods(h, selector="app=web"))
            seen.append(images)
            return len(images)

        with Sampler(cluster, image_kinds) as kinds:
            cluster.kubectl("set", "image", "deployment/web", "main=busybox:1.37")
            assert "successfully rolled out" in rollout_status(cluster)
        assert max(kinds.samples) == 1, [sorted(s) for s in seen if len(s) > 1]
        assert frozenset({"busybox:1.36"}) in seen and frozenset({"busybox:1.37"}) in seen
        assert pod_images(http) == ["busybox:1.37"] * 3
        sets = replicasets(cluster)
        assert sorted(rs["spec"]["replicas"] for rs in sets.values()) == [0, 3]


def test_rollout_survives_a_controller_manager_restart(cluster: Cluster) -> None:
    """Level-triggered: a new controller manager picks a half-done rollout up from what the
    API shows, without breaking the availability or surge limits."""
    start_control_plane(cluster)
    with FakeNodeAgent(cluster, ready_delay=0.5), cluster.http() as http:
        cluster.kubectl("apply", "-f", "-", input=manifest(image="busybox:1.36"))
        rollout_status(cluster)
        with Sampler(cluster, lambda h: available_pods(h, selector="app=web")) as available, \
                Sampler(cluster, lambda h: live_pods(h, selector="app=web")) as total:
            cluster.kubectl("apply", "-f", "-", input=manifest(image="busybox:1.37"))
            wait_for(lambda: len(replicasets(cluster)) == 2, message="the rollout under way")
            first = next(p for p in cluster.processes if p.name == "controller-manager")
            assert first.stop() == 0
            cluster.start("controller-manager", "--lease-ms", "2000", "--renew-ms", "500",
                          token="controller-manager", name="controller-manager-2")
            assert "successfully rolled out" in rollout_status(cluster)
        assert min(available.samples) >= 3 and max(total.samples) <= 5
        assert pod_images(http) == ["busybox:1.37"] * 4


REAL = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: busybox:TAG
        command: ["sleep", "1000"]
        readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
"""


def test_rollout_and_undo_with_a_real_scheduler_and_kubelet(cluster: Cluster) -> None:
    """The whole chain: the controllers create pods, the scheduler binds them, the kubelet
    runs real processes and reports readiness, and kubectl rollout sees it through."""
    from tests.support_kubelet import cleanup, node_cluster, start_kubelet, wait_kubelet_ready
    from tests.support_scheduler import start_scheduler

    node_cluster(cluster, "n1")
    try:
        wait_kubelet_ready(start_kubelet(cluster, "n1"))
        start_scheduler(cluster)
        start_control_plane(cluster)
        with cluster.http() as http:
            cluster.kubectl("apply", "-f", "-", input=REAL.replace("TAG", "1.36"))
            assert "successfully rolled out" in rollout_status(cluster)
            (first,) = replicasets(cluster)
            with Sampler(cluster, lambda h: available_pods(h, selector="app=web")) as available:
                cluster.kubectl("apply", "-f", "-", input=REAL.replace("TAG", "1.37"))
                assert "successfully rolled out" in rollout_status(cluster)
            assert min(available.samples) >= 2
            wait_for(lambda: pod_images(http) == ["busybox:1.37"] * 3, message="new pods only")
            assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] == "n1"
                       for p in pods(http, selector="app=web") if not p["metadata"].get("deletionTimestamp"))
            cluster.kubectl("rollout", "undo", "deployment/web")
            assert "successfully rolled out" in rollout_status(cluster)
            wait_for(lambda: pod_images(http) == ["busybox:1.36"] * 3, message="old template back")
            assert revision(replicasets(cluster)[first]) == "3"
    finally:
        cluster.stop()
        cleanup(cluster.home)
