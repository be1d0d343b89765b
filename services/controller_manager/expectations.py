"""Controller expectations: what a controller has asked for and not yet seen in its cache.

The informer cache lags the API: right after a controller creates three pods, its
cache may still show none, and a second look would create three more. Kubernetes'
ControllerExpectations (and UIDTrackingExpectations for deletions) close that gap,
and this is the same idea: before acting, a controller records how many creations
it expects and which objects it expects to go; the informer handlers count them off
as the cache catches up; while anything is outstanding the controller does not act
again (it still updates status). Expectations expire after ``ttl`` seconds, so a
lost watch event can delay a controller but never wedge it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    """Outstanding creations (a count) and deletions (object keys), per controller key."""

    def __init__(self, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, _Expectation] = {}

    def expect(self, key: str, *, adds: int = 0, deletes: Iterable[str] = ()) -> None:
        """Record what an action about to be taken should produce (replacing older records)."""
        self._items[key] = _Expectation(max(adds, 0), set(deletes), self._clock())

    def expect_creations(self, key: str, count: int) -> None:
        """Add ``count`` creations to what is outstanding (the record's clock restarts)."""
        item = self._items.setdefault(key, _Expectation())
        item.adds += max(count, 0)
        item.stamp = self._clock()

    def expect_deletions(self, key: str, obj_keys: Iterable[str]) -> None:
        """Add deletions of these objects to what is outstanding."""
        item = self._items.setdefault(key, _Expectation())
        item.deletes.update(obj_keys)
        item.stamp = self._clock()

    def creation_observed(self, key: str) -> None:
        item = self._items.get(key)
        if item is not None and item.adds > 0:
            item.adds -= 1

    def deletion_observed(self, key: str, obj_key: str) -> None:
        item = self._items.get(key)
        if item is not None:
            item.deletes.discard(obj_key)

    def lower(self, key: str, *, adds: int = 0, deletes: Iterable[str] = ()) -> None:
        """Forget expectations that will not be met (a create or delete that failed)."""
        item = self._items.get(key)
        if item is None:
            return
        item.adds = max(item.adds - adds, 0)
        item.deletes.difference_update(deletes)

    def satisfied(self, key: str) -> bool:
        """True when nothing is outstanding, or the record is too old to trust."""
        item = self._items.get(key)
        if item is None:
            return True
        if item.adds <= 0 and not item.deletes:
            return True
        return self._clock() - item.stamp > self.ttl

    def remaining(self, key: str) -> float:
        """Seconds until an unmet record expires (0 when satisfied)."""
        item = self._items.get(key)
        if item is None or self.satisfied(key):
            return 0.0
        return max(self.ttl - (self._clock() - item.stamp), 0.0)

    def pending(self, key: str) -> tuple[int, frozenset[str]]:
        item = self._items.get(key)
        return (item.adds, frozenset(item.deletes)) if item else (0, frozenset())

    def forget(self, key: str) -> None:
        self._items.pop(key, None)
