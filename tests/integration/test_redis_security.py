"""``redkube up`` on Redis 7: every component over TLS with an ACL user of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from shared import redis_server
from shared.keys import Keys
from tests.harness import ROOT, wait_for
from tests.support_redis7 import redis7_binary

KEYS = Keys("rk")


@dataclass
class Up:
    home: Path
    cache: Path

    def url(self, user: str) -> str:
        return (self.home / "redis-users" / f"{user}.url").read_text().strip()

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), socket_timeout=10)

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.home / "kubeconfig"), "--cache-dir",
                               str(self.cache), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("secure-up")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDKUBE_") and k != "REDIS_URL"}
    env["REDKUBE_REDIS_SERVER"] = redis7_binary()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.redkube.main", "up", "--home", str(tmp / "home"), "--api-port",
         str(redis_server.free_port()), "--nodes", "1", "--redis-tls"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        wait_for(lambda: lines.append(proc.stdout.readline()) or "Ctrl-C" in lines[-1],  # type: ignore[union-attr]
                 timeout=90, message="the banner")
        banner = "".join(lines)
        assert "redkube is up." in banner and "rediss://127.0.0.1:" in banner and "--tls --cacert" in banner
        yield Up(tmp / "home", tmp / "kc")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_the_cluster_works_with_each_component_on_its_own_tls_user(up: Up) -> None:
    created = up.kubectl("create", "deployment", "hello", "--image=busybox", "--replicas=2", "--",
                         "python3", "-c", "import time; print('hi', flush=True); time.sleep(3600)")
    assert created.returncode == 0, created.stderr
    wait_for(lambda: up.kubectl("get", "deployment", "hello", "-o", "jsonpath={.status.availableReplicas}").stdout
             == "2", timeout=60, message="hello available")
    pod = up.kubectl("get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[0].metadata.name}").stdout
    wait_for(lambda: "hi" in up.kubectl("logs", pod).stdout, message="the pod's log through Redis")
    executed = up.kubectl("exec", pod, "--", "sh", "-c", "echo from-exec; exit 4")  # the node's exec keys
    assert executed.returncode == 4 and "from-exec" in executed.stdout, executed.stderr
    users = {client["user"] for client in up.client("admin").client_list()}
    assert {"apiserver", "scheduler", "controller-manager", "proxy", "node-node-1"} <= users
    assert "default" not in users


def test_redis_speaks_only_tls_and_only_to_known_users(up: Up, tmp_path: Path) -> None:
    url = up.url("admin")
    plain = url.replace("rediss://", "redis://").split("?")[0]
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(plain, socket_timeout=3).ping()
    from shared import pki

    pki.make_ca(tmp_path)  # a CA that did not sign the Redis certificate
    foreign = url.split("?")[0] + f"?ssl_ca_certs={tmp_path / 'ca.crt'}"
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(foreign, socket_timeout=3).ping()
    anonymous = url.split("@", 1)[0].split("//")[0] + "//" + url.split("@", 1)[1]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(anonymous, socket_timeout=3).get("x")


def test_a_node_can_read_its_pods_but_not_write_the_store(up: Up) -> None:
    node = up.client("node-node-1")
    pods, services, secrets = KEYS.kind("pods"), KEYS.kind("services"), KEYS.kind("secrets")
    assert node.hgetall(pods.objects)  # reading pods is what a kubelet does
    refused = [
        lambda: node.hset(pods.objects, "default/forged", "{}"),
        lambda: node.delete(services.objects),
        lambda: node.xadd(services.watch, {"type": "DELETED"}),
        lambda: node.set(pods.watch_floor, "0-0"),
        lambda: node.hgetall(secrets.objects),  # no Secrets...
        lambda: node.xrange(KEYS.requests),  # ...nor other callers' tokens on the request stream
        lambda: node.xrange(KEYS.reply("scheduler:1")),
        lambda: node.hgetall(KEYS.kind("configmaps").objects),
        lambda: node.xrange(KEYS.exec_requests("node-2")),  # another node's exec sessions
        lambda: node.xadd(KEYS.exec_requests("node-1"), {"command": "[]"}),  # only the API server asks
    ]
    for attempt in refused:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    # What it may write: a request on the bus (answered on its own reply stream) and logs.
    token = (up.home / "tokens" / "node-node-1").read_text().strip()
    reply_to = KEYS.reply("kubelet:node-1:test")
    node.xadd(KEYS.requests, {"id": "n1", "verb": "get", "resource": "nodes", "name": "node-1", "token": token,
                              "reply": reply_to})
    reply = wait_for(lambda: node.xrange(reply_to), message="the reply to the node's request")
    assert reply[0][1][b"code"] == b"200"
    assert json.loads(reply[0][1][b"body"])["metadata"]["name"] == "node-1"


def test_control_plane_users_read_only_what_they_need(up: Up) -> None:
    scheduler, proxy = up.client("scheduler"), up.client("proxy")
    assert scheduler.hgetall(KEYS.kind("nodes").objects)
    for attempt in (
        lambda: scheduler.hgetall(KEYS.kind("secrets").objects),
        lambda: scheduler.hset(KEYS.kind("pods").objects, "x", "y"),
        lambda: proxy.hgetall(KEYS.kind("pods").objects),
        lambda: proxy.xadd(KEYS.kind("endpoints").watch, {"type": "ADDED"}),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    assert isinstance(proxy.hgetall(KEYS.kind("services").objects), dict)  # allowed: no NoPermissionError
