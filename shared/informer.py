"""Informers: list + watch one kind into a local cache and call handlers on changes.

The one way controllers, the scheduler, the kubelet and the proxy see the cluster.
An informer lists (remembering the revision the list reflects), then reads the
kind's watch stream from that revision; when the stream has been compacted past it
(Gone) it relists and reports the difference, so no change is ever missed. A
kubelet's informer reads its node's pod stream instead of the whole kind's.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable
from typing import Any

import redis.exceptions
import structlog

from shared import redis_conn, selectors
from shared.process import Runtime
from shared.store import Gone, Store, WatchEvent

Obj = dict[str, Any]
Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous object)


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name', '')}"


class Informer:
    def __init__(
        self, store: Store, plural: str, *, redis_url: str, node: str | None = None, block_ms: int = 1000
    ) -> None:
        self.store = store
        self.plural = plural
        self.node = node
        self.block_ms = block_ms
        self._url = redis_url
        self._cache: dict[str, Obj] = {}
        self._handlers: list[Handler] = []
        self.synced = asyncio.Event()
        self.revision = 0
        self._log = structlog.get_logger().bind(informer=plural, node=node)

    # --- the cache -----------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def list(
        self, *, namespace: str | None = None, selector: selectors.LabelSelector | None = None
    ) -> builtins.list[Obj]:  # ``list`` in this class is the method
        items: Iterable[Obj] = self._cache.values()
        if namespace is not None:
            items = (o for o in items if (o.get("metadata") or {}).get("namespace") == namespace)
        if selector is not None:
            items = (o for o in items if selector.matches((o.get("metadata") or {}).get("labels")))
        return list(items)

    def keys(self) -> builtins.list[str]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def _wanted(self, obj: Obj) -> bool:
        return self.node is None or (obj.get("spec") or {}).get("nodeName") == self.node

    def _notify(self, kind: str, obj: Obj, old: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, obj, old)
            except Exception:
                self._log.exception("event handler failed", event=kind, key=key_of(obj))

    # --- list and watch ---------------------------------------------------------------

    async def relist(self) -> None:
        items, revision = await self.store.list(self.plural)
        fresh = {key_of(o): o for o in items if self._wanted(o)}
        for key, gone in list(self._cache.items()):
            if key not in fresh:
                del self._cache[key]
                self._notify("DELETED", gone, gone)
        for key, obj in fresh.items():
            old = self._cache.get(key)
            self._cache[key] = obj
            if old is None:
                self._notify("ADDED", obj, None)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._notify("MODIFIED", obj, old)
        self.revision = revision
        self.synced.set()

    def apply(self, event: WatchEvent) -> None:
        self.revision = event.revision
        key = event.key
        old = self._cache.get(key)
        if event.type == "DELETED" or not self._wanted(event.object):
            if old is not None:
                del self._cache[key]
                self._notify("DELETED", event.object, old)
            return
        self._cache[key] = event.object
        self._notify("ADDED" if old is None else "MODIFIED", event.object, old)

    async def run(self, runtime: Runtime) -> None:
        conn = redis_conn.blocking(self._url)
        backoff = 0.1
        listed = False
        try:
            while not runtime.stop.is_set():
                try:
                    if not listed:
                        await self.relist()
                        listed = True
                    events = await self.store.read_events(
                        self.plural, self.revision, conn=conn, block_ms=self.block_ms, node=self.node
                    )
                    for event in events:
                        self.apply(event)
                    backoff = 0.1
                except Gone:
                    self._log.info("watch compacted; relisting", revision=self.revision)
                    listed = False
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                    self._log.warning("redis unavailable; retrying", error=str(exc), backoff=backoff)
                    if await runtime.sleep(backoff):
                        break
                    backoff = min(backoff * 2, 5.0)
        finally:
            await conn.aclose()

    async def wait_synced(self) -> None:
        await self.synced.wait()
