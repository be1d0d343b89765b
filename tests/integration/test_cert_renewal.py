"""Serving certificates change while the API server runs: a file the user replaces is
picked up without a restart, and ``redkube up`` renews the certificate it made before it
expires. New handshakes get the new certificate; kubectl keeps working and a watch opened
before the change keeps receiving events on its old connection."""

from __future__ import annotations

import datetime
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from cryptography import x509

from shared import pki, redis_server
from tests.harness import ROOT, Cluster, wait_for


def served_serial(port: int) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


class Watch:
    """A configmap watch on one long-lived HTTPS connection, read in a thread."""

    def __init__(self, server: str, *, token: str, ca: Path, namespace: str = "default") -> None:
        self.names: list[str] = []
        self.opened = threading.Event()
        self._client = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"},
                                    verify=ssl.create_default_context(cafile=str(ca)), timeout=None)
        self._path = f"/api/v1/namespaces/{namespace}/configmaps?watch=true"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_for(self.opened.is_set, timeout=15, message="the watch to open")

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._path) as response:
                self.opened.set()
                for line in response.iter_lines():
                    if line.strip():
                        event = json.loads(line)
                        self.names.append(event["object"]["metadata"]["name"])
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass  # closed at the end of the test

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=5)


def test_apiserver_reloads_a_replaced_certificate_file(cluster: Cluster, tmp_path: Path) -> None:
    cert_file, key_file = tmp_path / "serving.crt", tmp_path / "serving.key"

    def issue() -> int:
        cert, key = pki.issue_serving_cert(cluster.identity.pki, hosts=["127.0.0.1", "localhost"],
                                           validity=datetime.timedelta(days=1))
        pki.write_atomic(key_file, key, private=True)
        pki.write_atomic(cert_file, cert)
        return x509.load_pem_x509_certificate(cert).serial_number

    first = issue()
    api = cluster.start_apiserver("--tls-cert-file", str(cert_file), "--tls-private-key-file", str(key_file))
    assert served_serial(api.port) == first
    watch = Watch(cluster.server, token=cluster.token(), ca=cluster.identity.ca)
    try:
        cluster.kubectl("create", "configmap", "before", "-n", "default")
        wait_for(lambda: "before" in watch.names, message="the watch to see 'before'")

        second = issue()
        wait_for(lambda: served_serial(api.port) == second, timeout=15, message="the new certificate to be served")
        assert api.alive()  # no restart: the same process serves the new certificate

        cluster.kubectl("create", "configmap", "after", "-n", "default")
        wait_for(lambda: "after" in watch.names, message="the old watch to see 'after'")
        assert "configmap/after" in cluster.kubectl("get", "configmaps", "-o", "name").stdout

        # A broken replacement is not loaded: the server keeps serving the last good pair.
        cert_file.write_text("not a certificate")
        wait_for(lambda: served_serial(api.port) == second and "serving certificate not reloaded" in api.log(),
                 timeout=15, message="the broken file to be refused")
        cluster.kubectl("get", "configmaps")
    finally:
        watch.close()


def test_up_renews_its_serving_certificate_before_expiry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = redis_server.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_") and k != "REDIS_URL"}
    up = subprocess.Popen(
        [sys.executable, "-m", "services.redkube.main", "up", "--home", str(home), "--api-port", str(port),
         "--nodes", "0", "--serving-cert-validity", "15"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    watch: Watch | None = None
    try:
        assert up.stdout is not None
        banner: list[str] = []
        wait_for(lambda: banner.append(up.stdout.readline()) or "Ctrl-C" in banner[-1],  # type: ignore[union-attr]
                 timeout=60, message="the banner")
        assert "redkube is up." in "".join(banner)
        identity = pki.Identity(home)
        ca_before = identity.ca.read_bytes()
        cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(seconds=15)
        first = served_serial(port)
        assert first == cert.serial_number
        hosts_before = pki.certificate_hosts(identity.cert)

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["kubectl", "--kubeconfig", str(identity.kubeconfig), "--cache-dir",
                                   str(tmp_path / "kc"), *args], capture_output=True, text=True, timeout=30)

        watch = Watch(f"https://127.0.0.1:{port}", token=identity.token("admin"), ca=identity.ca)
        assert kubectl("create", "configmap", "before", "-n", "default").returncode == 0
        wait_for(lambda: "before" in watch.names, message="the watch to see 'before'")  # type: ignore[union-attr]

        renewed = wait_for(lambda: (s := served_serial(port)) != first and s, timeout=30,
                           message="a renewed certificate to be served")
        new = x509.load_pem_x509_certificate(identity.cert.read_bytes())
        assert new.serial_number == renewed
        assert identity.ca.read_bytes() == ca_before  # same CA, same names
        assert pki.certificate_hosts(identity.cert) == hosts_before
        assert oct(identity.key.stat().st_mode & 0o777) == "0o600"

        result = kubectl("create", "configmap", "after", "-n", "default")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: "after" in watch.names, message="the old watch to see 'after'")  # type: ignore[union-attr]
        assert "serving certificate reloaded" in (home / "logs" / "apiserver-1.log").read_text()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if watch is not None:
            watch.close()
        if up.poll() is None:
            up.kill()
            up.wait()
