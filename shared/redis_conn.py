"""Redis connections: a bounded shared pool, and dedicated ones for blocking reads.

A blocking XREAD/XREADGROUP must not hold a pooled connection: blocking readers get a
connection of their own. Its socket timeout is bounded but well above any BLOCK (at most
``MAX_BLOCK_MS``): across a network partition that drops packets a read with no deadline
would wait for ever, whereas this one raises redis TimeoutError, and the reader
reconnects and resumes from where it was. TCP keepalive notices a peer that vanished.
"""

from __future__ import annotations

import socket
from typing import Any

import redis.asyncio as aioredis

MAX_BLOCK_MS = 5_000  # the longest BLOCK a reader on a ``blocking`` connection may ask for
BLOCKING_SOCKET_TIMEOUT_S = 10.0  # > MAX_BLOCK_MS: a silent connection is given up after this


def _keepalive(url: str) -> dict[str, Any]:
    """TCP keepalive: probe an idle connection after 15 s, every 5 s, 3 times (not for unix sockets)."""
    if url.startswith("unix:"):
        return {}
    wanted = {"TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
    options = {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}
    return {"socket_keepalive": True, "socket_keepalive_options": options}


def pool(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    connection_pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        **_keepalive(url),
    )
    return aioredis.Redis(connection_pool=connection_pool)


def blocking(url: str, *, socket_timeout: float = BLOCKING_SOCKET_TIMEOUT_S) -> aioredis.Redis:
    """A single-connection client for blocking reads (BLOCK at most ``MAX_BLOCK_MS``)."""
    return aioredis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5,
                                   single_connection_client=True, **_keepalive(url))
