"""Tailing a container run's log file into its Redis log stream.

Each entry carries ``line`` and ``stream`` (what the API server serves) plus ``a``
(the attempt) and ``pos`` (``inode:offset`` in the file after this line). The stream
itself therefore remembers how far the file has been copied, in the same write as the
lines: a kubelet that restarts resumes from the last entry, without a second copy of
anything. An entry with ``eof`` marks the end of a run; when a container restarts the
current stream is RENAMEd to the ``previous`` key (same hash slot).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from shared.keys import Keys

STREAM_CAP = 10_000
READ_CHUNK = 512 * 1024
CHUNKS_PER_PUMP = 8


class LogTailer:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, *, namespace: str, pod: str, container: str, run_dir: Path,
        attempt: int,
    ) -> None:
        self._redis = redis
        self.key = keys.logs(namespace, pod, container)
        self.previous_key = keys.logs(namespace, pod, container, previous=True)
        self.path = run_dir / "log"
        self.attempt = attempt
        self.inode: int | None = None
        self.offset = 0
        self.done = False
        self._resumed = False

    async def rotate_previous(self) -> None:
        """Before a new attempt starts: the stream of the last attempt becomes ``previous``."""
        last = await self._redis.xrevrange(self.key, count=1)
        if last and (last[0][1] or {}).get(b"a", b"-1") != str(self.attempt).encode():
            try:
                await self._redis.rename(self.key, self.previous_key)
            except redis.exceptions.ResponseError:
                pass

    async def _resume(self) -> None:
        last = await self._redis.xrevrange(self.key, count=1)
        fields: dict[Any, Any] = dict(last[0][1] or {}) if last else {}
        if fields.get(b"a") == str(self.attempt).encode():
            inode, _, offset = fields.get(b"pos", b"0:0").decode().partition(":")
            self.inode, self.offset = int(inode) or None, int(offset or 0)
            self.done = b"eof" in fields
        self._resumed = True

    async def pump(self) -> int:
        """Copy what the file has gained since the last call; returns lines copied."""
        if not self._resumed:
            await self._resume()
        if self.done:
            return 0
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0
        copied = 0
        if self.inode is not None and stat.st_ino != self.inode:
            rotated = self.path.with_name("log.1")
            try:
                if os.stat(rotated).st_ino == self.inode:
                    copied += await self._copy(rotated, whole=True)
            except FileNotFoundError:
                pass
            self.inode, self.offset = stat.st_ino, 0
        if self.inode is None:
            self.inode = stat.st_ino
        if stat.st_size < self.offset:  # truncated under us
            self.offset = 0
        copied += await self._copy(self.path)
        return copied

    async def _copy(self, path: Path, *, whole: bool = False) -> int:
        copied = 0
        for _chunk in range(CHUNKS_PER_PUMP):  # bounded, so a flood cannot monopolise the loop
            try:
                with path.open("rb") as handle:
                    handle.seek(self.offset)
                    data = handle.read(READ_CHUNK)
            except FileNotFoundError:
                return copied
            end = data.rfind(b"\n")
            if end < 0:
                if whole and data:
                    data, end = data + b"\n", len(data)
                else:
                    return copied
            chunk = data[: end + 1]
            pipe = self._redis.pipeline(transaction=False)
            position = self.offset
            for raw in chunk.split(b"\n")[:-1]:
                position += len(raw) + 1
                parts = raw.split(b" ", 3)
                stream, line = (parts[1], parts[3]) if len(parts) == 4 else (b"stdout", raw)
                pipe.xadd(
                    self.key,
                    {"line": line, "stream": stream, "a": self.attempt, "pos": f"{self.inode or 0}:{position}"},
                    maxlen=STREAM_CAP,
                    approximate=True,
                )
                copied += 1
            await pipe.execute()
            self.offset = min(position, self.offset + len(data))
            if len(data) < READ_CHUNK:
                return copied
        return copied

    async def finish(self) -> None:
        """The run has ended: copy the rest, then mark the end of the stream."""
        await self.pump()
        if self.done:
            return
        await self._redis.xadd(
            self.key, {"eof": "1", "a": self.attempt, "pos": f"{self.inode or 0}:{self.offset}"},
            maxlen=STREAM_CAP, approximate=True,
        )
        self.done = True
