"""Test harness: real redis-server, real redkube processes, the real kubectl.

``Cluster`` owns one test cluster: its own key prefix on the shared Redis, its own
home directory (CA, tokens, kubeconfig), and the processes a test starts. Processes
are polled for readiness, and stopped with SIGTERM then SIGKILL, as
controller-runtime's envtest does for etcd and kube-apiserver.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from shared import pki, redis_server
from shared.keys import Keys

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # conditions may race with startup
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}" + (f" (last error: {last_error!r})" if last_error else ""))


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    redis_url: str
    home: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    processes: list[Process] = field(default_factory=list)
    api_port: int = 0

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.identity = pki.ensure_cluster_identity(self.home)
        self.keys = Keys(self.prefix)
        self.redis = redis.Redis.from_url(self.redis_url)
        self.cache_dir = self.home / "kubectl-cache"

    # --- processes -----------------------------------------------------------------

    def env(self, token: str = "admin", **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_")}
        env.update(
            {
                "REDKUBE_REDIS_URL": self.redis_url,
                "REDKUBE_PREFIX": self.prefix,
                "REDKUBE_HOME": str(self.home),
                "REDKUBE_TOKEN": f"@{self.identity.token_path(token)}",
                "PYTHONUNBUFFERED": "1",
                "REDKUBE_LOG_LEVEL": "info",
            }
        )
        env.update(extra)
        return env

    def start(
        self, command: str, *args: str, token: str = "admin", name: str | None = None, env: dict[str, str] | None = None
    ) -> Process:
        """Start ``redkube COMMAND ARGS`` with this cluster's Redis, prefix and a token."""
        name = name or f"{command}-{len(self.processes)}"
        log_path = self.home / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = log_path.open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "services.redkube.main", command, *args],
            env=self.env(token, **(env or {})),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        handle.close()
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def start_apiserver(
        self, *args: str, consumer: str | None = None, port: int | None = None, wait: bool = True
    ) -> Process:
        port = port or redis_server.free_port()
        consumer = consumer or f"api-{port}"
        process = self.start(
            "apiserver",
            "--port",
            str(port),
            "--tls-cert-file",
            str(self.identity.cert),
            "--tls-private-key-file",
            str(self.identity.key),
            "--token-auth-file",
            str(self.identity.token_file),
            "--consumer",
            consumer,
            *args,
            name=consumer,
        )
        process.port = port
        if not self.api_port:
            self.api_port = port
            pki.write_kubeconfig(self.identity, server=self.server, token=self.identity.token("admin"))
        if wait:
            self.wait_ready(process)
        return process

    def wait_ready(self, process: Process, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not process.alive():
                raise AssertionError(f"{process.name} exited:\n{process.log()[-3000:]}")
            response = httpx.get(f"https://127.0.0.1:{process.port}/readyz", verify=self.ssl_context(), timeout=2)
            return response.status_code == 200

        wait_for(ready, timeout=timeout, message=f"{process.name} /readyz")

    def stop(self) -> None:
        from tests.support_kubelet import cleanup

        for process in reversed(self.processes):
            process.stop()
        cleanup(self.home)  # kubelets leave containers running on purpose; tests must not
        self.redis.close()

    # --- clients -------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.identity.ca))

    def token(self, name: str = "admin") -> str:
        return self.identity.token(name)

    def http(self, token: str | None = "admin", port: int | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(token)}"} if token else {}
        base = f"https://127.0.0.1:{port}" if port else self.server
        return httpx.Client(base_url=base, headers=headers, verify=self.ssl_context(), timeout=30)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = ["kubectl", "--kubeconfig", str(self.identity.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def bus_request(self, fields: dict[str, Any], *, timeout: float = 10.0) -> dict[bytes, bytes]:
        """XADD a request with a reply stream and wait for the answer (as redis-cli would)."""
        reply = self.keys.reply(uuid.uuid4().hex)
        request_id = fields.setdefault("id", uuid.uuid4().hex)
        self.redis.xadd(self.keys.requests, {**fields, "reply": reply})
        deadline = time.monotonic() + timeout
        last = "0-0"
        while time.monotonic() < deadline:
            for _stream, entries in self.redis.xread({reply: last}, block=500) or []:
                for entry_id, values in entries:
                    last = entry_id
                    if values.get(b"id") == str(request_id).encode():
                        return values
        raise AssertionError(f"no reply to bus request {fields}")


def start_redis(tmp: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """The suite's Redis: REDKUBE_TEST_REDIS_URL if set, else a private redis-server."""
    url = os.environ.get("REDKUBE_TEST_REDIS_URL")
    if url:
        return url, None
    port = redis_server.free_port()
    proc = redis_server.start(port=port, log_file=tmp / "redis.log")
    return f"redis://127.0.0.1:{port}/0", proc
