"""``redkube up``: a supervisor for a whole cluster on one machine.

It starts Redis (a private, persistent ``redis-server`` unless ``--redis-url`` or
``REDIS_URL`` is given), makes the CA, certificates and tokens, then runs every
process as a child of its own: API server(s), scheduler(s), controller manager(s)
and, per node, a kubelet and a proxy. A child that dies is restarted with back-off;
Ctrl-C or SIGTERM stops them all (SIGTERM, then SIGKILL after a timeout), and the
children die with the supervisor even if it is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.redkube import cert_renewal, cluster_redis
from shared import logging as rklogging
from shared import pki, redis_server
from shared.config import default_home
from shared.keys import Keys

STOP_TIMEOUT = 10.0


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    metrics_port: int = 0

    def start(self) -> None:
        handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        handle.close()
        self.started_at = time.monotonic()


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    log: Any = None

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping:
            for child in self.children:
                if child.proc and child.proc.poll() is None:
                    child.proc.kill()
            os._exit(1)
        self.stopping = True

    def monitor(self) -> None:
        """Restart children that die, with back-off, until told to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                proc = child.proc
                if proc is not None and proc.poll() is not None:
                    if now - child.started_at > 30:
                        child.restarts = 0
                    delay = min(0.5 * 2**child.restarts, 30.0)
                    self.log.warning(
                        "process exited; restarting", process=child.name, code=proc.returncode, restart_in=delay
                    )
                    child.restarts += 1
                    child.next_start = now + delay
                    child.proc = None
                elif proc is None and now >= child.next_start:
                    child.start()
                    self.log.info("restarted", process=child.name, pid=child.proc.pid if child.proc else None)
            time.sleep(0.2)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.log.warning("did not stop in time; killing", process=child.name)
                child.proc.kill()
                child.proc.wait()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="start a whole cluster on this machine (Ctrl-C stops it)")
    p.add_argument("--home", type=Path, default=None, help="state directory (default ~/.redkube)")
    p.add_argument("--api-port", type=int, default=6443)
    p.add_argument("--api-host", default="127.0.0.1")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--redis-url", default=None)
    p.add_argument("--redis-acl", default="auto", choices=["auto", "on", "off"],
                   help="one Redis ACL user per component (auto: when the Redis redkube starts is 7 or newer)")
    p.add_argument("--redis-tls", action="store_true", help="serve the private Redis over TLS only (rediss://)")
    p.add_argument("--prefix", default="rk")
    p.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="replicas of apiserver, scheduler or controller-manager",
    )
    p.add_argument("--runtime", default="process", choices=["process", "simulated"])
    p.add_argument("--node-grace-seconds", type=int, default=None,
                   help="seconds without a lease renewal before a node is NotReady (default 40)")
    p.add_argument("--eviction-seconds", type=int, default=None,
                   help="seconds a NotReady node's pods wait before eviction (default 300)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--tls-cert-file", type=Path, default=None,
                   help="serve the API with this certificate instead of one from the cluster's own CA")
    p.add_argument("--tls-private-key-file", type=Path, default=None)
    p.add_argument("--tls-ca-file", type=Path, default=None,
                   help="the CA that signed --tls-cert-file, for the kubeconfig (default: the certificate itself)")
    cert_renewal.add_arguments(p)
    p.set_defaults(func=up)


def _scales(values: list[str]) -> dict[str, int]:
    scales = {"apiserver": 1, "scheduler": 1, "controller-manager": 1}
    for value in values:
        name, _, count = value.partition("=")
        if name not in scales or not count.isdigit():
            raise SystemExit(f"--scale expects SERVICE=N with SERVICE in {', '.join(scales)}; got {value!r}")
        scales[name] = int(count)
    return scales


def port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def node_addresses(index: int) -> dict[str, str]:
    """Loopback addresses of node ``index`` (1-based) on one machine.

    Each node has an address of its own (its NodePorts listen there) and a /24 of
    pod addresses; Services take 127.96.0.0/16.
    """
    return {"node_ip": f"127.10.{index}.1", "pod_cidr": f"127.11.{index}.0/24"}


