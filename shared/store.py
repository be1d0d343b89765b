"""The store: Redis hashes with compare-and-swap in the role of etcd.

Each kind keeps its objects in a hash, their resourceVersions in a second hash, a
revision counter and a watch stream whose entry IDs are ``<revision>-0``; one Lua
script (``lua/mutate.lua``) makes every mutation a single atomic step. Objects are
stored without ``metadata.resourceVersion`` (it is not known until the script bumps
the revision) and get it back on every read.

Only the API server writes through this module; every component may read and watch.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from importlib import resources as pkg_resources
from typing import Any

import redis.asyncio as aioredis

from shared import codec, redis_replies
from shared.keys import Keys, KindKeys

WATCH_CAP = 20_000
NODE_STREAM_CAP = 5_000
TRIM_BATCH = 200
REQUEST_TTL = 3600


class StoreError(Exception):
    """A mutation the store refused; ``reason`` names why in Kubernetes terms."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Gone(Exception):
    """The requested resourceVersion has been compacted away: relist."""


@dataclass(frozen=True)
class WatchEvent:
    type: str
    key: str
    revision: int
    object: dict[str, Any]


@dataclass(frozen=True)
class Mutation:
    """The outcome of a write: the object as stored and whether it was a retry."""

    object: dict[str, Any]
    revision: int
    duplicate: bool = False


def _load_script() -> str:
    return (pkg_resources.files("shared") / "lua" / "mutate.lua").read_text()


