"""Turning Services and Endpoints into listening sockets (the proxy's sync loop).

Informer handlers only mark a Service key dirty and wake the loop; the loop then
brings that Service's ``Backends`` (ready endpoints per port) and listeners up to
date: one listener per ClusterIP:port, and per node_ip:nodePort for NodePort (and
LoadBalancer) Services. Sockets are bound with SO_REUSEADDR + SO_REUSEPORT, so the
proxies of several nodes on one machine share the same ClusterIP:port (the kernel
spreads connections among them). A bind that fails (EADDRINUSE: someone else has the
port) is logged, reported as a Warning Event ``FailedToListen`` on the Service, and
retried with back-off, while every other Service keeps being served. Closing a
listener never drops the connections it accepted.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.proxy.balancing import Backends, affinity_seconds, ready_endpoints
from services.proxy.relaying import Relay, RelayConfig
from shared.events import EventRecorder
from shared.informer import Informer, Obj, key_of
from shared.metrics import Metrics
from shared.process import Runtime

Address = tuple[str, int]
PortKey = tuple[str, str]  # (namespace/name, port name)


@dataclass(frozen=True)
class Target:
    """What a listening address serves: one port of one Service."""

    service: str
    port_name: str
    kind: str  # "ClusterIP" or "NodePort"


@dataclass
class Listener:
    address: Address
    target: Target
    backends: Backends
    server: asyncio.AbstractServer | None = None


@dataclass
class Failure:
    error: str
    backoff: float
    retry_at: float
    since: float = field(default_factory=time.monotonic)


def wanted_addresses(service: Obj, *, node_ip: str) -> dict[Address, Target]:
    """The addresses a Service should be served on by this node's proxy (TCP ports only)."""
    spec = service.get("spec") or {}
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return {}
    key = key_of(service)
    cluster_ip: Any = spec.get("clusterIP")  # as sent (None if unset): ip_address vets it
    try:
        ipaddress.ip_address(cluster_ip)
    except ValueError:
        cluster_ip = None  # headless ("None"), unset or unusable: nothing to listen on
    node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    found: dict[Address, Target] = {}
    for port in spec.get("ports") or []:
        if not isinstance(port, dict) or (port.get("protocol") or "TCP") != "TCP":
            continue
        name = str(port.get("name") or "")
        number, node_port = port.get("port"), port.get("nodePort")
        if cluster_ip and isinstance(number, int) and 0 < number < 65536:
            found[(cluster_ip, number)] = Target(key, name, "ClusterIP")
        if node_ports and node_ip and isinstance(node_port, int) and 0 < node_port < 65536:
            found[(node_ip, node_port)] = Target(key, name, "NodePort")
    return found


