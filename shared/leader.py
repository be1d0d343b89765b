"""Leader election with a lease in Redis: ``SET NX PX`` to take it, compare-and-extend
to renew. The leader's work runs only while the lease is held: when a renewal fails
or finds another holder, the work is cancelled at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from shared import redis_replies
from shared.process import Runtime

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

LeaderWork = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # a coroutine: it runs as a task


class LeaderElector:
    def __init__(
        self,
        redis: aioredis.Redis,
        key: str,
        identity: str,
        *,
        lease_ms: int = 15_000,
        renew_ms: int = 5_000,
        retry_ms: int = 1_000,
    ) -> None:
        self._redis = redis
        self.key = key
        self.identity = identity
        self.lease_ms = lease_ms
        self.renew_ms = renew_ms
        self.retry_ms = retry_ms
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.leading = False
        self._log = structlog.get_logger().bind(lease=key, identity=identity)

    async def try_acquire(self) -> bool:
        return bool(await self._redis.set(self.key, self.identity, nx=True, px=self.lease_ms))

    async def renew(self) -> bool:
        return bool(await self._renew(keys=[self.key], args=[self.identity, self.lease_ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.identity])

    async def holder(self) -> str | None:
        value = redis_replies.bulk(await self._redis.get(self.key))
        return value.decode() if value else None

    async def run(self, runtime: Runtime, work: LeaderWork) -> None:
        """Campaign until stopped; run ``work(lost)`` each time leadership is won."""
        while not runtime.stop.is_set():
            try:
                acquired = await self.try_acquire()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                self._log.warning("cannot reach redis to campaign", error=str(exc))
                acquired = False
            if not acquired:
                if await runtime.sleep(self.retry_ms / 1000):
                    return
                continue
            self._log.info("became leader")
            self.leading = True
            lost = asyncio.Event()
            task = asyncio.create_task(work(lost), name="leader-work")
            try:
                await self._hold(runtime, lost, task)
            finally:
                self.leading = False
                lost.set()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if runtime.stop.is_set():
                    try:
                        await self.release()
                    except Exception:
                        pass
            self._log.warning("stopped leading")

    async def _hold(self, runtime: Runtime, lost: asyncio.Event, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        while not runtime.stop.is_set() and not task.done():
            if await runtime.sleep(self.renew_ms / 1000):
                return
            try:
                if not await self.renew():
                    self._log.warning("lease taken by another")
                    return
                renewed_at = loop.time()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                # Keep acting only while the lease we last renewed is surely still ours.
                if (loop.time() - renewed_at) * 1000 > self.lease_ms - self.renew_ms:
                    self._log.warning("cannot renew lease in time; stepping down", error=str(exc))
                    return
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
