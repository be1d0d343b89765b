"""Client-certificate authentication, with the real kubectl: ``redkube kubeconfig`` makes
the credentials, ``kubectl auth whoami`` shows who the server thinks the caller is,
RBAC decides what the certificate's user and groups may do, and certificates from
another CA or past their end are refused while the server keeps serving."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared import pki
from tests.harness import ROOT, Cluster, wait_for


def _redkube_kubeconfig(cluster: Cluster, out: Path, *args: str) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "services.redkube.main", "kubeconfig", "--home", str(cluster.home), "--out", str(out),
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return out


def _kubectl(kubeconfig: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args],
                          capture_output=True, text=True, timeout=30)


def _kubeconfig_with(cluster: Cluster, path: Path, cert: bytes, key: bytes, user: str) -> Path:
    text = pki.client_kubeconfig(server=cluster.server, ca_pem=cluster.identity.ca.read_bytes(), user=user,
                                 cert_pem=cert, key_pem=key)
    path.write_text(text)
    return path


def test_client_certificate_user_and_groups_then_rbac(api: Cluster, tmp_path: Path) -> None:
    kubeconfig = _redkube_kubeconfig(api, tmp_path / "alice.yaml", "--user", "alice", "--group", "devs")
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
    cache = tmp_path / "kc-alice"

    whoami = _kubectl(kubeconfig, cache, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "alice"
    assert info["groups"] == ["devs", "system:authenticated"]
    table = _kubectl(kubeconfig, cache, "auth", "whoami")
    assert "alice" in table.stdout and "devs" in table.stdout

    denied = _kubectl(kubeconfig, cache, "get", "pods", "-n", "default")
    assert denied.returncode != 0
    assert 'User "alice" cannot list resource "pods"' in denied.stderr, denied.stderr

    # Bearer tokens keep working next to certificates: the admin grants the group a role.
    api.kubectl("create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs", "-n", "default")
    wait_for(lambda: _kubectl(kubeconfig, cache, "get", "pods", "-n", "default").returncode == 0,
             timeout=15, message="alice may list pods through group devs")
    # ...and only what the binding grants: another namespace and writes stay forbidden.
    assert _kubectl(kubeconfig, cache, "get", "pods", "-n", "kube-system").returncode != 0
    create = _kubectl(kubeconfig, cache, "create", "configmap", "c1", "-n", "default")
    assert create.returncode != 0 and "forbidden" in create.stderr.lower()

    # A binding naming the user (not the group) works as well.
    bob = _redkube_kubeconfig(api, tmp_path / "bob.yaml", "--user", "bob")
    assert _kubectl(bob, tmp_path / "kc-bob", "get", "configmaps", "-n", "default").returncode != 0
    api.kubectl("create", "rolebinding", "bob-edit", "--clusterrole=edit", "--user=bob", "-n", "default")
    wait_for(lambda: _kubectl(bob, tmp_path / "kc-bob", "create", "configmap", "from-bob", "-n", "default")
             .returncode == 0, timeout=15, message="bob may create configmaps")


def test_foreign_and_expired_certificates_are_refused(api: Cluster, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca"
    other_ca.mkdir()
    pki.make_ca(other_ca)
    cert, key = pki.issue_client_cert(other_ca, user="mallory", groups=["system:masters"])
    foreign = _kubeconfig_with(api, tmp_path / "foreign.yaml", cert, key, "mallory")
    result = _kubectl(foreign, tmp_path / "kc-foreign", "get", "namespaces")
    assert result.returncode != 0
    assert "mallory" not in result.stdout and "kube-system" not in result.stdout
    assert any(s in result.stderr.lower() for s in ("certificate", "tls", "unauthorized")), result.stderr

    expired_cert, expired_key = pki.issue_client_cert(
        api.identity.pki,
        user="alice",
        groups=["system:masters"],
        validity=datetime.timedelta(hours=1),
        not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2),
    )
    expired = _kubeconfig_with(api, tmp_path / "expired.yaml", expired_cert, expired_key, "alice")
    result = _kubectl(expired, tmp_path / "kc-expired", "get", "namespaces")
    assert result.returncode != 0
    assert "kube-system" not in result.stdout
    assert any(s in result.stderr.lower() for s in ("certificate", "tls", "unauthorized", "expired")), result.stderr

    # The server is still up and serves good credentials, certificates and tokens alike.
    good_cert, good_key = pki.issue_client_cert(api.identity.pki, user="root", groups=["system:masters"])
    good = _kubeconfig_with(api, tmp_path / "good.yaml", good_cert, good_key, "root")
    assert "namespace/kube-system" in _kubectl(good, tmp_path / "kc-good", "get", "ns", "-o", "name").stdout
    assert api.processes[0].alive()
    with api.http() as client:
        assert client.get("/api/v1/namespaces").status_code == 200
    with api.http(token=None) as client:
        assert client.get("/api/v1/namespaces").status_code == 401


def test_whoami_with_a_token(api: Cluster) -> None:
    """SelfSubjectReview answers for token users too (discovery lists it, so kubectl finds it)."""
    result = api.kubectl("auth", "whoami", "-o", "json")
    info = json.loads(result.stdout)["status"]["userInfo"]
    assert info["username"] == "admin" and info["groups"] == ["system:masters", "system:authenticated"]
    resources = api.kubectl("api-resources", "--api-group=authentication.k8s.io", "-o", "name").stdout
    assert "selfsubjectreviews.authentication.k8s.io" in resources


def test_certificate_expiring_on_an_open_connection_stops_authenticating(api: Cluster, tmp_path: Path) -> None:
    """The handshake checked the certificate once; every request checks its dates again, so a
    kept-alive connection does not outlive the certificate (kube-apiserver verifies per request)."""
    cert, key = pki.issue_client_cert(
        api.identity.pki, user="root", groups=["system:masters"], validity=datetime.timedelta(seconds=5),
        not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1),
    )
    (tmp_path / "c.crt").write_bytes(cert)
    (tmp_path / "c.key").write_bytes(key)
    context = ssl.create_default_context(cafile=str(api.identity.ca))
    context.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    with httpx.Client(base_url=api.server, verify=context, timeout=10) as client:
        assert client.get("/api/v1/namespaces").status_code == 200
        wait_for(lambda: client.get("/api/v1/namespaces").status_code == 401, timeout=15,
                 message="the expired certificate to be refused on the open connection")
    # A new connection with it fails in the handshake, and the server says why.
    with httpx.Client(base_url=api.server, verify=context, timeout=10) as client:
        with pytest.raises(httpx.HTTPError):
            client.get("/api/v1/namespaces")
    wait_for(lambda: "certificate has expired" in api.processes[0].log(), message="the refusal in the log")
