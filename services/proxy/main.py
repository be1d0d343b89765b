"""``redkube proxy --node NAME --node-ip IP``: one node's Service proxy.

Watches Services and Endpoints and forwards TCP: every Service port listens on
ClusterIP:port (shared with the other nodes' proxies on the machine through
SO_REUSEPORT) and, for NodePort Services, on node_ip:nodePort. Each connection goes
to a ready endpoint (round robin, or by client IP with ClientIP session affinity).
See ``listening`` for the sync loop, ``relaying`` for the data path and
``balancing`` for endpoint choice.
"""

from __future__ import annotations

import os
import socket

from services.proxy.listening import Proxier
from services.proxy.relaying import RelayConfig
from shared import logging, redis_conn
from shared.bus import BusClient
from shared.config import Settings
from shared.events import EventRecorder
from shared.informer import Informer
from shared.keys import Keys
from shared.process import Runtime, run_tasks
from shared.store import Store


class ProxySettings(Settings):
    node: str = ""
    node_ip: str = "127.0.0.1"  # NodePorts listen here
    connect_timeout: float = 1.0  # seconds before an endpoint that does not answer is skipped
    buffer_size: int = 256 * 1024
    write_high_water: int = 1024 * 1024  # per-connection send buffer before reading from the peer pauses
    backlog: int = 1024
    listen_retry_seconds: float = 1.0  # first retry of a failed listen; doubles up to the max
    listen_retry_max_seconds: float = 30.0
    metrics_interval: float = 1.0


async def main(settings: ProxySettings, runtime: Runtime) -> None:
    node = settings.node or socket.gethostname()
    log = logging.configure("proxy", level=settings.log_level, node=node)
    keys = Keys(settings.prefix)
    redis = redis_conn.pool(settings.redis_url)
    store = Store(redis, keys)
    client = BusClient(redis, keys, redis_url=settings.redis_url, token=settings.token,
                       client_id=f"proxy:{node}:{os.getpid()}")
    services = Informer(store, "services", redis_url=settings.redis_url)
    endpoints = Informer(store, "endpoints", redis_url=settings.redis_url)
    proxier = Proxier(
        services=services,
        endpoints=endpoints,
        recorder=EventRecorder(client, component="kube-proxy", host=node),
        node=node,
        node_ip=settings.node_ip,
        config=RelayConfig(connect_timeout=settings.connect_timeout, buffer_size=settings.buffer_size,
                           write_high_water=settings.write_high_water),
        metrics=runtime.metrics,
        backlog=settings.backlog,
        retry_seconds=settings.listen_retry_seconds,
        retry_max_seconds=settings.listen_retry_max_seconds,
    )

    async def ready() -> bool:
        return services.synced.is_set() and endpoints.synced.is_set()

    runtime.ready_checks.append(ready)
    log.info("starting", node_ip=settings.node_ip)
    try:
        await run_tasks(
            {
                "informer-services": services.run,
                "informer-endpoints": endpoints.run,
                "proxy": proxier.run,
                "metrics": lambda rt: proxier.publish(rt, interval=settings.metrics_interval),
            },
            runtime,
            health_host=settings.metrics_host,
            health_port=settings.metrics_port,
        )
    finally:
        proxier.close()
        await client.close()
        await redis.aclose()
        log.info("stopped")
