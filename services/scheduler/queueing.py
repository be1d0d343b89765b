"""The scheduling queue: kube-scheduler's active, back-off and unschedulable queues.

New pods go to the active queue (FIFO). A pod that fits nowhere waits in the
unschedulable set until the cluster changes in a way that could help (a node added or
changed, a pod gone), then goes back through back-off (1 s doubling to 10 s per
attempt by default) so one pod cannot spin. A pod whose bind failed for a transient
reason goes straight to back-off. Every key is in at most one of the three places;
``pop`` is for the one scheduling loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0, unschedulable_flush: float = 60.0):
        self._active: deque[str] = deque()
        self._in_active: set[str] = set()
        self._backoff: list[tuple[float, int, str]] = []
        self._in_backoff: dict[str, float] = {}
        self._unschedulable: dict[str, float] = {}  # key -> when it was parked
        self._attempts: dict[str, int] = {}
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_flush = unschedulable_flush

    # --- adding --------------------------------------------------------------------

    def add(self, key: str) -> None:
        """A pod to schedule now (new or changed); one waiting out back-off keeps waiting."""
        if key in self._in_active or key in self._in_backoff:
            return
        self._unschedulable.pop(key, None)
        self._in_active.add(key)
        self._active.append(key)
        self._wakeup.set()

    def backoff_delay(self, key: str) -> float:
        attempts = self._attempts.get(key, 0)
        return min(self.initial_backoff * 2 ** max(attempts - 1, 0), self.max_backoff)

    def add_backoff(self, key: str, delay: float | None = None) -> None:
        """Retry later: after ``delay``, or the pod's back-off for its attempts so far."""
        self._unschedulable.pop(key, None)
        self._in_active.discard(key)
        when = time.monotonic() + (self.backoff_delay(key) if delay is None else delay)
        if self._in_backoff.get(key, float("inf")) <= when:
            return
        self._in_backoff[key] = when
        heapq.heappush(self._backoff, (when, next(self._counter), key))
        self._wakeup.set()

    def park(self, key: str) -> None:
        """The pod fits nowhere: wait for a cluster change (or the periodic flush)."""
        self._in_active.discard(key)
        self._in_backoff.pop(key, None)
        self._unschedulable[key] = time.monotonic()

    def move_all(self) -> int:
        """Something changed that may help parked pods: retry them once their back-off allows."""
        moved = list(self._unschedulable)
        self._unschedulable.clear()
        for key in moved:
            self.add_backoff(key)
        return len(moved)

    def attempted(self, key: str) -> None:
        self._attempts[key] = self._attempts.get(key, 0) + 1

    def delete(self, key: str) -> None:
        """The pod is bound, gone or not ours: forget it entirely."""
        self._in_active.discard(key)
        self._in_backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        self._attempts.pop(key, None)

    # --- taking --------------------------------------------------------------------

    def _promote(self) -> float:
        """Move due back-off entries (and long-parked pods) to active; seconds to the next due one."""
        now = time.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            when, _, key = heapq.heappop(self._backoff)
            if self._in_backoff.get(key) == when:
                del self._in_backoff[key]
                self._in_active.add(key)
                self._active.append(key)
        if self._unschedulable:
            stale = [k for k, t in self._unschedulable.items() if now - t >= self.unschedulable_flush]
            for key in stale:
                del self._unschedulable[key]
                self.add(key)
        return (self._backoff[0][0] - now) if self._backoff else 1.0

    async def pop(self) -> str:
        while True:
            wait = self._promote()
            while self._active:
                key = self._active.popleft()
                if key in self._in_active:
                    self._in_active.discard(key)
                    return key
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=min(max(wait, 0.005), 1.0))
            except TimeoutError:
                pass

    # --- reading -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._in_active) + len(self._in_backoff) + len(self._unschedulable)

    def counts(self) -> dict[str, int]:
        return {
            "active": len(self._in_active),
            "backoff": len(self._in_backoff),
            "unschedulable": len(self._unschedulable),
        }

    def is_parked(self, key: str) -> bool:
        return key in self._unschedulable
