from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.process import Runtime
from shared.workqueue import Result, TerminalError, WorkQueue, run_controller


async def until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the work queue"
        await asyncio.sleep(0.01)


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
    await until(lambda: len(calls) >= 3 and not running and len(queue) == 0)
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
    await until(lambda: attempts == {"flaky": 3, "doomed": 1, "later": 2} and len(queue) == 0)
    runtime.stop.set()
    await task
    assert attempts == {"flaky": 3, "doomed": 1, "later": 2}
    assert queue.failures("flaky") == 0
