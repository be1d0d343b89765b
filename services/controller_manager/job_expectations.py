"""Expectations: the creations and deletions a controller has asked for but not yet seen.

The informer cache lags the API. Without this record a controller that created a pod
would, on its next run, still count the old number and create again. As in
kube-controller-manager, a key whose expectations are not yet met is not acted on;
the informer's events lower the counts, and a record older than ``ttl`` is assumed
lost (a watch event can never arrive for a create that failed silently).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Record:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    stamp: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self, *, ttl: float = 60.0) -> None:
        self._records: dict[str, _Record] = {}
        self.ttl = ttl

    def expect_creations(self, key: str, count: int) -> None:
        record = self._records.setdefault(key, _Record())
        record.adds += count
        record.stamp = time.monotonic()

    def expect_deletions(self, key: str, pods: list[str]) -> None:
        record = self._records.setdefault(key, _Record())
        record.deletes.update(pods)
        record.stamp = time.monotonic()

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None and record.adds > 0:
            record.adds -= 1

    def deletion_observed(self, key: str, pod: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.deletes.discard(pod)

    def satisfied(self, key: str) -> bool:
        record = self._records.get(key)
        if record is None:
            return True
        if (record.adds <= 0 and not record.deletes) or time.monotonic() - record.stamp > self.ttl:
            del self._records[key]
            return True
        return False

    def remaining(self, key: str) -> float:
        """Seconds until the record of ``key`` expires (0 when there is none)."""
        record = self._records.get(key)
        return 0.0 if record is None else max(0.0, self.ttl - (time.monotonic() - record.stamp))

    def forget(self, key: str) -> None:
        self._records.pop(key, None)
