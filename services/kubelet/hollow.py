"""``redkube hollow-nodes --count N``: N simulated kubelets in one light process.

For control-plane benchmarks at hundreds of nodes (kubemark's hollow nodes, kwok):
every node is registered and heartbeats its Lease, and its pods go Running and Ready
at once, but nothing runs. All nodes share one Redis pool, one BusClient and ONE pod
informer (the whole pods watch, dispatched by ``spec.nodeName``) instead of one per
node; lease renewals go out in one concurrent batch per interval. The token must be
allowed to write every hollow Node and Lease (e.g. the admin's): one node token
covers only its own node.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from services.kubelet import node as nodes
from services.kubelet.ipam import AddressPool
from services.kubelet.simulated import Simulator
from shared import logging, redis_conn
from shared.bus import BusClient
from shared.config import Settings
from shared.informer import Informer, key_of
from shared.keys import Keys
from shared.process import Runtime, Task, run_tasks
from shared.store import Store


class HollowSettings(Settings):
    count: int = 10
    name_prefix: str = "hollow"
    cpu: str = "32"
    memory: str = "256Gi"
    max_pods: int = 110
    lease_seconds: float = 10.0
    lease_duration_seconds: int = 40
    node_status_seconds: float = 60.0
    concurrency: int = 64


class HollowNodes:
    def __init__(self, settings: HollowSettings, *, client: BusClient, store: Store) -> None:
        self.settings = settings
        self.client = client
        capacity = {"cpu": settings.cpu, "memory": settings.memory, "pods": str(settings.max_pods)}
        self.configs: dict[str, nodes.NodeConfig] = {}
        self.simulators: dict[str, Simulator] = {}
        for index in range(1, settings.count + 1):
            name = f"{settings.name_prefix}-{index}"
            # Loopback addresses only: nothing listens there, and traffic never leaves the machine.
            node_ip = f"127.{200 + ((index >> 8) & 15)}.{index & 255}.1"
            self.configs[name] = nodes.NodeConfig(name, node_ip, f"127.{220 + ((index >> 8) & 15)}.{index & 255}.0/24",
                                                  dict(capacity), "redkube-simulated://0.1",
                                                  {"type": "hollow"})
            self.simulators[name] = Simulator(client, node_ip=node_ip,
                                              pool=AddressPool(self.configs[name].pod_cidr))
        self.pods = Informer(store, "pods", redis_url=settings.redis_url)
        self.pods.add_handler(self._on_pod)
        self.dirty: dict[str, str] = {}  # pod key -> node
        self.changed = asyncio.Event()
        self.current: dict[str, dict[str, Any]] = {}
        self.registered = asyncio.Event()
        self._limit = asyncio.Semaphore(settings.concurrency)
        self.log = logging.get()

    def _on_pod(self, _kind: str, obj: dict[str, Any], _old: dict[str, Any] | None) -> None:
        node = (obj.get("spec") or {}).get("nodeName")
        if node in self.simulators:
            self.dirty[key_of(obj)] = node
            self.changed.set()

    async def _limited(self, work: Any) -> Any:
        async with self._limit:
            return await work

    async def run_nodes(self, runtime: Runtime) -> None:
        pending = dict(self.configs)
        while pending and not runtime.stop.is_set():
            results = await asyncio.gather(
                *(self._limited(nodes.register(self.client, c)) for c in pending.values()), return_exceptions=True
            )
            for name, result in zip(list(pending), results, strict=True):
                if isinstance(result, BaseException):
                    self.log.warning("registration failed; retrying", node=name, error=str(result))
                else:
                    self.current[name] = result
                    del pending[name]
            if pending and await runtime.sleep(1.0):
                return
        self.registered.set()
        self.log.info("hollow nodes registered", count=len(self.configs))
        while not await runtime.sleep(self.settings.node_status_seconds):
            results = await asyncio.gather(
                *(self._limited(nodes.heartbeat(self.client, c, current=self.current.get(n)))
                  for n, c in self.configs.items()),
                return_exceptions=True,
            )
            for name, result in zip(list(self.configs), results, strict=True):
                if isinstance(result, BaseException):
                    self.log.warning("node status update failed", node=name, error=str(result))
                    self.current.pop(name, None)  # read it afresh: the controller may have changed it meanwhile
                else:
                    self.current[name] = result

    async def run_leases(self, runtime: Runtime) -> None:
        acquired = nodes.micro_now()
        duration = self.settings.lease_duration_seconds
        while not runtime.stop.is_set():
            started = asyncio.get_running_loop().time()
            results = await asyncio.gather(
                *(self._limited(nodes.renew_lease(self.client, n, duration=duration, acquired=acquired))
                  for n in self.configs),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                self.log.warning("lease renewals failed", failed=len(failed), error=str(failed[0]))
            elapsed = asyncio.get_running_loop().time() - started
            if await runtime.sleep(max(self.settings.lease_seconds - elapsed, 0.1)):
                return

    async def run_pods(self, runtime: Runtime) -> None:
        while not runtime.stop.is_set():
            dirty, self.dirty = self.dirty, {}
            self.changed.clear()
            if dirty:
                await asyncio.gather(*(self._limited(self._sync(key, node)) for key, node in dirty.items()))
                continue
            stop = asyncio.ensure_future(runtime.stop.wait())
            change = asyncio.ensure_future(self.changed.wait())
            await asyncio.wait({stop, change}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            change.cancel()

    async def _sync(self, key: str, node: str) -> None:
        try:
            await self.simulators[node].sync(key, self.pods.get(key))
        except Exception as exc:
            self.log.warning("pod sync failed; retrying", key=key, node=node, error=str(exc))
            self.dirty[key] = node
            self.changed.set()
            await asyncio.sleep(0.5)


async def main(settings: HollowSettings, runtime: Runtime) -> None:
    log = logging.configure("hollow-nodes", level=settings.log_level, count=settings.count)
    keys = Keys(settings.prefix)
    redis = redis_conn.pool(settings.redis_url, max_connections=max(16, min(settings.concurrency, 128)))
    store = Store(redis, keys)
    client = BusClient(redis, keys, redis_url=settings.redis_url, token=settings.token,
                       client_id=f"hollow-nodes:{settings.name_prefix}:{os.getpid()}", timeout=15.0)
    hollow = HollowNodes(settings, client=client, store=store)
    runtime.metrics.gauge("hollow_nodes", lambda: float(len(hollow.configs)), help="simulated nodes")
    runtime.metrics.gauge("hollow_pods", lambda: float(len(hollow.pods)), help="pods seen (all nodes)")

    async def ready() -> bool:
        return hollow.registered.is_set() and hollow.pods.synced.is_set()

    runtime.ready_checks.append(ready)
    tasks: dict[str, Task] = {
        "informer-pods": hollow.pods.run,
        "nodes": hollow.run_nodes,
        "leases": hollow.run_leases,
        "pods": hollow.run_pods,
    }
    log.info("hollow nodes starting", prefix=settings.name_prefix)
    try:
        await run_tasks(tasks, runtime, health_host=settings.metrics_host, health_port=settings.metrics_port)
    finally:
        await client.close()
        await redis.aclose()
        log.info("stopped")
