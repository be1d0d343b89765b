"""``redkube up``: one command starts a working cluster, Ctrl-C stops all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from shared import redis_server
from tests.harness import ROOT, wait_for


def test_up_serves_kubectl_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = redis_server.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_") and k != "REDIS_URL"}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.redkube.main",
            "up",
            "--home",
            str(home),
            "--api-port",
            str(port),
            "--nodes",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        banner: list[str] = []
        wait_for(
            lambda: banner.append(up.stdout.readline()) or "Ctrl-C" in banner[-1],  # type: ignore[union-attr]
            timeout=60,
            message="the banner",
        )
        text = "".join(banner)
        assert "redkube is up." in text and f"https://127.0.0.1:{port}" in text and "redis://127.0.0.1:" in text
        kubeconfig = home / "kubeconfig"
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        result = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "kc"),
                "get",
                "namespaces",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert "namespace/kube-system" in result.stdout
        children = psutil.Process(up.pid).children(recursive=True)
        assert any("redis-server" in " ".join(c.cmdline()) for c in children)
        assert any("apiserver" in c.cmdline() for c in children)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert (home / "redis" / "appendonly.aof").exists()
    finally:
        if up.poll() is None:
            up.kill()


def test_up_serves_a_certificate_the_user_supplies(tmp_path: Path) -> None:
    from shared import pki

    # The user's own CA and serving certificate, unrelated to the cluster's.
    own = tmp_path / "own"
    own.mkdir()
    pki.make_ca(own)
    pki.make_serving_cert(own, hosts=["127.0.0.1", "localhost"])
    home = tmp_path / "home"
    port = redis_server.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_") and k != "REDIS_URL"}
    up = subprocess.Popen([sys.executable, "-m", "services.redkube.main", "up", "--home", str(home),
                           "--api-port", str(port), "--nodes", "0",
                           "--tls-cert-file", str(own / "apiserver.crt"),
                           "--tls-private-key-file", str(own / "apiserver.key"), "--tls-ca-file", str(own / "ca.crt")],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines: list[str] = []
        wait_for(lambda: lines.append(up.stdout.readline()) or "Ctrl-C" in lines[-1],  # type: ignore[union-attr]
                 timeout=60, message="the banner")
        assert "redkube is up." in "".join(lines)
        result = subprocess.run(["kubectl", "--kubeconfig", str(home / "kubeconfig"), "--cache-dir",
                                 str(tmp_path / "kc"), "get", "namespaces", "-o", "name"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        # The server really presents the user's certificate: the cluster's own CA does not verify it.
        wrong = subprocess.run(["kubectl", "--server", f"https://127.0.0.1:{port}", "--certificate-authority",
                                str(home / "pki" / "ca.crt"), "--token", "x", "get", "ns"],
                               capture_output=True, text=True, timeout=30)
        assert wrong.returncode != 0 and "certificate" in wrong.stderr
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
