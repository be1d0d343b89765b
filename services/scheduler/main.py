"""``redkube scheduler``: binds pending pods to nodes.

Any number of replicas may run, all active (no leader): binding is optimistic and the
API server refuses a binding that would overcommit a node, so replicas only cost each
other a retry. The process watches pods and nodes through informers, decides in one
loop and writes bindings, conditions and events through the request bus.
"""

from __future__ import annotations

import os
import socket

from services.scheduler.membership import Peers
from services.scheduler.queueing import SchedulingQueue
from services.scheduler.scheduling import Scheduler
from shared import logging, redis_conn
from shared.bus import BusClient
from shared.config import Settings
from shared.events import EventRecorder
from shared.informer import Informer
from shared.keys import Keys
from shared.process import Runtime, run_tasks
from shared.store import Store


class SchedulerSettings(Settings):
    identity: str = ""
    scheduler_name: str = "default-scheduler"
    bind_concurrency: int = 128
    event_workers: int = 4
    percentage_of_nodes_to_score: int = 0  # 0: adaptive, as kube-scheduler
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 10.0
    unschedulable_flush_seconds: float = 60.0
    conflict_retry_seconds: float = 0.05
    assume_ttl_seconds: float = 30.0
    api_timeout_seconds: float = 10.0
    # Replicas split pending pods by rendezvous hashing over live peers (0 = every replica tries every pod).
    handoff_seconds: float = 2.0
    peer_renew_seconds: float = 2.0
    peer_lease_seconds: float = 10.0


async def main(settings: SchedulerSettings, runtime: Runtime) -> None:
    identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
    log = logging.configure("scheduler", level=settings.log_level, identity=identity)
    keys = Keys(settings.prefix)
    redis = redis_conn.pool(settings.redis_url)
    store = Store(redis, keys)
    client = BusClient(
        redis,
        keys,
        redis_url=settings.redis_url,
        token=settings.token,
        client_id=f"scheduler:{identity}",
        timeout=settings.api_timeout_seconds,
    )
    peers = None
    if settings.handoff_seconds > 0:
        peers = Peers(
            store=store,
            client=client,
            identity=identity,
            scheduler_name=settings.scheduler_name,
            renew_seconds=settings.peer_renew_seconds,
            lease_seconds=settings.peer_lease_seconds,
        )
    pods = Informer(store, "pods", redis_url=settings.redis_url)
    nodes = Informer(store, "nodes", redis_url=settings.redis_url)
    scheduler = Scheduler(
        pods=pods,
        nodes=nodes,
        client=client,
        recorder=EventRecorder(client, component="default-scheduler", host=identity),
        metrics=runtime.metrics,
        scheduler_name=settings.scheduler_name,
        bind_concurrency=settings.bind_concurrency,
        side_workers=settings.event_workers,
        percentage_of_nodes_to_score=settings.percentage_of_nodes_to_score,
        queue=SchedulingQueue(
            initial_backoff=settings.initial_backoff_seconds,
            max_backoff=settings.max_backoff_seconds,
            unschedulable_flush=settings.unschedulable_flush_seconds,
        ),
        assume_ttl=settings.assume_ttl_seconds,
        conflict_retry=settings.conflict_retry_seconds,
        peers=peers,
        handoff_delay=settings.handoff_seconds,
    )

    async def ready() -> bool:
        return pods.synced.is_set() and nodes.synced.is_set()

    runtime.ready_checks.append(ready)
    log.info("starting", scheduler_name=settings.scheduler_name)
    tasks = {
        "informer-pods": pods.run,
        "informer-nodes": nodes.run,
        "scheduling": scheduler.run,
        "assumptions": scheduler.expire_assumptions,
    }
    if peers is not None:
        tasks["peers"] = peers.run
        runtime.metrics.gauge("scheduler_peers", lambda: float(len(peers.alive)), help="live scheduler replicas")
    try:
        await run_tasks(
            tasks,
            runtime,
            health_host=settings.metrics_host,
            health_port=settings.metrics_port,
        )
    finally:
        await client.close()
        await redis.aclose()
        log.info("stopped")
