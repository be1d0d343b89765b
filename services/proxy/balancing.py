"""Choosing an endpoint for a connection: round robin, ClientIP affinity, counters.

A ``Backends`` holds the ready endpoints of one service port (what its listeners
forward to) and the per-port counters the metrics task publishes. It is replaced
never, only updated in place, so a listener keeps pointing at the same object while
endpoints come and go; connections already established keep their own endpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Endpoint = tuple[str, int]  # (ip, port)

DEFAULT_AFFINITY_SECONDS = 10800
#: Affinity entries are swept at most this often (lookups check expiry anyway).
SWEEP_EVERY = 60.0


@dataclass
class Counters:
    """Monotonic counts for one service port; the metrics task publishes deltas."""

    accepted: int = 0
    closed: int = 0
    failed_no_endpoints: int = 0
    failed_connect: int = 0
    retries: int = 0
    bytes_to_backend: int = 0
    bytes_to_client: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Backends:
    """The ready endpoints of one service port and how to pick among them."""

    service: str  # namespace/name
    port_name: str
    endpoints: list[Endpoint] = field(default_factory=list)
    affinity_seconds: float | None = None  # None: no session affinity
    counters: Counters = field(default_factory=Counters)
    active: int = 0
    _next: int = 0
    _ready: frozenset[Endpoint] = frozenset()
    _affinity: dict[str, tuple[Endpoint, float]] = field(default_factory=dict)
    _swept: float = 0.0

    def update(self, endpoints: list[Endpoint], *, affinity_seconds: float | None) -> bool:
        """Replace the endpoint list; True when it changed."""
        changed = endpoints != self.endpoints or affinity_seconds != self.affinity_seconds
        self.endpoints = endpoints
        self._ready = frozenset(endpoints)
        self.affinity_seconds = affinity_seconds
        if affinity_seconds is None:
            self._affinity.clear()
        elif self._affinity:
            self._affinity = {ip: entry for ip, entry in self._affinity.items() if entry[0] in self._ready}
        return changed

    def pick(self, client_ip: str, *, exclude: set[Endpoint] | frozenset[Endpoint] = frozenset()) -> Endpoint | None:
        """The endpoint for a new connection from ``client_ip``, avoiding ``exclude``."""
        endpoints = self.endpoints
        if not endpoints:
            return None
        now = 0.0
        if self.affinity_seconds is not None:
            now = time.monotonic()
            entry = self._affinity.get(client_ip)
            if entry is not None and entry[0] not in exclude and now - entry[1] < self.affinity_seconds:
                if entry[0] in self._ready:
                    self._affinity[client_ip] = (entry[0], now)
                    return entry[0]
        chosen: Endpoint | None = None
        for _ in range(len(endpoints)):
            candidate = endpoints[self._next % len(endpoints)]
            self._next = (self._next + 1) % len(endpoints)
            if candidate not in exclude:
                chosen = candidate
                break
        if chosen is not None and self.affinity_seconds is not None:
            self._affinity[client_ip] = (chosen, now)
            if now - self._swept > SWEEP_EVERY:
                self._sweep(now)
        return chosen

    def _sweep(self, now: float) -> None:
        limit = self.affinity_seconds or 0
        self._affinity = {ip: entry for ip, entry in self._affinity.items() if now - entry[1] < limit}
        self._swept = now


def affinity_seconds(service: dict[str, Any]) -> float | None:
    """The ClientIP affinity timeout of a Service, or None without affinity."""
    spec = service.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    try:
        seconds = int(config) if config is not None else DEFAULT_AFFINITY_SECONDS
    except (TypeError, ValueError):
        seconds = DEFAULT_AFFINITY_SECONDS
    return float(seconds if seconds > 0 else DEFAULT_AFFINITY_SECONDS)


def ready_endpoints(endpoints: dict[str, Any] | None, port_name: str) -> list[Endpoint]:
    """Ready addresses of an Endpoints object for the service port named ``port_name``.

    Ports match by name, as kube-proxy matches them (an unnamed service port matches an
    unnamed endpoint port); ``notReadyAddresses`` never receive traffic.
    """
    found: list[Endpoint] = []
    seen: set[Endpoint] = set()
    for subset in (endpoints or {}).get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        ports = [p for p in subset.get("ports") or [] if isinstance(p, dict)]
        for port in (p for p in ports if (p.get("name") or "") == port_name):
            if (port.get("protocol") or "TCP") != "TCP" or not isinstance(port.get("port"), int):
                continue
            for address in subset.get("addresses") or []:
                ip = address.get("ip") if isinstance(address, dict) else None
                if isinstance(ip, str) and ip:
                    endpoint = (ip, port["port"])
                    if endpoint not in seen:
                        seen.add(endpoint)
                        found.append(endpoint)
    return sorted(found)