def listen_socket(address: Address) -> socket.socket:
    """A bound, non-blocking TCP socket shared with other proxies through SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror}" if name and exc.strerror else str(exc)


class Proxier:
    """Keeps this node's listeners and endpoint choices in step with the cluster."""

    def __init__(
        self,
        *,
        services: Informer,
        endpoints: Informer,
        recorder: EventRecorder | None,
        node: str,
        node_ip: str,
        config: RelayConfig,
        metrics: Metrics,
        backlog: int = 1024,
        retry_seconds: float = 1.0,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.services = services
        self.endpoints = endpoints
        self.recorder = recorder
        self.node = node
        self.node_ip = node_ip
        self.config = config
        self.metrics = metrics
        self.backlog = backlog
        self.retry_seconds = retry_seconds
        self.retry_max_seconds = retry_max_seconds
        self.backends: dict[PortKey, Backends] = {}
        self.listeners: dict[Address, Listener] = {}
        self.failures: dict[Address, Failure] = {}
        self._wanted: dict[str, dict[Address, Target]] = {}
        self._ports: dict[str, set[str]] = {}  # service key -> its port names in self.backends
        self._retired: list[Backends] = []
        self._published: dict[int, dict[str, int]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._log = structlog.get_logger().bind(node=node)
        services.add_handler(self._changed)
        endpoints.add_handler(self._changed)
        metrics.gauge("proxy_connections_active", lambda: float(len(config.active)),
                      help="connections being relayed now")
        metrics.gauge("proxy_listeners", lambda: float(len(self.listeners)), help="listening sockets")
        metrics.gauge("proxy_listen_failing", lambda: float(len(self.failures)),
                      help="addresses this proxy cannot listen on (retrying)")

    # --- events ------------------------------------------------------------------------

    def _changed(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._dirty.add(key_of(obj))
        self._wake.set()

    # --- the loop ------------------------------------------------------------------------

    async def run(self, runtime: Runtime) -> None:
        try:
            waiting: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(self.services.synced.wait(), self.endpoints.synced.wait())
            )
            stopping = asyncio.ensure_future(runtime.stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stopping.cancel()
            if runtime.stop.is_set():
                return
            self._dirty.update(self.services.keys())
            self._log.info("caches synced; serving", services=len(self.services), endpoints=len(self.endpoints))
            while not runtime.stop.is_set():
                self._wake.clear()
                try:
                    await self.sync()
                except Exception:
                    self._log.exception("sync failed; retrying")
                    await runtime.sleep(self.retry_seconds)
                    self._wake.set()
                    continue
                timeout = self._next_retry()
                wake = asyncio.ensure_future(self._wake.wait())
                stopping = asyncio.ensure_future(runtime.stop.wait())
                await asyncio.wait({wake, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                stopping.cancel()
        finally:
            self.close()

    def _next_retry(self) -> float | None:
        if not self.failures:
            return None
        return max(0.0, min(f.retry_at for f in self.failures.values()) - time.monotonic())

    async def sync(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            try:
                self._sync_backends(key)
            except Exception:  # a malformed object must not stop the others
                self._log.exception("cannot sync service", key=key)
        wanted: dict[Address, Target] = {}
        for key in sorted(self._wanted):
            for address, target in self._wanted[key].items():
                if address in wanted:
                    if wanted[address] != target:
                        self._log.warning("address claimed by two services; keeping the first",
                                          address=_fmt(address), key=target.service, first=wanted[address].service)
                    continue
                wanted[address] = target
        for address in list(self.listeners):
            if address not in wanted:
                self._close_listener(address, reason="service port removed")
        for address in list(self.failures):
            if address not in wanted:
                del self.failures[address]
        now = time.monotonic()
        for address, target in wanted.items():
            backends = self.backends.get((target.service, target.port_name))
            if backends is None:
                continue
            listener = self.listeners.get(address)
            if listener is not None:
                if listener.target != target or listener.backends is not backends:
                    listener.target, listener.backends = target, backends
                continue
            failure = self.failures.get(address)
            if failure is not None and failure.retry_at > now:
                continue
            await self._open_listener(address, target, backends)
        self.metrics.inc("proxy_syncs_total", help="sync loop passes")

    def _sync_backends(self, key: str) -> None:
        service = self.services.get(key)
        wanted = wanted_addresses(service, node_ip=self.node_ip) if service is not None else {}
        if wanted:
            self._wanted[key] = wanted
        else:
            self._wanted.pop(key, None)
        ports = {target.port_name for target in wanted.values()}
        endpoints = self.endpoints.get(key)
        affinity = affinity_seconds(service) if service is not None else None
        for port_name in ports:
            backends = self.backends.get((key, port_name))
            if backends is None:
                backends = self.backends[(key, port_name)] = Backends(key, port_name)
            ready = ready_endpoints(endpoints, port_name)
            if backends.update(ready, affinity_seconds=affinity):
                self._log.info("endpoints changed", key=key, port=port_name or None,
                               endpoints=[f"{ip}:{port}" for ip, port in ready])
        for port_name in self._ports.pop(key, set()) - ports:
            self._retired.append(self.backends.pop((key, port_name)))
        if ports:
            self._ports[key] = ports

    async def _open_listener(self, address: Address, target: Target, backends: Backends) -> None:
        listener = Listener(address, target, backends)
        log = self._log.bind(key=target.service, port=target.port_name or None, address=_fmt(address))
        config = self.config

        def accept() -> asyncio.BaseProtocol:
            return Relay(listener.backends, config, log=log).client

        try:
            sock = listen_socket(address)
            try:
                listener.server = await asyncio.get_running_loop().create_server(
                    accept, sock=sock, backlog=self.backlog
                )
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            self._listen_failed(address, target, exc, log)
            return
        self.listeners[address] = listener
        failure = self.failures.pop(address, None)
        if failure is not None:
            log.info("listening after earlier failures", kind=target.kind, failed_for=round(time.monotonic() - failure.since, 1))
        else:
            log.info("listening", kind=target.kind)

    def _listen_failed(self, address: Address, target: Target, exc: OSError, log: Any) -> None:
        previous = self.failures.get(address)
        backoff = self.retry_seconds if previous is None else min(previous.backoff * 2, self.retry_max_seconds)
        error = describe(exc)
        self.failures[address] = Failure(error, backoff, time.monotonic() + backoff,
                                         since=previous.since if previous else time.monotonic())
        log.warning("cannot listen; serving the other services and retrying", kind=target.kind, error=error,
                    retry_in=backoff)
        self.metrics.inc("proxy_listen_failures_total", help="failed attempts to listen on a service address",
                         service=target.service, address=_fmt(address))
        service = self.services.get(target.service)
        if service is not None and self.recorder is not None:
            message = (f"node {self.node}: cannot listen on {_fmt(address)} ({target.kind} port"
                       f"{' ' + target.port_name if target.port_name else ''}): {error}")
            task = asyncio.get_running_loop().create_task(
                self.recorder.record(service, reason="FailedToListen", message=message, type="Warning"))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)

    def _close_listener(self, address: Address, *, reason: str) -> None:
        listener = self.listeners.pop(address)
        if listener.server is not None:
            listener.server.close()
        self._log.info("closed listener", address=_fmt(address), key=listener.target.service, reason=reason)

    def close(self) -> None:
        """Stop listening and drop every relayed connection (the proxy is stopping)."""
        for address in list(self.listeners):
            self._close_listener(address, reason="stopping")
        for relay in list(self.config.active):
            relay.abort()
        for task in self._event_tasks:
            task.cancel()

    # --- metrics ---------------------------------------------------------------------------

    async def publish(self, runtime: Runtime, *, interval: float = 1.0) -> None:
        """Publish per-service counters (kept as plain ints on the hot path) as metric deltas."""
        while True:
            self.publish_once()
            if await runtime.sleep(interval):
                self.publish_once()
                return

    def publish_once(self) -> None:
        for backends in _chain(self.backends.values(), self._retired):
            current = backends.counters.as_dict()
            last = self._published.get(id(backends), {})
            labels = {"service": backends.service, "port": backends.port_name}
            for name, value in current.items():
                delta = value - last.get(name, 0)
                if delta:
                    self._inc(name, delta, labels)
            self._published[id(backends)] = current
        done = [b for b in self._retired if b.active <= 0]
        for backends in done:
            self._retired.remove(backends)
            self._published.pop(id(backends), None)

    def _inc(self, counter: str, delta: int, labels: dict[str, str]) -> None:
        m = self.metrics
        if counter == "accepted":
            m.inc("proxy_connections_total", delta, help="connections accepted", **labels)
        elif counter == "closed":
            m.inc("proxy_connections_closed_total", delta, help="connections ended (active = total - closed)",
                  **labels)
        elif counter == "failed_no_endpoints":
            m.inc("proxy_connections_failed_total", delta, help="connections refused", reason="no_endpoints",
                  **labels)
        elif counter == "failed_connect":
            m.inc("proxy_connections_failed_total", delta, reason="connect_failed", **labels)
        elif counter == "retries":
            m.inc("proxy_endpoint_retries_total", delta, help="connects retried on another endpoint", **labels)
        elif counter == "bytes_to_backend":
            m.inc("proxy_bytes_total", delta, help="bytes relayed", direction="to_backend", **labels)
        elif counter == "bytes_to_client":
            m.inc("proxy_bytes_total", delta, direction="to_client", **labels)


def _chain(*groups: Iterable[Backends]) -> list[Backends]:
    return [b for group in groups for b in group]


def _fmt(address: Address) -> str:
    return f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"
