"""The scheduling loop: take a pending pod, filter and score nodes, assume, bind.

Decisions are made one at a time by a single loop (so each sees the previous ones as
assumptions in the cache), while bindings run concurrently, bounded by a semaphore.
Several schedulers may run at once: each binds optimistically and the API server
refuses a binding that would overcommit a node (409, retried soon: another scheduler
won the race) or that targets a pod already bound (forgotten). Ties between equally
good nodes are broken at random so that concurrent schedulers collide less, and
replicas split the pending pods between them (``membership.Peers``) so that they rarely
try the same pod at all.

Unschedulable pods get ``PodScheduled=False``/``Unschedulable`` with Kubernetes'
"0/N nodes are available: …" message and a ``FailedScheduling`` event, and are retried
when nodes change or pods go away, with back-off. Conditions and events are written
by a small pool of workers beside the loop, best effort, so they never slow binding:
conditions and FailedScheduling events go first, while ``Scheduled`` events wait until
no pod is waiting (they share the API server with the bindings). At most ``side_queue``
of them wait; beyond that, and at shutdown, they are dropped and counted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
import structlog

from services.scheduler.cache import NodeInfo, SchedulerCache
from services.scheduler.membership import Peers
from services.scheduler.queueing import SchedulingQueue
from services.scheduler.resources import Requests, controller_uid, is_terminal, pod_requests
from shared import node_filters as filters
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer, key_of
from shared.metrics import Metrics
from shared.process import Runtime

Obj = dict[str, Any]
MAX_SCORE = 100
SPREAD_WEIGHT = 2
AFFINITY_WEIGHT = 2
TAINT_WEIGHT = 3
BUSY_BINDS = 4
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, TimeoutError)


class BadPod(Exception):
    """The pod cannot be considered at all (e.g. a quantity that does not parse)."""


@dataclass(slots=True)
class Decision:
    node: str | None
    message: str = ""
    requests: Requests | None = None


@dataclass(slots=True)
class _Static:
    """The static filter outcome for one pod signature at one node generation."""

    generation: int
    feasible: list[NodeInfo]
    reasons: Counter[str]
    preferences: dict[str, tuple[int, int]] | None = None  # node -> filters.preference(), when any is set


class Scheduler:
    def __init__(
        self,
        *,
        pods: Informer,
        nodes: Informer,
        client: BusClient,
        recorder: EventRecorder,
        metrics: Metrics,
        scheduler_name: str = "default-scheduler",
        bind_concurrency: int = 128,
        side_workers: int = 4,
        side_queue: int = 10_000,
        percentage_of_nodes_to_score: int = 0,
        queue: SchedulingQueue | None = None,
        assume_ttl: float = 30.0,
        conflict_retry: float = 0.05,
        peers: Peers | None = None,
        handoff_delay: float = 2.0,
    ) -> None:
        self.pods = pods
        self.nodes = nodes
        self.client = client
        self.recorder = recorder
        self.metrics = metrics
        self.scheduler_name = scheduler_name
        self.cache = SchedulerCache(assume_ttl=assume_ttl)
        self.queue = queue or SchedulingQueue()
        self.percentage = percentage_of_nodes_to_score
        self.conflict_retry = conflict_retry
        self.peers = peers
        self.handoff_delay = handoff_delay
        self._handed: set[str] = set()  # pods left once to the replica they belong to
        self._binding: set[str] = set()
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._bind_tasks: set[asyncio.Task[None]] = set()
        # Conditions and FailedScheduling events go first; Scheduled events wait until binding is quiet.
        self._urgent: deque[Callable[[], Awaitable[None]]] = deque()
        self._deferred: deque[Callable[[], Awaitable[None]]] = deque()
        self._side_cap = side_queue
        self._side_wakeup = asyncio.Event()
        self._side_workers = side_workers
        self._static: dict[tuple[Any, ...], _Static] = {}
        self._next_start = 0
        self._log = structlog.get_logger()
        pods.add_handler(self.on_pod)
        nodes.add_handler(self.on_node)
        metrics.gauge("scheduler_pending_pods", lambda: float(len(self.queue)), help="pods waiting to be scheduled")
        metrics.gauge("scheduler_binds_in_flight", lambda: float(len(self._binding)), help="bindings being written")
        metrics.gauge("scheduler_nodes", lambda: float(len(self.cache.node_names)), help="nodes known")

    # --- informer handlers (synchronous, quick) ---------------------------------------

    def responsible(self, pod: Obj) -> bool:
        """A pending pod this scheduler should place."""
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or (pod.get("metadata") or {}).get("deletionTimestamp") or is_terminal(pod):
            return False
        return (spec.get("schedulerName") or "default-scheduler") == self.scheduler_name

    def _drop(self, key: str) -> None:
        """The pod needs nothing more from this scheduler (bound, gone or not ours)."""
        self.queue.delete(key)
        self._handed.discard(key)

    def on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        key = key_of(pod)
        if kind == "DELETED":
            self._drop(key)
            if self.cache.remove_pod(key):
                self._cluster_changed("pod deleted")
            return
        if self.cache.update_pod(key, pod):
            self._cluster_changed("pod finished or moved")
        if not self.responsible(pod):
            self._drop(key)
            return
        if key in self._binding:
            return
        if self.queue.is_parked(key) and old is not None and not _spec_changed(old, pod):
            return  # e.g. our own status update: nothing that could make it fit
        self.queue.add(key)

    def on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        if kind == "DELETED":
            self.cache.remove_node(name)
            return
        if self.cache.set_node(node):
            self._cluster_changed("node added or changed")

    def _cluster_changed(self, why: str) -> None:
        moved = self.queue.move_all()
        if moved:
            self._log.debug("retrying unschedulable pods", reason=why, pods=moved)

    # --- deciding ----------------------------------------------------------------------

    def _static_for(self, spec: Obj) -> _Static:
        sig = filters.signature(spec)
        cached = self._static.get(sig)
        if cached is not None and cached.generation == self.cache.generation:
            return cached
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        for name in self.cache.node_names:
            info = self.cache.nodes[name]
            if info.facts is None:
                continue
            reason = filters.static_reason(spec, info.facts)
            if reason is None:
                feasible.append(info)
            else:
                reasons[reason] += 1
        preferences = None
        preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution"
        )
        if preferred or any(info.facts and info.facts.soft_taints for info in feasible):
            preferences = {i.name: filters.preference(spec, i.facts) for i in feasible if i.facts is not None}
        if len(self._static) > 4096:
            self._static.clear()
        made = self._static[sig] = _Static(self.cache.generation, feasible, reasons, preferences)
        return made

    def _to_find(self, feasible: int) -> int:
        """How many fitting nodes to score (kube-scheduler's percentageOfNodesToScore)."""
        total = len(self.cache.node_names)
        if total <= 100:
            return feasible
        percentage = self.percentage or max(5, 50 - total // 125)
        return max(100, total * percentage // 100)

    def decide(self, pod: Obj) -> Decision:
        spec = pod.get("spec") or {}
        try:
            requests = pod_requests(spec)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadPod(f"cannot read the pod's resource requests: {exc}") from exc
        static = self._static_for(spec)
        candidates = static.feasible
        count = len(candidates)
        want = self._to_find(count)
        owner = controller_uid(pod)
        cpu, mem = requests.cpu, requests.memory
        found: list[NodeInfo] = []
        start = self._next_start % count if count else 0
        for offset in range(count):
            info = candidates[(start + offset) % count]
            if (
                info.used_cpu + cpu <= info.cpu
                and info.used_memory + mem <= info.memory
                and info.used_pods + 1 <= info.pods
            ):
                found.append(info)
                if len(found) >= want:
                    self._next_start = start + offset + 1
                    break
        else:
            self._next_start = start + count
        if found:
            return Decision(self._best(found, requests, owner, static.preferences), requests=requests)
        reasons = Counter(static.reasons)
        for info in candidates:
            for reason in _insufficient(info, requests):
                reasons[reason] += 1
        unresolvable = sum(static.reasons.values())
        message = filters.unavailable_message(len(self.cache.node_names), reasons, unresolvable=unresolvable)
        return Decision(None, message, requests)

    def _best(
        self,
        found: list[NodeInfo],
        requests: Requests,
        owner: str,
        preferences: dict[str, tuple[int, int]] | None = None,
    ) -> str:
        """Least allocated (cpu and memory) plus spreading the owner's pods, plus preferred node
        affinity and PreferNoSchedule taints when set (Kubernetes' weights: 1, 2, 2, 3, each
        plugin scoring 0-100); ties at random.

        Written as one flat loop: it runs for up to hundreds of nodes per pod.
        """
        pcpu, pmem = requests.score_cpu, requests.score_memory
        most = max((i.owners.get(owner, 0) for i in found), default=0) if owner else 0
        soft: dict[str, int] = {}
        if preferences:
            top_weight = max((preferences[i.name][0] for i in found), default=0)
            top_taints = max((preferences[i.name][1] for i in found), default=0)
            for info in found:
                weight, taints = preferences[info.name]
                # x2 throughout: least allocated sums cpu and memory (0-200) instead of averaging.
                bonus = 2 * AFFINITY_WEIGHT * weight * MAX_SCORE // top_weight if top_weight else 0
                bonus += 2 * TAINT_WEIGHT * (MAX_SCORE - taints * MAX_SCORE // top_taints) if top_taints else 0
                soft[info.name] = bonus
        best: list[str] = []
        top = -1
        for info in found:
            cap_cpu, cap_mem = info.cpu, info.memory
            cpu_free = cap_cpu - info.score_cpu - pcpu
            mem_free = cap_mem - info.score_memory - pmem
            score = (cpu_free * MAX_SCORE // cap_cpu if cpu_free > 0 else 0) + (
                mem_free * MAX_SCORE // cap_mem if mem_free > 0 else 0
            )
            if most:
                score += SPREAD_WEIGHT * 2 * MAX_SCORE * (most - info.owners.get(owner, 0)) // most
            if soft:
                score += soft[info.name]
            if score > top:
                top = score
                best = [info.name]
            elif score == top:
                best.append(info.name)
        return best[0] if len(best) == 1 else random.choice(best)

    # --- the loop ----------------------------------------------------------------------

    async def run(self, runtime: Runtime) -> None:
        synced: asyncio.Future[Any] = asyncio.gather(self.pods.wait_synced(), self.nodes.wait_synced())
        stopping = asyncio.create_task(runtime.stop.wait())
        await asyncio.wait({synced, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if runtime.stop.is_set():
            synced.cancel()
            return
        self._log.info("scheduling", pods=len(self.pods), nodes=len(self.cache.node_names))
        workers = [asyncio.create_task(self._side_worker(runtime)) for _ in range(self._side_workers)]
        popper: asyncio.Task[str] | None = None
        stopper = asyncio.create_task(runtime.stop.wait())
        handled = 0
        try:
            while not runtime.stop.is_set():
                popper = asyncio.create_task(self.queue.pop())
                done, _ = await asyncio.wait({popper, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if popper not in done:
                    break
                key = popper.result()
                popper = None
                try:
                    await self.schedule_one(key)
                except Exception:
                    self._log.exception("scheduling failed", key=key)
                    self.queue.add_backoff(key)
                handled += 1
                if handled % 32 == 0:
                    await asyncio.sleep(0)  # let the informers and bindings run
        finally:
            if popper is not None:
                popper.cancel()
            stopper.cancel()
            await self._drain()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _drain(self, grace: float = 5.0) -> None:
        """Let in-flight bindings finish (they are idempotent; what does not finish is retried by others)."""
        if self._bind_tasks:
            await asyncio.wait(set(self._bind_tasks), timeout=grace)
        for task in list(self._bind_tasks):
            task.cancel()

    async def schedule_one(self, key: str) -> None:
        pod = self.pods.get(key)
        if key in self._binding:
            return
        if pod is None or not self.responsible(pod):
            self._drop(key)
            return
        if self.peers is not None and key not in self._handed and not self.peers.mine(key):
            # Another live replica owns this pod: give it time to bind it before racing for it.
            self._handed.add(key)
            self.queue.add_backoff(key, self.handoff_delay + len(self.queue) / 1000)
            self.metrics.inc("scheduler_handoffs_total")
            return
        self.queue.attempted(key)
        started = time.perf_counter()
        try:
            decision = self.decide(pod)
        except (BadPod, AttributeError, TypeError, ValueError, KeyError) as exc:
            # A malformed pod: say so on the pod, and look again only when it changes.
            message = str(exc) if isinstance(exc, BadPod) else f"cannot read the pod's scheduling constraints: {exc!r}"
            self.metrics.inc("scheduler_attempts_total", result="error")
            self._log.warning("cannot schedule pod", key=key, error=message)
            self.queue.park(key)
            self._report_failure(pod, message, reason="SchedulerError")
            return
        self.metrics.inc("scheduler_algorithm_seconds_total", time.perf_counter() - started)
        if decision.node is None:
            self.metrics.inc("scheduler_attempts_total", result="unschedulable")
            self._log.info("pod is unschedulable", key=key, message=decision.message)
            self.queue.park(key)
            self._report_failure(pod, decision.message, reason="Unschedulable")
            return
        assert decision.requests is not None
        self.metrics.inc("scheduler_attempts_total", result="scheduled")
        self.cache.assume(key, node=decision.node, requests=decision.requests, owner=controller_uid(pod))
        self._binding.add(key)
        await self._bind_slots.acquire()
        task = asyncio.create_task(self._bind(key, pod, decision.node))
        self._bind_tasks.add(task)
        task.add_done_callback(self._bind_tasks.discard)

    async def _bind(self, key: str, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        namespace, name = meta.get("namespace") or "default", meta["name"]
        outcome = "error"
        try:
            await self.client.call(
                "create",
                "pods",
                namespace=namespace,
                name=name,
                subresource="binding",
                body={
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": namespace},
                    "target": {"kind": "Node", "name": node},
                },
            )
        except ApiClientError as exc:
            self.cache.forget(key)
            outcome = self._bind_refused(key, exc, node=node)
        except TRANSIENT as exc:
            self.cache.forget(key)
            self._log.warning("binding failed; retrying", key=key, node=node, error=str(exc))
            self.queue.add_backoff(key)
        except asyncio.CancelledError:
            self.cache.forget(key)
            raise
        except Exception:
            self.cache.forget(key)
            self._log.exception("binding failed", key=key, node=node)
            self.queue.add_backoff(key)
        else:
            outcome = "bound"
            self.cache.bound(key)
            self._drop(key)
            self._log.debug("bound", key=key, node=node)
            self._side_effect(
                deferred=True,
                work=lambda: self.recorder.record(
                    pod, reason="Scheduled", message=f"Successfully assigned {namespace}/{name} to {node}"
                ),
            )
        finally:
            self._binding.discard(key)
            self._bind_slots.release()
            self.metrics.inc("scheduler_binds_total", result=outcome)
        if outcome in ("conflict", "error"):
            # The pod may have changed meanwhile; the informer's latest copy decides what is next.
            current = self.pods.get(key)
            if current is None or not self.responsible(current):
                self._drop(key)

    def _bind_refused(self, key: str, exc: ApiClientError, *, node: str) -> str:
        message = str(exc.status.get("message", ""))
        details = exc.status.get("details") or {}
        if exc.code == 409 and ("already assigned" in message or "being deleted" in message):
            self._drop(key)
            return "taken"
        if exc.code == 409:
            # Another scheduler filled the node first (or the pod changed): look again soon,
            # by when the informer will have shown us the winner's pod.
            self._log.info("binding refused; retrying", key=key, node=node, reason=message)
            self.queue.add_backoff(key, self.conflict_retry * (1 + random.random()))
            return "conflict"
        if exc.code == 404 and details.get("kind") != "nodes":
            self._drop(key)
            return "gone"
        self._log.warning("binding failed; retrying", key=key, node=node, code=exc.code, error=message)
        self.queue.add_backoff(key)
        return "error"

    # --- reporting failures -------------------------------------------------------------

    def _report_failure(self, pod: Obj, message: str, *, reason: str) -> None:
        condition = next(
            (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        same = (
            condition is not None
            and condition.get("status") == "False"
            and condition.get("reason") == reason
            and condition.get("message") == message
        )
        if not same:
            self._side_effect(work=lambda: self._set_condition(pod, message, reason=reason))
        self._side_effect(
            work=lambda: self.recorder.record(pod, reason="FailedScheduling", message=message, type="Warning")
        )

    async def _set_condition(self, pod: Obj, message: str, *, reason: str) -> None:
        meta = pod["metadata"]
        patch = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": reason,
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }
                ]
            },
        }
        try:
            await self.client.patch(
                "pods",
                meta["name"],
                patch,
                namespace=meta.get("namespace"),
                subresource="status",
                content_type="application/strategic-merge-patch+json",
            )
        except ApiClientError as exc:
            # 409: the pod changed (perhaps bound) since we looked; the next attempt reports afresh.
            if exc.code not in (404, 409):
                self._log.warning("could not set PodScheduled", key=key_of(pod), error=str(exc))

    def _side_effect(self, *, work: Callable[[], Awaitable[None]], deferred: bool = False) -> None:
        target = self._deferred if deferred else self._urgent
        if len(self._urgent) + len(self._deferred) >= self._side_cap:
            self.metrics.inc("scheduler_side_effects_dropped_total")
            return
        target.append(work)
        self._side_wakeup.set()

    def _busy(self) -> bool:
        """Pods are waiting or many bindings are in flight: the API's time is for binding."""
        return self.queue.counts()["active"] > 0 or len(self._binding) > BUSY_BINDS

    async def _side_worker(self, runtime: Runtime) -> None:
        while not runtime.stop.is_set():
            if self._urgent:
                work = self._urgent.popleft()
            elif self._deferred and not self._busy():
                work = self._deferred.popleft()
            else:
                self._side_wakeup.clear()
                try:
                    await asyncio.wait_for(self._side_wakeup.wait(), timeout=0.05)
                except TimeoutError:
                    pass
                continue
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.warning("status or event update failed", error=str(exc))

    # --- housekeeping ------------------------------------------------------------------

    async def expire_assumptions(self, runtime: Runtime, *, interval: float = 5.0) -> None:
        while not await runtime.sleep(interval):
            expired = self.cache.expire()
            if expired:
                self._log.warning("assumed pods never seen bound; forgot them", pods=expired)
                self._cluster_changed("assumptions expired")


def _insufficient(info: NodeInfo, requests: Requests) -> list[str]:
    reasons = []
    if info.used_pods + 1 > info.pods:
        reasons.append("Too many pods")
    if info.used_cpu + requests.cpu > info.cpu:
        reasons.append("Insufficient cpu")
    if info.used_memory + requests.memory > info.memory:
        reasons.append("Insufficient memory")
    return reasons


def _spec_changed(old: Obj, new: Obj) -> bool:
    return old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels") != (
        new.get("metadata") or {}
    ).get("labels")