def wait_ready(url: str, ca: Path, *, timeout: float = 30.0) -> bool:
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def up(args: argparse.Namespace) -> int:
    from services.redkube.main import available

    home: Path = (args.home or default_home()).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    log = rklogging.configure("up", level=args.log_level)
    scales = _scales(args.scale)
    if not port_free(args.api_host, args.api_port):
        raise SystemExit(
            f"port {args.api_port} on {args.api_host} is in use: is another cluster running? "
            "Choose another with --api-port."
        )
    identity = pki.ensure_cluster_identity(home, hosts=[args.api_host])
    nodes = [f"node-{i + 1}" for i in range(args.nodes)]
    for node in nodes:
        pki.ensure_node_token(identity, node)
    redis = cluster_redis.start(
        home=home,
        identity=identity,
        keys=Keys(args.prefix),
        nodes=nodes,
        url=args.redis_url or os.environ.get("REDIS_URL"),
        acl=args.redis_acl,
        tls=args.redis_tls,
        log=log,
    )
    server = f"https://{args.api_host}:{args.api_port}"
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise SystemExit("--tls-cert-file and --tls-private-key-file go together")
    cert_file = (args.tls_cert_file or identity.cert).resolve()
    key_file = (args.tls_private_key_file or identity.key).resolve()
    ca_file = (args.tls_ca_file or args.tls_cert_file or identity.ca).resolve()
    kubeconfig = pki.write_kubeconfig(identity, server=server, token=identity.token("admin"), ca=ca_file)
    renewal = cert_renewal.start(identity, args=args, log=log)  # not when the user supplied the certificate
    base_env = {
        **os.environ,
        "REDKUBE_PREFIX": args.prefix,
        "REDKUBE_HOME": str(home),
        "REDKUBE_LOG_LEVEL": args.log_level,
        "PYTHONUNBUFFERED": "1",
    }
    exe = [sys.executable, "-m", "services.redkube.main"]
    supervisor = Supervisor(log=log)

    def child(name: str, command: list[str], token: str, redis_user: str) -> Child:
        port = redis_server.free_port()
        env = {
            **base_env,
            "REDKUBE_TOKEN": f"@{identity.token_path(token)}",
            "REDKUBE_REDIS_URL": redis.url_for(redis_user),
            "REDKUBE_METRICS_PORT": str(port),
        }
        made = Child(name, exe + command, env, home / "logs" / f"{name}.log", metrics_port=port)
        supervisor.children.append(made)
        return made

    for index in range(scales["apiserver"]):
        port = args.api_port  # replicas share the port (SO_REUSEPORT): one address for all
        child(
            f"apiserver-{index + 1}",
            [
                "apiserver",
                "--host",
                args.api_host,
                "--port",
                str(port),
                "--tls-cert-file",
                str(cert_file),
                "--tls-private-key-file",
                str(key_file),
                "--token-auth-file",
                str(identity.token_file),
                "--consumer",
                f"apiserver-{index + 1}",
            ],
            "admin",
            "apiserver",
        )
    if available("scheduler"):
        for index in range(scales["scheduler"]):
            child(f"scheduler-{index + 1}", ["scheduler"], "scheduler", "scheduler")
    if available("controller-manager"):
        for index in range(scales["controller-manager"]):
            extra = ["--node-grace-seconds", str(args.node_grace_seconds)] if args.node_grace_seconds else []
            extra += ["--eviction-seconds", str(args.eviction_seconds)] if args.eviction_seconds else []
            child(f"controller-manager-{index + 1}", ["controller-manager", *extra], "controller-manager",
                  "controller-manager")
    for index, node in enumerate(nodes, start=1):
        addresses = node_addresses(index)
        if available("kubelet"):
            child(
                f"kubelet-{node}",
                [
                    "kubelet",
                    "--node",
                    node,
                    "--runtime",
                    args.runtime,
                    "--node-ip",
                    addresses["node_ip"],
                    "--pod-cidr",
                    addresses["pod_cidr"],
                    "--stop-pods-on-exit",  # Ctrl-C on up stops the pods too (a crash restart re-adopts them)
                    # Renew the lease well inside the grace period the controller manager allows.
                    "--lease-seconds",
                    str(min(10.0, (args.node_grace_seconds or 40) / 4)),
                ],
                f"node-{node}",
                f"node-{node}",
            )
        if available("proxy"):
            child(f"proxy-{node}", ["proxy", "--node", node, "--node-ip", addresses["node_ip"]], "proxy", "proxy")
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    try:
        for made in supervisor.children:
            made.start()
        ready = wait_ready(server, ca_file)
        print(
            f"redkube is {'up' if ready else 'starting (API server not ready yet)'}.\n"
            f"  API server:  {server}\n"
            f"  Redis:       {redis.url}   ({redis.cli})\n"
            f"  kubeconfig:  {kubeconfig}\n"
            f"  logs:        {home / 'logs'}\n"
            f"  metrics:     "
            + ", ".join(f"{c.name}=127.0.0.1:{c.metrics_port}" for c in supervisor.children)
            + f"\n\n  export KUBECONFIG={kubeconfig}\n  kubectl get nodes\n\nCtrl-C stops the cluster.",
            flush=True,
        )
        supervisor.monitor()
    finally:
        supervisor.stop()
        renewal.stop()
        redis.stop()
        log.info("stopped")
    return 0
