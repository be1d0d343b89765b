"""Redis connections: a bounded shared pool, and dedicated ones for blocking reads.

A blocking XREAD/XREADGROUP must not hold a pooled connection, and redis-py raises
TimeoutError when BLOCK outlasts ``socket_timeout``: blocking readers therefore get a
connection of their own with no socket timeout.
"""

from __future__ import annotations

import redis.asyncio as aioredis


def pool(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    connection_pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=20,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=connection_pool)


def blocking(url: str) -> aioredis.Redis:
    """A single-connection client for blocking reads (BLOCK shorter than forever)."""
    return aioredis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5, single_connection_client=True)
