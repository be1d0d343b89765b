"""The Redis side of an exec session, shared by the API server and the kubelet.

The API server appends a request to ``Keys.exec_requests(node)``; the kubelet answers on
``exec_output`` and reads ``exec_input``. Entries carry ``t`` (the kind) and ``d`` (bytes):

- input: ``stdin`` (d), ``close`` (stdin EOF), ``resize`` (d: JSON), ``kill``;
- output: ``started``, ``stdout`` (d), ``stderr`` (d), ``exit`` (d: the exit code), ``error`` (d: a message).

Both streams are capped and expire; the reader trims what it has read (XTRIM MINID), so the
writer sees the backlog with XLEN and waits for room: flow control without losing data. The
``exec_alive`` key is refreshed with a TTL while the client is connected; when it lapses
the kubelet kills the command.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

STREAM_CAP = 4096  # entries; a writer waits long before this (see BACKLOG)
BACKLOG = 256  # unread entries a writer lets pile up before waiting
CHUNK = 32 * 1024  # bytes per stdout/stderr/stdin entry
STREAM_TTL = 120  # seconds a session stream outlives its last write or heartbeat
ALIVE_TTL = 10  # seconds without a heartbeat after which the kubelet kills the command
HEARTBEAT = 2.0  # seconds between heartbeats

_SESSION = re.compile(r"[0-9a-f]{32}")


def valid_session(session: str) -> bool:
    return bool(_SESSION.fullmatch(session))


def field(fields: dict[Any, Any], name: str) -> bytes:
    """A stream entry's field as bytes (b"" when absent), whatever the client sent."""
    value = fields.get(name.encode(), fields.get(name, b""))
    return value if isinstance(value, bytes) else str(value).encode()


async def append(redis: Any, key: str, fields: dict[str, Any], *, ttl: int = STREAM_TTL) -> str:
    """XADD (capped) and refresh the stream's TTL in one round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.xadd(key, fields, maxlen=STREAM_CAP, approximate=True)
    pipe.expire(key, ttl)
    entry_id, _ = await pipe.execute()
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def wait_for_room(redis: Any, key: str, *, gone: Callable[[], bool], interval: float = 0.02) -> None:
    """Wait while the reader is more than BACKLOG entries behind (it trims what it read)."""
    while not gone():
        if int(await redis.xlen(key)) <= BACKLOG:
            return
        await asyncio.sleep(interval)


async def trim_read(redis: Any, key: str, last_id: str) -> None:
    """Drop what was read, so the stream's length is the writer's backlog."""
    ms, _, seq = last_id.partition("-")
    await redis.execute_command("XTRIM", key, "MINID", f"{ms}-{int(seq or 0) + 1}")
