"""The work queue and controller loop of controller-runtime, kept whole.

Keys (``namespace/name``) are deduplicated while pending; a key is never handled by
two workers at once (added again while being handled, it is handled once more
afterwards); failures retry with per-key exponential back-off, reset on success.
``reconcile(key)`` returns ``Result(requeue_after=…)`` for a later look, None when
done, or raises: ``TerminalError`` is logged and dropped, anything else retried.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from shared.metrics import Metrics
from shared.process import Runtime


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None


class TerminalError(Exception):
    """A reconcile failure that retrying cannot fix."""


Reconcile = Callable[[str], Awaitable[Result | None]]


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.05, max_delay: float = 60.0) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._delayed: list[tuple[float, int, str]] = []
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self.base_delay = base_delay
        self.max_delay = max_delay

    def add(self, key: str) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        heapq.heappush(self._delayed, (loop.time() + delay, next(self._counter), key))
        self._wakeup.set()

    def add_rate_limited(self, key: str) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.base_delay * 2**failures, self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: str) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._pending)

    async def run_delays(self, runtime: Runtime) -> None:
        """Move delayed keys into the queue when their time comes."""
        loop = asyncio.get_running_loop()
        while not runtime.stop.is_set():
            now = loop.time()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, key = heapq.heappop(self._delayed)
                self.add(key)
            timeout = (self._delayed[0][0] - now) if self._delayed else 1.0
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=min(max(timeout, 0.001), 1.0))
            except TimeoutError:
                pass


def _give_back(queue: WorkQueue, getter: asyncio.Future[str]) -> None:
    """Undo a ``get`` whose worker stops before handling the key: a key left active
    would be ignored by every later ``add`` (only marked dirty) for ever, e.g. when a
    controller manager loses its lease and wins it back in the same process."""
    if not getter.done():
        getter.cancel()  # asyncio.Queue.get leaves the item queued when cancelled
    elif not getter.cancelled() and getter.exception() is None:
        key = getter.result()
        queue.done(key)
        queue.add(key)


async def run_controller(
    name: str,
    queue: WorkQueue,
    reconcile: Reconcile,
    runtime: Runtime,
    *,
    workers: int = 4,
    metrics: Metrics | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``workers`` loops taking keys from ``queue`` into ``reconcile``."""
    log = structlog.get_logger().bind(controller=name)
    halt = stop or runtime.stop

    async def worker() -> None:
        while not halt.is_set() and not runtime.stop.is_set():
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(halt.wait())
            try:
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                _give_back(queue, getter)
                raise
            finally:
                stopper.cancel()
            if getter not in done:
                _give_back(queue, getter)
                return
            key = getter.result()
            try:
                result = await reconcile(key)
            except TerminalError as exc:
                log.error("reconcile failed for good", key=key, error=str(exc))
                queue.forget(key)
                if metrics:
                    metrics.inc("reconcile_total", controller=name, result="terminal")
            except Exception as exc:
                delay = queue.add_rate_limited(key)
                log.warning("reconcile failed; retrying", key=key, error=repr(exc), retry_in=round(delay, 3))
                if metrics:
                    metrics.inc("reconcile_total", controller=name, result="error")
            else:
                queue.forget(key)
                if result is not None and result.requeue_after is not None:
                    queue.add_after(key, result.requeue_after)
                if metrics:
                    metrics.inc("reconcile_total", controller=name, result="ok")
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(queue.run_delays(runtime), name=f"{name}-delays")]
    tasks += [asyncio.create_task(worker(), name=f"{name}-worker-{n}") for n in range(workers)]
    try:
        await halt.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
