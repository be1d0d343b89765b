"""Test support for the proxy: real backend TCP servers, clients, Services and Endpoints.

Backends are threaded TCP servers on loopback addresses of the test's own (random)
127.x.y.0/24, answering each line ``hello`` with ``<name> hello`` so a client can tell
which endpoint it reached. Addresses and ports are random per test so that tests of
other clusters on the same machine (which share the 127/8 space) never collide.
"""

from __future__ import annotations

import random
import socket
import socketserver
import threading
import time
from typing import Any

import httpx

from tests.harness import Cluster, wait_for


class Backend:
    """A line-echoing TCP server that names itself in every answer (optionally greeting first)."""

    def __init__(self, name: str, ip: str, port: int, *, hang: bool = False, greet: bool = False) -> None:
        self.name, self.ip, self.port, self.hang, self.greet = name, ip, port, hang, greet
        self.accepted = 0
        self.lock = threading.Lock()
        backend = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with backend.lock:
                    backend.accepted += 1
                if backend.greet:  # speaks first, like SMTP or MySQL servers
                    self.wfile.write(f"{backend.name} welcome\n".encode())
                    self.wfile.flush()
                if backend.hang:
                    while self.rfile.read(1):
                        pass
                    return
                for line in self.rfile:
                    self.wfile.write(f"{backend.name} ".encode() + line)
                    self.wfile.flush()

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server((ip, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def random_block() -> str:
    """A random 127.A.B prefix for one test's backend and node addresses."""
    return f"127.{random.randrange(140, 250)}.{random.randrange(1, 250)}"


def free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def service_port() -> int:
    """A random service port, so concurrent clusters sharing a ClusterIP by chance do not share ports."""
    return random.randrange(20000, 29000)


def ask(ip: str, port: int, *, source: str | None = None, timeout: float = 3.0, text: str = "hello") -> str:
    """One connection, one line: the name of the backend that answered."""
    with socket.create_connection((ip, port), timeout=timeout, source_address=(source, 0) if source else None) as sock:
        sock.sendall(text.encode() + b"\n")
        answer = sock.makefile("rb").readline().decode()
    if not answer.endswith(f" {text}\n"):
        raise ConnectionError(f"unexpected answer {answer!r}")
    return answer.split(" ", 1)[0]


class Conversation:
    """A connection kept open across questions (to check established connections survive)."""

    def __init__(self, ip: str, port: int, *, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection((ip, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def ask(self, text: str = "again") -> str:
        self.sock.sendall(text.encode() + b"\n")
        answer = self.file.readline().decode()
        if not answer.endswith(f" {text}\n"):
            raise ConnectionError(f"unexpected answer {answer!r}")
        return answer.split(" ", 1)[0]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def refused(ip: str, port: int, *, timeout: float = 2.0) -> bool:
    """True when a connection is refused, reset or closed without an answer."""
    try:
        ask(ip, port, timeout=timeout)
    except (ConnectionError, OSError):
        return True
    return False


# --- API objects ------------------------------------------------------------------------


def create_service(
    http: httpx.Client, name: str, *, port: int, port_name: str | None = None, node_port: int | None = None,
    kind: str = "ClusterIP", affinity: bool = False, namespace: str = "default",
) -> dict[str, Any]:
    spec_port: dict[str, Any] = {"port": port, "targetPort": port}
    if port_name:
        spec_port["name"] = port_name
    if node_port:
        spec_port["nodePort"] = node_port
    spec: dict[str, Any] = {"type": kind, "ports": [spec_port], "selector": {"app": name}}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    response = http.post(f"/api/v1/namespaces/{namespace}/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def set_endpoints(
    http: httpx.Client, name: str, *, ready: list[Backend | str], port: int, not_ready: list[Backend | str] = (),  # type: ignore[assignment]
    port_name: str | None = None, namespace: str = "default",
) -> None:
    """Create or replace the Endpoints of ``name`` (all addresses on one port)."""

    def ip(item: Backend | str) -> str:
        return item.ip if isinstance(item, Backend) else item

    endpoint_port: dict[str, Any] = {"port": port, "protocol": "TCP"}
    if port_name:
        endpoint_port["name"] = port_name
    subset: dict[str, Any] = {"ports": [endpoint_port]}
    if ready:
        subset["addresses"] = [{"ip": ip(b)} for b in ready]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip(b)} for b in not_ready]
    path = f"/api/v1/namespaces/{namespace}/endpoints/{name}"
    current = http.get(path)
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                            "subsets": [subset] if (ready or not_ready) else []}
    if current.status_code == 200:
        body["metadata"]["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
        response = http.put(path, json=body)
    else:
        response = http.post(f"/api/v1/namespaces/{namespace}/endpoints", json=body)
    assert response.status_code in (200, 201), response.text


def start_proxy(cluster: Cluster, node: str, node_ip: str, *extra: str) -> tuple[Any, int]:
    """A real ``redkube proxy`` with short timeouts; returns (process, metrics port)."""
    port = free_port("127.0.0.1")
    process = cluster.start(
        "proxy", "--node", node, "--node-ip", node_ip, "--metrics-port", str(port), "--connect-timeout", "0.5",
        "--listen-retry-seconds", "0.2", "--listen-retry-max-seconds", "1", "--metrics-interval", "0.2", *extra,
        token="proxy", name=f"proxy-{node}",
    )

    def ready() -> bool:
        if not process.alive():
            raise AssertionError(f"proxy exited:\n{process.log()[-3000:]}")
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200

    wait_for(ready, timeout=20, message="proxy /readyz")
    return process, port


def metric(metrics_port: int, name: str, /, **labels: str) -> float:
    """The sum of the series of ``name`` whose labels include ``labels``."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(f"redkube_{name}") or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        if series.split("{", 1)[0] != f"redkube_{name}":
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def names(ip: str, port: int, count: int, **kw: Any) -> list[str]:
    return [ask(ip, port, **kw) for _ in range(count)]


def eventually_serves(ip: str, port: int, *, timeout: float = 10.0) -> str:
    return wait_for(lambda: ask(ip, port, timeout=1.0), timeout=timeout, message=f"{ip}:{port} to answer")


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 3)
