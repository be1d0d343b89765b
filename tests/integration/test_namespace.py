"""The Namespace controller: deleting a namespace empties it, then removes it."""

from __future__ import annotations

import re

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, start_controller_manager

KINDS = ("pods", "services", "endpoints", "events")


def test_deleting_a_namespace_empties_and_removes_it(api: Cluster) -> None:
    agent = FakeNodeAgent(api)
    agent.create_node()
    start_controller_manager(api, controllers="namespace")
    api.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n")
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: team, labels: {app: web}}
spec:
  containers: [{name: main, image: busybox, command: [sleep, "100"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: team}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["true"]}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lock, namespace: team}
spec: {holderIdentity: someone}
"""
    api.kubectl("apply", "-f", "-", input=manifest)
    with agent, api.http() as http:
        wait_for(lambda: http.get("/api/v1/namespaces/team/pods/app").json()["status"].get("phase") == "Running",
                 message="pod running")
        http.post("/api/v1/namespaces/default/pods", json={
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bystander"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
        agent.paused.set()  # the kubelet is slow to confirm the pod's deletion
        api.kubectl("delete", "namespace", "team", "--wait=false")

        def remaining() -> dict | None:
            ns = http.get("/api/v1/namespaces/team").json()
            conditions = {c["type"]: c for c in ns["status"].get("conditions") or []}
            content = conditions.get("NamespaceContentRemaining")
            return content if content and content["status"] == "True" else None

        content = wait_for(remaining, message="content remaining condition")
        assert re.search(r"pods has \d+ resource instances", content["message"]), content["message"]
        assert http.get("/api/v1/namespaces/team").json()["status"]["phase"] == "Terminating"
        assert http.get("/api/v1/namespaces/team/services/web").status_code == 404
        assert http.get("/apis/batch/v1/namespaces/team/jobs/once").status_code == 404
        refused = http.post("/api/v1/namespaces/team/pods", json={
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
        assert refused.status_code == 403

        agent.paused.clear()
        api.kubectl("wait", "--for=delete", "namespace/team", "--timeout=30s", timeout=60)
        assert http.get("/api/v1/namespaces/team").status_code == 404
        for plural in ("pods", "services", "endpoints"):
            assert not http.get(f"/api/v1/namespaces/team/{plural}").json()["items"]
        assert not http.get("/apis/coordination.k8s.io/v1/namespaces/team/leases").json()["items"]
        assert http.get("/api/v1/namespaces/default/pods/bystander").status_code == 200
