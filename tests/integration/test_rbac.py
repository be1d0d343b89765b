"""RBAC: ordinary users get exactly what their bindings grant; kubectl auth can-i agrees."""

from __future__ import annotations

import subprocess

import httpx

from shared import pki
from tests.harness import Cluster, wait_for


def test_role_bindings_grant_and_can_i_reports(cluster: Cluster) -> None:
    token = pki.ensure_token(cluster.identity, "alice", "alice", ("developers",))
    cluster.start_apiserver()
    kubeconfig = pki.write_kubeconfig(cluster.identity, server=cluster.server, token=token,
                                      path=cluster.home / "alice.kubeconfig", user="alice")

    def can_i(*args: str) -> str:
        result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir",
                                 str(cluster.home / "alice-cache"), "auth", "can-i", *args],
                                capture_output=True, text=True, timeout=30)
        return result.stdout.strip()

    with httpx.Client(base_url=cluster.server, verify=cluster.ssl_context(),
                      headers={"Authorization": f"Bearer {token}"}) as alice, cluster.http() as admin:
        denied = alice.get("/api/v1/namespaces/default/pods")
        assert denied.status_code == 403
        assert denied.json()["message"] == ('pods is forbidden: User "alice" cannot list resource "pods" in API '
                                            'group "" in the namespace "default"')
        assert can_i("list", "pods") == "no"
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "devs-view", "namespace": "default"},
                   "subjects": [{"kind": "Group", "name": "developers", "apiGroup": "rbac.authorization.k8s.io"}],
                   "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"}}
        created = admin.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", json=binding)
        assert created.status_code == 201, created.text
        wait_for(lambda: alice.get("/api/v1/namespaces/default/pods").status_code == 200, timeout=10,
                 message="binding takes effect")
        assert alice.get("/api/v1/namespaces/kube-system/pods").status_code == 403
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "x"}]}}
        assert alice.post("/api/v1/namespaces/default/pods", json=pod).status_code == 403
        assert can_i("list", "pods") == "yes"
        for kind in ("daemonsets", "statefulsets", "cronjobs"):  # view covers every served workload kind
            assert can_i("list", kind) == "yes", kind
        assert can_i("create", "pods/exec") == "no"  # view never runs commands in pods
        assert can_i("create", "pods") == "no"
        assert can_i("list", "pods", "-n", "kube-system") == "no"
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "pod-maker", "namespace": "default"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]}
        admin.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", json=role)
        admin.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
                   json={**binding, "metadata": {"name": "alice-make", "namespace": "default"},
                         "subjects": [{"kind": "User", "name": "alice"}],
                         "roleRef": {"kind": "Role", "name": "pod-maker", "apiGroup": "rbac.authorization.k8s.io"}})
        wait_for(lambda: alice.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201, timeout=10,
                 message="role binding takes effect")
    assert can_i("create", "pods") == "yes"
