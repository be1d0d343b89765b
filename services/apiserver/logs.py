"""Container logs for ``GET pods/NAME/log``: read from the per-container log streams
the kubelet writes (one entry per line; an entry with ``eof`` marks the end of a run).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from services.apiserver.errors import ApiError
from services.apiserver.requests import ApiRequest
from shared import redis_conn, redis_replies
from shared.keys import Keys


class LogReader:
    def __init__(self, redis: aioredis.Redis, keys: Keys, redis_url: str) -> None:
        self._redis = redis
        self._keys = keys
        self._url = redis_url

    @staticmethod
    def pick_container(pod: dict[str, Any], wanted: str | None) -> str:
        spec = pod.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or []]
        init = [c["name"] for c in spec.get("initContainers") or []]
        pod_name = pod["metadata"]["name"]
        if wanted:
            if wanted not in names + init:
                raise ApiError(400, f"container {wanted} is not valid for pod {pod_name}")
            return wanted
        if len(names) == 1:
            return names[0]
        raise ApiError(
            400,
            f"a container name must be specified for pod {pod_name}, choose one of: "
            f"[{' '.join(names)}]" + (f" or one of the init containers: [{' '.join(init)}]" if init else ""),
        )

    async def read(
        self, req: ApiRequest, pod: dict[str, Any], container: str, *, stop: asyncio.Event
    ) -> AsyncIterator[bytes]:
        key = self._keys.logs(
            pod["metadata"].get("namespace", ""), pod["metadata"]["name"], container, previous=req.flag("previous")
        )
        if req.flag("previous") and not await self._redis.exists(key):
            raise ApiError(
                400, f'previous terminated container "{container}" in pod "{pod["metadata"]["name"]}" not found'
            )
        tail = req.params.get("tailLines")
        if tail and tail.lstrip("-").isdigit() and int(tail) >= 0:
            entries = list(
                reversed(redis_replies.stream_entries(await self._redis.xrevrange(key, count=int(tail) + 1)))
            )
            entries = [e for e in entries if b"line" in e[1]][-int(tail) :] if int(tail) else []
        else:
            entries = redis_replies.stream_entries(await self._redis.xrange(key))
        last = "0-0"
        ended = False
        for entry_id, fields in entries:
            last = entry_id.decode()
            if b"line" in fields:
                yield fields[b"line"] + b"\n"
            ended = b"eof" in fields
        if not req.flag("follow") or req.flag("previous"):
            return
        if entries and ended:
            return
        conn = redis_conn.blocking(self._url)
        try:
            while not stop.is_set():
                reply = redis_replies.stream_reads(await conn.xread({key: last}, block=1000, count=500))
                for _stream, items in reply or []:
                    for entry_id, fields in items:
                        last = entry_id.decode()
                        if b"line" in fields:
                            yield fields[b"line"] + b"\n"
                        if b"eof" in fields:
                            return
                if not reply and not await self._redis.exists(self._keys.kind("pods").objects):
                    return
        finally:
            await conn.aclose()
