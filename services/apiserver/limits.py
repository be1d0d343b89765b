"""Per-identity limits on the HTTP API: request rate (429 + Retry-After) and open watches.

A token bucket per user, kept in the API server process (each replica limits what it
serves). Control-plane components and nodes are exempt, as Kubernetes' priority and
fairness gives them levels of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from services.apiserver.auth import CONTROL_PLANE, MASTERS, NODES, User
from services.apiserver.errors import ApiError


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class Limits:
    rate: float = 200.0  # requests per second per user; 0 disables
    burst: float = 400.0
    max_watches: int = 100
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _watches: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def exempt(user: User) -> bool:
        return user.name in CONTROL_PLANE or NODES in user.groups or (MASTERS in user.groups and
                                                                       user.name.startswith("system:"))

    def admit(self, user: User) -> None:
        if self.rate <= 0 or self.exempt(user):
            return
        now = time.monotonic()
        bucket = self._buckets.setdefault(user.name, _Bucket(self.burst, now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            wait = max(1, int((1 - bucket.tokens) / self.rate + 0.999))
            raise ApiError(429, f"Too many requests from {user.name}, please try again later.",
                           reason="TooManyRequests", details={"retryAfterSeconds": wait},
                           headers={"Retry-After": str(wait)})
        bucket.tokens -= 1

    @contextmanager
    def watch(self, user: User) -> Iterator[None]:
        open_now = self._watches.get(user.name, 0)
        if self.max_watches and open_now >= self.max_watches and not self.exempt(user):
            raise ApiError(429, f"Too many open watches for {user.name} (limit {self.max_watches})",
                           reason="TooManyRequests", details={"retryAfterSeconds": 1}, headers={"Retry-After": "1"})
        self._watches[user.name] = open_now + 1
        try:
            yield
        finally:
            self._watches[user.name] -= 1
