"""docker compose, tested without a Docker engine: each compose service's command and
environment run as local processes against the test Redis (addresses rewritten), and
the Dockerfile's install step runs in a fresh virtual environment."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from shared import redis_server
from tests.harness import ROOT, Process, wait_for
from tests.support_redis7 import redis7_binary

COMPOSE = ROOT / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"


def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_file_declares_the_topology() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    found = spec["services"]
    assert set(found) == {"redis", "init", "apiserver", "scheduler", "controller-manager", "node"}
    assert "--appendonly" in found["redis"]["command"] and "redis-data:/data" in found["redis"]["volumes"]
    assert "--aclfile" in found["redis"]["command"]
    assert found["redis"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "redis-data" in spec["volumes"] and "state" in spec["volumes"]
    assert "/readyz" in " ".join(found["apiserver"]["healthcheck"]["test"])
    for name in ("apiserver", "scheduler", "controller-manager", "node"):
        assert found[name]["restart"] == "unless-stopped"
        assert found[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert "REDKUBE_REDIS_URL" not in found[name]["environment"]  # no shared, password-less URL
    for name in ("apiserver", "scheduler", "controller-manager"):  # each its own Redis user
        command = found[name]["command"]
        assert command[command.index("--redis-url") + 1] == f"@/state/redis-users/{name}.url"


class Local:
    """Runs compose services as local processes: /state, /out, Redis and ports rewritten."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.out = tmp / "out"
        self.out.mkdir(parents=True)
        self.redis_port = redis_server.free_port()
        self.api_port = redis_server.free_port()
        self.processes: list[Process] = []
        self.logs = tmp / "logs"
        self.logs.mkdir()

    def argv(self, service: dict[str, Any], extra: list[str] | None = None) -> list[str]:
        words = service["command"] if isinstance(service["command"], list) else shlex.split(service["command"])
        rewritten = []
        for word in words:
            word = word.replace("/state", str(self.state)).replace("/out", str(self.out))
            word = word.replace("127.0.0.1:6443", f"127.0.0.1:{self.api_port}")
            word = word.replace("redis://redis:6379/", f"redis://127.0.0.1:{self.redis_port}/")
            rewritten.append(word)
        if "--host" in rewritten:
            rewritten[rewritten.index("--host") + 1] = "127.0.0.1"
        if "--port" in rewritten:
            rewritten[rewritten.index("--port") + 1] = str(self.api_port)
        assert rewritten[0] == "redkube"
        return [sys.executable, "-m", "services.redkube.main", *rewritten[1:], *(extra or [])]

    def env(self, service: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_")}
        for key, value in (service.get("environment") or {}).items():
            env[key] = str(value).replace("/state", str(self.state))
        return env

    def start_redis(self, service: dict[str, Any]) -> subprocess.Popen[bytes]:
        """The compose Redis service's own command, on a local port, with a Redis 7 binary."""
        words = [word.replace("/state", str(self.state)) for word in service["command"]]
        assert words[0] == "redis-server"
        args = [redis7_binary(), *words[1:], "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--dir", str(self.tmp), "--logfile", str(self.logs / "redis.log")]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        redis_server.wait_ready(self.redis_port, proc=proc)
        return proc

    def run(self, name: str, service: dict[str, Any], extra: list[str] | None = None) -> Process:
        log = self.logs / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(self.argv(service, extra), env=self.env(service), cwd=ROOT, stdout=handle,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        handle.close()
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.out / "kubeconfig"), "--cache-dir",
                               str(self.out / "cache"), *args], capture_output=True, text=True, timeout=60)


def test_compose_services_run_as_local_processes(tmp_path: Path) -> None:
    found = services()
    local = Local(tmp_path)
    redis_proc = None
    try:
        init = subprocess.run(local.argv(found["init"]), env=local.env(found["init"]), cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        assert oct((local.state / "tokens" / "admin").stat().st_mode & 0o777) == "0o600"
        assert oct((local.state / "redis-users" / "node.url").stat().st_mode & 0o777) == "0o600"
        redis_proc = local.start_redis(found["redis"])
        anonymous = redis.Redis(port=local.redis_port, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("x")  # the default user is off: every component signs in as its own
        for replica in ("apiserver-1", "apiserver-2"):  # --scale apiserver=2 shares one address
            local.run(replica, found["apiserver"], ["--consumer", replica])
        wait_for(lambda: local.kubectl("get", "namespaces").returncode == 0, timeout=40, message="the API")
        local.run("scheduler", found["scheduler"])
        local.run("controller-manager", found["controller-manager"])
        for node in ("node-a", "node-b"):  # each container names itself after its host name
            local.run(node, found["node"], ["--node", node, "--node-ip", "127.0.0.1", "--runtime", "simulated"])

        def nodes_ready() -> bool:
            out = local.kubectl("get", "nodes", "--no-headers").stdout
            return out.count(" Ready ") == 2

        wait_for(nodes_ready, timeout=60, message="two Ready nodes")
        created = local.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3")
        assert created.returncode == 0, created.stderr

        def available() -> bool:
            out = local.kubectl("get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}").stdout
            return out == "3"

        wait_for(available, timeout=60, message="3 available replicas")
        for process in local.processes:
            assert process.alive(), process.log()[-2000:]
    finally:
        codes = {process.name: process.stop() for process in reversed(local.processes)}
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    assert set(codes.values()) == {0}, codes  # every service stops cleanly on SIGTERM (docker compose down)


def test_dockerfile_install_step_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    context = tmp_path / "app"
    context.mkdir()
    for line in lines:
        if line.startswith("COPY "):
            *sources, _target = line.split()[1:]
            for source in sources:
                target = context / source
                subprocess.run(["cp", "-r", str(ROOT / source), str(target)], check=True)
    venv = tmp_path / "venv"
    # System site packages stand in for the registry downloads; the install step itself runs as written.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    runs = [line.removeprefix("RUN ").strip() for line in lines if line.startswith("RUN ")]
    assert runs == ["pip install --no-cache-dir ."]
    for command in runs:
        words = shlex.split(command)
        assert words[0] == "pip"
        result = subprocess.run([str(venv / "bin" / "python"), "-m", *words], cwd=context, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert "redkube" in cmd
    help_text = subprocess.run([str(venv / "bin" / "redkube"), "--help"], capture_output=True, text=True,
                               timeout=60, cwd=tmp_path)
    assert help_text.returncode == 0 and "apiserver" in help_text.stdout
