"""Typed views of redis-py replies, in the one shape our clients receive them.

redis-py types each reply for every client configuration at once: ``bytes | str`` (for
either ``decode_responses``), the RESP2 and RESP3 shapes of stream reads in one union,
``None`` for XRANGE. Every client here comes from ``shared.redis_conn``: raw bytes over
RESP2 with redis-py's legacy reply shapes. These helpers only state that shape to the
type checker (``cast``); they do nothing at run time.
"""

from __future__ import annotations

from typing import cast

StreamEntry = tuple[bytes, dict[bytes, bytes]]  # (entry id, fields)
StreamReads = list[tuple[bytes, list[StreamEntry]]]  # XREAD / XREADGROUP: (stream, entries) per stream


def stream_reads(reply: object) -> StreamReads:
    """An XREAD / XREADGROUP reply (an empty list when nothing arrived in time)."""
    return cast(StreamReads, reply)


def stream_entries(reply: object) -> list[StreamEntry]:
    """An XRANGE / XREVRANGE reply (a list, empty for a missing stream)."""
    return cast(list[StreamEntry], reply)


def bulk(reply: object) -> bytes | None:
    """A bulk-string reply such as GET's (None for a missing key)."""
    return cast("bytes | None", reply)