def with_version(obj: dict[str, Any], revision: int | str) -> dict[str, Any]:
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def _strip_version(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return codec.pack(obj)


def object_key(namespace: str | None, name: str) -> str:
    return f"{namespace or ''}/{name}"


class Store:
    """Reads, watches and atomic writes of API objects in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        watch_cap: int = WATCH_CAP,
        node_stream_cap: int = NODE_STREAM_CAP,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._watch_cap = watch_cap
        self._node_stream_cap = node_stream_cap
        self._mutate = redis.register_script(_load_script())

    def kind(self, plural: str) -> KindKeys:
        return self._keys.kind(plural)

    # --- reads -------------------------------------------------------------------

    async def get(self, plural: str, key: str) -> dict[str, Any] | None:
        k = self.kind(plural)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(k.objects, key)
            pipe.hget(k.versions, key)
            raw, rv = await pipe.execute()
        if raw is None or rv is None:
            return None
        return with_version(codec.unpack(raw), int(rv))

    async def list(self, plural: str, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """Every object of a kind (in one namespace if given) and the revision it reflects."""
        k = self.kind(plural)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(k.revision)
            pipe.hgetall(k.objects)
            pipe.hgetall(k.versions)
            rev, objects, versions = await pipe.execute()
        prefix = f"{namespace}/".encode() if namespace else None
        items = []
        for field in sorted(objects):
            if prefix is not None and not field.startswith(prefix):
                continue
            rv = versions.get(field)
            if rv is None:
                continue
            items.append(with_version(codec.unpack(objects[field]), int(rv)))
        return items, int(rev or 0)

    async def revision(self, plural: str) -> int:
        return int(await self._redis.get(self.kind(plural).revision) or 0)

    async def check_watchable(self, plural: str, revision: int, *, node: str | None = None) -> None:
        """Raise Gone when events after ``revision`` have been trimmed."""
        k = self.kind(plural)
        floor = await self._redis.get(k.node_floor(node) if node else k.watch_floor)
        if floor is not None and revision < int(floor):
            raise Gone(f"too old resource version: {revision} ({int(floor) + 1})")

    async def read_events(
        self,
        plural: str,
        after: int,
        *,
        conn: aioredis.Redis,
        block_ms: int = 1000,
        count: int = 500,
        node: str | None = None,
    ) -> builtins.list[WatchEvent]:  # ``list`` in this class is the method
        """Events after revision ``after`` (blocking up to ``block_ms``); Gone if compacted.

        ``conn`` is a connection of the watcher's own: blocking reads must not hold
        the shared pool.
        """
        k = self.kind(plural)
        stream = k.node_stream(node) if node else k.watch
        reply = redis_replies.stream_reads(await conn.xread({stream: f"{after}-0"}, count=count, block=block_ms))
        events: list[WatchEvent] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                events.append(decode_event(entry_id, fields))
        if events:
            # Checked after the read, once: trimming happens only on writes, so a stream
            # compacted past ``after`` always still has entries to return, and an idle watch
            # costs no extra round trip. A trim racing the read is caught here too.
            await self.check_watchable(plural, after, node=node)
        return events

    # --- writes ------------------------------------------------------------------

    async def create(self, plural: str, key: str, obj: dict[str, Any], **kw: Any) -> Mutation:
        return await self._write("put", plural, key, obj, expected="0", event="ADDED", **kw)

    async def update(
        self, plural: str, key: str, obj: dict[str, Any], *, expected: str | None = None, **kw: Any
    ) -> Mutation:
        return await self._write("put", plural, key, obj, expected=expected or "*", event="MODIFIED", **kw)

    async def delete(
        self, plural: str, key: str, obj: dict[str, Any], *, expected: str | None = None, **kw: Any
    ) -> Mutation:
        return await self._write("delete", plural, key, obj, expected=expected or "*", event="DELETED", **kw)

    async def _write(
        self,
        op: str,
        plural: str,
        key: str,
        obj: dict[str, Any],
        *,
        expected: str,
        event: str,
        request_id: str | None = None,
        node: str | None = None,
        node_event: str | None = None,
        account: str = "",
        check_capacity: bool = False,
    ) -> Mutation:
        k = self.kind(plural)
        cap = self._watch_cap
        status, detail = await self._mutate(
            keys=[
                k.objects,
                k.versions,
                k.revision,
                k.watch,
                k.watch_floor,
                k.request(request_id or "-"),
                k.node_stream(node or "-"),
                k.node_floor(node or "-"),
                k.counted,
                k.node_allocated,
                k.node_capacity,
            ],
            args=[
                op,
                key,
                expected,
                _strip_version(obj),
                event,
                cap if not node else min(cap, self._node_stream_cap),
                TRIM_BATCH,
                request_id or "",
                REQUEST_TTL,
                node or "",
                node_event or event,
                account,
                "1" if check_capacity else "0",
            ],
        )
        status = status.decode() if isinstance(status, bytes) else status
        detail = detail.decode() if isinstance(detail, bytes) else str(detail)
        if status == "ok":
            return Mutation(with_version(dict(obj), int(detail)), int(detail))
        if status == "dup":
            current = await self.get(plural, key)
            return Mutation(current or obj, int(detail), duplicate=True)
        raise StoreError(status, detail)

    async def set_node_capacity(self, node: str, *, cpu_milli: int, memory: int, pods: int) -> None:
        """Record a node's allocatable where the pods' binding check can see it atomically."""
        await self._redis.hset(self.kind("pods").node_capacity, node, f"{cpu_milli}|{memory}|{pods}")

    async def forget_node_capacity(self, node: str) -> None:
        await self._redis.hdel(self.kind("pods").node_capacity, node)

    async def node_usage(self, node: str) -> dict[str, int]:
        k = self.kind("pods")
        values = await self._redis.hmget(k.node_allocated, [f"{node}|cpu", f"{node}|memory", f"{node}|pods"])
        return {name: int(v or 0) for name, v in zip(("cpu", "memory", "pods"), values, strict=True)}


def decode_event(entry_id: bytes | str, fields: dict[bytes, bytes]) -> WatchEvent:
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    revision = int(entry.split("-", 1)[0])
    obj = with_version(codec.unpack(fields[b"obj"]), int(fields[b"rv"]))
    return WatchEvent(fields[b"type"].decode(), fields[b"key"].decode(), revision, obj)


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
