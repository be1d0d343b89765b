from __future__ import annotations

import asyncio

from shared.process import Runtime
from shared.workqueue import Result, TerminalError, WorkQueue, run_controller


async def test_deduplicates_and_never_runs_a_key_twice_at_once() -> None:
    queue = WorkQueue()
    runtime = Runtime()
    running: set[str] = set()
    overlaps = 0
    calls: list[str] = []

    async def reconcile(key: str) -> None:
        nonlocal overlaps
        if key in running:
            overlaps += 1
        running.add(key)
        calls.append(key)
        await asyncio.sleep(0.02)
        if key == "a" and calls.count("a") == 1:
            queue.add("a")  # added while running: handled once more afterwards
        running.discard(key)

    for key in ["a", "a", "b", "a"]:
        queue.add(key)
    task = asyncio.create_task(run_controller("t", queue, reconcile, runtime, workers=4))
    await asyncio.sleep(0.3)
    runtime.stop.set()
    await task
    assert overlaps == 0
    assert sorted(calls) == ["a", "a", "b"]


async def test_failures_back_off_and_terminal_errors_drop() -> None:
    queue = WorkQueue(base_delay=0.01)
    runtime = Runtime()
    attempts: dict[str, int] = {"flaky": 0, "doomed": 0, "later": 0}

    async def reconcile(key: str) -> Result | None:
        attempts[key] += 1
        if key == "flaky" and attempts[key] < 3:
            raise RuntimeError("not yet")
        if key == "doomed":
            raise TerminalError("never")
        if key == "later" and attempts[key] == 1:
            return Result(requeue_after=0.05)
        return None

    for key in attempts:
        queue.add(key)
    task = asyncio.create_task(run_controller("t", queue, reconcile, runtime, workers=2))
    await asyncio.sleep(0.5)
    runtime.stop.set()
    await task
    assert attempts == {"flaky": 3, "doomed": 1, "later": 2}
    assert queue.failures("flaky") == 0
