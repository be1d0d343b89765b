"""``redkube kubelet``: the node agent. Registers the Node, heartbeats its Lease, runs its pods.

It reads only its own pods (the node's pod stream) and the Services (for the service
environment variables), writes only through the API (bus), and keeps what it runs on
disk under the node's state dir, so that a restart (even after kill -9) adopts the
running containers instead of starting them again. SIGTERM stops the kubelet, not
the containers: they keep running, as with a real kubelet restart.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field

from services.kubelet import node as nodes
from services.kubelet.containers import ProcessRuntime
from services.kubelet.exec import ExecAgent
from services.kubelet.ipam import AddressPool
from services.kubelet.podworkers import PodWorker
from services.kubelet.simulated import Simulator
from shared import logging, redis_conn
from shared.bus import BusClient
from shared.config import Settings
from shared.events import EventRecorder
from shared.informer import Informer, key_of
from shared.keys import Keys
from shared.metrics import Metrics
from shared.process import Runtime, Task, run_tasks
from shared.store import Store


class KubeletSettings(Settings):
    node: str = Field(default_factory=socket.gethostname, description="the Node's name")
    runtime: str = Field("process", description="process (real OS processes) or simulated")
    node_ip: str = Field("127.0.0.1", description="the node's InternalIP (pods' hostIP)")
    pod_cidr: str = Field("127.11.1.0/24", description="range the pods' addresses come from")
    state_dir: str = Field("", description="default: $REDKUBE_HOME/nodes/NODE")
    cpu: str = Field("", description="cpu capacity (default: this machine's)")
    memory: str = Field("", description="memory capacity (default: this machine's)")
    max_pods: int = 110
    lease_seconds: float = Field(10.0, description="how often the node Lease is renewed")
    lease_duration_seconds: int = 40
    node_status_seconds: float = Field(10.0, description="how often the Node's conditions are refreshed")
    backoff_seconds: float = Field(10.0, description="first CrashLoopBackOff delay (it doubles)")
    backoff_max_seconds: float = Field(300.0, description="longest CrashLoopBackOff delay")
    log_cap_bytes: int = Field(10 * 1024 * 1024, description="a container's log file is rotated past this size")
    stop_pods_on_exit: bool = Field(
        False, description="stop every container on SIGTERM (for a supervisor shutting a cluster down)"
    )
    stop_grace_seconds: float = 5.0


def capacity(settings: KubeletSettings) -> dict[str, str]:
    values = nodes.machine_capacity()
    if settings.cpu:
        values["cpu"] = settings.cpu
    if settings.memory:
        values["memory"] = settings.memory
    values["pods"] = str(settings.max_pods)
    return values


class Kubelet:
    """What the pod workers share: the runtime, the address pool, the API client, caches."""

    def __init__(
        self, settings: KubeletSettings, *, redis: Any, keys: Keys, store: Store, client: BusClient,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.redis = redis
        self.keys = keys
        self.client = client
        self.recorder = EventRecorder(client, component="kubelet", host=settings.node)
        state = Path(settings.state_dir) if settings.state_dir else settings.home / "nodes" / settings.node
        state.mkdir(parents=True, exist_ok=True)
        self.state_dir = state
        self.runtime = ProcessRuntime(state, log_cap=settings.log_cap_bytes)
        self.ipam = AddressPool(settings.pod_cidr, path=state / "ipam.json")
        self.pods = Informer(store, "pods", redis_url=settings.redis_url, node=settings.node)
        self.services: Informer | None = Informer(store, "services", redis_url=settings.redis_url)
        self.base_env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        self.workers: dict[str, tuple[str, PodWorker, asyncio.Task[None]]] = {}  # key -> (uid, worker, task)
        self.dirty: set[str] = set()
        self.changed = asyncio.Event()
        self.adopted = asyncio.Event()
        self.simulator = Simulator(client, node_ip=settings.node_ip, pool=self.ipam)
        self.log = structlog.get_logger()
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, _kind: str, obj: dict[str, Any], _old: dict[str, Any] | None) -> None:
        self.dirty.add(key_of(obj))
        self.changed.set()

    async def forget_logs(self, namespace: str, pod: str, containers: list[str]) -> None:
        """A deleted pod's log streams go with it."""
        keys = [self.keys.logs(namespace, pod, c, previous=p) for c in containers for p in (False, True)]
        try:
            if keys:
                await self.redis.delete(*keys)  # one hash slot: the pod's tag
        except Exception as exc:
            self.log.warning("could not delete log streams", error=str(exc))

    # --- pods ----------------------------------------------------------------------

    async def run_pods(self, runtime: Runtime) -> None:
        while not self.pods.synced.is_set():
            if await runtime.sleep(0.1):
                return
        if self.settings.runtime == "process":
            await asyncio.to_thread(self.runtime.scan)
            self._drop_orphans()
        self.adopted.set()
        self.log.info("pods synced", pods=len(self.pods))
        try:
            while not runtime.stop.is_set():
                dirty, self.dirty = self.dirty, set()
                for key in dirty:
                    try:
                        await self._sync_key(key)
                    except Exception:
                        self.log.exception("pod sync failed", key=key)
                self.changed.clear()
                if self.dirty:
                    continue
                stop = asyncio.ensure_future(runtime.stop.wait())
                change = asyncio.ensure_future(self.changed.wait())
                await asyncio.wait({stop, change}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                change.cancel()
        finally:
            # Stopping the kubelet leaves the containers running: the next kubelet adopts them.
            for _uid, _worker, task in list(self.workers.values()):
                task.cancel()
            await asyncio.gather(*(t for _u, _w, t in self.workers.values()), return_exceptions=True)
            if self.settings.stop_pods_on_exit and self.settings.runtime == "process":
                self.log.info("stopping every container before exiting")
                await self.runtime.stop_everything(grace=self.settings.stop_grace_seconds)

    def _drop_orphans(self) -> None:
        """Runs of pods that are gone or no longer ours (deleted while we were down) are stopped."""
        current = {str((p.get("metadata") or {}).get("uid")) for p in self.pods.list()}
        for uid, meta in self.runtime.known_pods().items():
            if uid not in current:
                self.log.info("stopping the containers of a pod no longer bound here", uid=uid, pod=meta)
                self.runtime.discard(uid)
                self.ipam.release(uid)
        for uid in list(self.ipam.assigned):
            if uid not in current:
                self.ipam.release(uid)

    async def _sync_key(self, key: str) -> None:
        pod = self.pods.get(key)
        if self.settings.runtime == "simulated":
            await self.simulator.sync(key, pod)
            return
        entry = self.workers.get(key)
        uid = str((pod or {}).get("metadata", {}).get("uid") or "") if pod else None
        if entry is not None:
            old_uid, worker, _task = entry
            if pod is not None and old_uid == uid:
                worker.pod = pod
                worker.wake.set()
                return
            worker.removed = True
            worker.wake.set()
            if pod is None:
                return
        if pod is None:
            return
        worker = PodWorker(self, pod)
        previous = entry[2] if entry is not None else None
        task = asyncio.create_task(self._run_worker(key, worker, previous), name=f"pod-{key}")
        self.workers[key] = (worker.uid, worker, task)

    async def _run_worker(self, key: str, worker: PodWorker, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # the old pod of this name is stopped first
        backoff = 0.5
        while True:
            try:
                await worker.run()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("pod worker failed; restarting it", key=key)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                worker = PodWorker(self, worker.pod) if not worker.removed else worker
        entry = self.workers.get(key)
        if entry is not None and entry[1] is worker:
            del self.workers[key]
            if self.pods.get(key) is not None and not worker.removed:
                self.dirty.add(key)
                self.changed.set()

    # --- node and lease ------------------------------------------------------------

    def node_config(self) -> nodes.NodeConfig:
        runtime_version = nodes.RUNTIME_VERSION if self.settings.runtime == "process" else "redkube-simulated://0.1"
        return nodes.NodeConfig(self.settings.node, self.settings.node_ip, self.settings.pod_cidr,
                                capacity(self.settings), runtime_version)

    async def run_node(self, runtime: Runtime) -> None:
        config = self.node_config()
        backoff = 0.5
        current: dict[str, Any] | None = None
        while not runtime.stop.is_set():
            try:
                if current is None:
                    current = await nodes.register(self.client, config)
                    self.log.info("node registered")
                else:
                    current = await nodes.heartbeat(self.client, config, current=current)
                backoff = 0.5
                wait = self.settings.node_status_seconds
            except Exception as exc:
                self.log.warning("node status update failed; retrying", error=str(exc), backoff=backoff)
                wait, backoff = backoff, min(backoff * 2, 10.0)
                # Read the Node afresh next time: while we were unheard the controller may have set
                # Ready=Unknown, and the transition back to True must be dated now, not kept from before.
                current = None
            if await runtime.sleep(wait):
                return

    async def run_lease(self, runtime: Runtime) -> None:
        acquired = nodes.micro_now()
        while not runtime.stop.is_set():
            try:
                await nodes.renew_lease(self.client, self.settings.node,
                                        duration=self.settings.lease_duration_seconds, acquired=acquired)
                wait = self.settings.lease_seconds
            except Exception as exc:
                self.log.warning("lease renewal failed; retrying", error=str(exc))
                wait = min(self.settings.lease_seconds, 1.0)
            if await runtime.sleep(wait):
                return


async def main(settings: KubeletSettings, runtime: Runtime) -> None:
    log = logging.configure("kubelet", level=settings.log_level, node=settings.node)
    if settings.runtime not in ("process", "simulated"):
        raise ValueError(f"--runtime must be process or simulated, not {settings.runtime!r}")
    keys = Keys(settings.prefix)
    redis = redis_conn.pool(settings.redis_url)
    store = Store(redis, keys)
    client = BusClient(redis, keys, redis_url=settings.redis_url, token=settings.token,
                       client_id=f"kubelet:{settings.node}:{os.getpid()}", timeout=10.0)
    kubelet = Kubelet(settings, redis=redis, keys=keys, store=store, client=client, metrics=runtime.metrics)
    runtime.metrics.gauge("kubelet_pods", lambda: float(len(kubelet.pods)), help="pods bound to this node")
    runtime.metrics.gauge("kubelet_pod_workers", lambda: float(len(kubelet.workers)), help="pods being run")

    async def ready() -> bool:
        return kubelet.adopted.is_set()

    runtime.ready_checks.append(ready)
    tasks: dict[str, Task] = {
        "informer-pods": kubelet.pods.run,
        "node": kubelet.run_node,
        "lease": kubelet.run_lease,
        "pods": kubelet.run_pods,
    }
    tasks["exec"] = ExecAgent(kubelet, redis_url=settings.redis_url).run  # kubectl exec (exec.py)
    if settings.runtime == "process" and kubelet.services is not None:
        tasks["informer-services"] = kubelet.services.run
    log.info("kubelet starting", runtime=settings.runtime, state_dir=str(kubelet.state_dir),
             node_ip=settings.node_ip, pod_cidr=settings.pod_cidr)
    try:
        await run_tasks(tasks, runtime, health_host=settings.metrics_host, health_port=settings.metrics_port)
    finally:
        await client.close()
        await redis.aclose()
        log.info("stopped")
