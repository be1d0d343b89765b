"""``redkube controller-manager``: the controllers, run by whichever replica leads.

Every replica keeps its informers warm; only the leader (a Redis lease) runs the
controllers, and it stops them the moment its lease is lost.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket

from services.controller_manager.context import Context, Controller
from shared import logging, redis_conn
from shared.bus import BusClient
from shared.config import Settings
from shared.events import EventRecorder
from shared.keys import Keys
from shared.leader import LeaderElector
from shared.process import Runtime, Task, run_tasks
from shared.store import Store
from shared.workqueue import run_controller

#: Controller modules, each with ``setup(ctx) -> Controller``; missing ones are skipped.
CONTROLLER_MODULES = (
    "replicaset",
    "deployment",
    "job",
    "daemonset",
    "statefulset",
    "cronjob",
    "endpoints",
    "node_lifecycle",
    "namespace",
    "garbage_collector",
)


class ControllerManagerSettings(Settings):
    identity: str = ""
    lease_ms: int = 15_000
    renew_ms: int = 5_000
    workers: int = 4
    node_grace_seconds: int = 40
    eviction_seconds: int = 300
    cronjob_clock_scale: float = 1.0  # >1 runs the CronJob controller's clock faster (tests)
    controllers: str = "*"  # as kube-controller-manager's flag: "*", names to add, "-name" to leave one out


def load_controllers(ctx: Context) -> list[Controller]:
    wanted = {c.strip() for c in str(ctx.settings.controllers).split(",") if c.strip()}
    controllers = []
    for name in CONTROLLER_MODULES:
        if f"-{name}" in wanted or ("*" not in wanted and name not in wanted):
            continue
        try:
            module = importlib.import_module(f"services.controller_manager.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.controller_manager.{name}":
                raise
            continue
        controllers.append(module.setup(ctx))
    return controllers


async def main(settings: ControllerManagerSettings, runtime: Runtime) -> None:
    identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
    log = logging.configure("controller-manager", level=settings.log_level, identity=identity)
    keys = Keys(settings.prefix)
    redis = redis_conn.pool(settings.redis_url)
    store = Store(redis, keys)
    client = BusClient(
        redis, keys, redis_url=settings.redis_url, token=settings.token, client_id=f"controller-manager:{identity}"
    )
    ctx = Context(
        store=store,
        client=client,
        recorder=EventRecorder(client, component="controller-manager"),
        runtime=runtime,
        redis_url=settings.redis_url,
        settings=settings,
    )
    controllers = load_controllers(ctx)
    elector = LeaderElector(
        redis,
        keys.leader("controller-manager"),
        identity,
        lease_ms=settings.lease_ms,
        renew_ms=settings.renew_ms,
        retry_ms=min(settings.renew_ms, 1000),
    )
    runtime.metrics.gauge("leader", lambda: 1.0 if elector.leading else 0.0, help="1 while this replica leads")

    async def lead(lost: asyncio.Event) -> None:
        await asyncio.gather(*(i.synced.wait() for i in ctx.informers.values()))
        log.info("running controllers", controllers=[c.name for c in controllers])
        # Everything known so far is worth one look from each controller.
        for controller in controllers:
            for key in _initial_keys(ctx, controller):
                controller.queue.add(key)
        await asyncio.gather(
            *(
                run_controller(
                    c.name, c.queue, c.reconcile, runtime, workers=c.workers, metrics=runtime.metrics, stop=lost
                )
                for c in controllers
            )
        )

    tasks: dict[str, Task] = {f"informer-{plural}": informer.run for plural, informer in ctx.informers.items()}
    tasks["leader-election"] = lambda rt: elector.run(rt, lead)

    async def ready() -> bool:
        return all(i.synced.is_set() for i in ctx.informers.values())

    runtime.ready_checks.append(ready)
    try:
        await run_tasks(tasks, runtime, health_host=settings.metrics_host, health_port=settings.metrics_port)
    finally:
        await client.close()
        await redis.aclose()
        log.info("stopped")


def _initial_keys(ctx: Context, controller: Controller) -> list[str]:
    informer = ctx.informers.get(controller.primary)
    return informer.keys() if informer else []
