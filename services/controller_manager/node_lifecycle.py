"""The node lifecycle controller: notice dead nodes and move their pods elsewhere.

As kube-controller-manager's node lifecycle controller with taint-based eviction: a
node is healthy while its kubelet renews its Lease (``kube-node-lease/NAME``) or posts
its Ready condition. Times are those at which this controller SAW a renewal, not the
timestamps written, so clocks need not agree, and a new leader (or a node that never
had a lease) gets a full grace period before judging. A node silent for longer than
``node_grace_seconds`` gets Ready=Unknown (reason NodeStatusUnknown) through the
status subresource, its pods are marked not ready (so Endpoints drop them), and it
is tainted ``node.kubernetes.io/unreachable`` (NoSchedule and NoExecute). Pods that
do not tolerate the NoExecute taint are deleted once their toleration's
``tolerationSeconds`` (``eviction_seconds`` when they have no matching toleration,
as the DefaultTolerationSeconds admission plugin would give them) have passed since
the taint was added, with gracePeriodSeconds=0 since no kubelet is left to confirm;
their controllers replace them elsewhere. When the node is heard from again and its
kubelet reports Ready, the taints are removed. Pods bound to a Node that no longer
exists (confirmed with a GET) are deleted at once, as the pod GC does.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from services.controller_manager.job import now_rfc3339, parse_time
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer, key_of
from shared.metrics import Metrics
from shared.workqueue import Result, WorkQueue

Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Kubelet never posted node status."
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def log() -> structlog.typing.FilteringBoundLogger:
    """This controller's logger, bound when used (logging is configured after import)."""
    return structlog.get_logger().bind(component="controller-manager", controller="node-lifecycle")  # type: ignore[no-any-return]


@dataclass
class Caches:
    nodes: Informer
    leases: Informer
    pods: Informer


@dataclass
class Health:
    """What was last heard from a node, and when (this process's monotonic clock)."""

    renew: str = ""
    heartbeat: str = ""
    seen_at: float = field(default_factory=time.monotonic)


@dataclass
class Settings:
    grace: float = 40.0
    eviction: float = 300.0


def _ready_condition(node: Obj) -> Obj | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def tolerates(pod: Obj, taint: Obj) -> tuple[bool, float | None]:
    """Whether a pod tolerates ``taint``, and for how long (None: for ever)."""
    found = False
    seconds: float | None = None
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key")
        if operator == "Exists":
            if key and key != taint.get("key"):
                continue
        elif key != taint.get("key") or (toleration.get("value") or "") != (taint.get("value") or ""):
            continue
        limit = toleration.get("tolerationSeconds")
        if limit is None:
            return True, None
        found = True
        seconds = float(limit) if seconds is None else min(seconds, float(limit))
    return found, seconds


def _unknown_conditions(node: Obj, stamp: str) -> list[Obj]:
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    if not any(c.get("type") == "Ready" for c in conditions):
        conditions.append({"type": "Ready", "status": "Unknown", "reason": NEVER_REASON, "message": NEVER_MESSAGE,
                           "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    for condition in conditions:
        if condition.get("type") in KUBELET_CONDITIONS and condition.get("status") != "Unknown":
            condition.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE, lastTransitionTime=stamp)
    return conditions


def _observe(health: dict[str, Health], name: str, node: Obj, lease: Obj | None) -> Health:
    """Record a sign of life: a new lease renewTime, or a new heartbeat the kubelet posted
    (the Ready condition this controller writes itself is not one)."""
    renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
    ready = _ready_condition(node) or {}
    ours = ready.get("reason") in (UNKNOWN_REASON, NEVER_REASON)
    heartbeat = "" if ours else str(ready.get("lastHeartbeatTime") or "")
    seen = health.get(name)
    if seen is None:
        seen = health[name] = Health(renew=renew, heartbeat=heartbeat)
    elif renew != seen.renew or (heartbeat and heartbeat != seen.heartbeat):
        seen.renew, seen.seen_at = renew, time.monotonic()
        seen.heartbeat = heartbeat or seen.heartbeat
    return seen


async def _mark_pods_not_ready(pods: list[Obj], *, client: BusClient, stamp: str) -> None:
    for pod in pods:
        conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
        changed = False
        for condition in conditions:
            if condition.get("type") == "Ready" and condition.get("status") != "False":
                condition.update(status="False", lastTransitionTime=stamp)
                changed = True
        if not changed:
            continue
        meta = pod["metadata"]
        try:
            await client.patch("pods", meta["name"], {"status": {"conditions": conditions}},
                               namespace=meta["namespace"], subresource="status")
        except ApiClientError as exc:
            if exc.code != 404:
                raise


async def _evict(
    node: Obj, pods: list[Obj], taint: Obj, *, client: BusClient, recorder: EventRecorder, eviction: float, now: float,
    metrics: Metrics | None = None,
) -> float | None:
    """Delete the pods whose toleration of ``taint`` has run out; seconds until the next one is due."""
    added = parse_time(taint.get("timeAdded")) or now
    next_due: float | None = None
    for pod in pods:
        tolerated, seconds = tolerates(pod, taint)
        if tolerated and seconds is None:
            continue
        due = added + (seconds if tolerated and seconds is not None else eviction)
        if now < due:
            next_due = due - now if next_due is None else min(next_due, due - now)
            continue
        meta = pod["metadata"]
        try:
            await client.delete("pods", meta["name"], namespace=meta["namespace"], params={"gracePeriodSeconds": "0"},
                                body={"preconditions": {"uid": meta["uid"]}})
        except ApiClientError as exc:
            if exc.code not in (404, 409):
                raise
            continue
        log().info("evicted pod from unreachable node", node=node["metadata"]["name"], key=key_of(pod))
        if metrics is not None:
            metrics.inc("node_evictions_total", help="pods deleted from unreachable nodes")
        await recorder.record(pod, reason="TaintManagerEviction", message=f"Marking for deletion Pod {key_of(pod)}")
    return next_due


async def _collect_pods_of_deleted_node(name: str, *, cache: Caches, client: BusClient) -> None:
    """Pods bound to a Node that no longer exists are deleted at once (the pod GC's work)."""
    pods = [p for p in cache.pods.list() if (p.get("spec") or {}).get("nodeName") == name]
    if not pods:
        return
    try:
        await client.get("nodes", name)
        return  # only the cache has not seen it yet
    except ApiClientError as exc:
        if exc.code != 404:
            raise
    for pod in pods:
        meta = pod["metadata"]
        try:
            await client.delete("pods", meta["name"], namespace=meta["namespace"], params={"gracePeriodSeconds": "0"},
                                body={"preconditions": {"uid": meta["uid"]}})
        except ApiClientError as exc:
            if exc.code not in (404, 409):
                raise
        log().info("deleted pod of a deleted node", node=name, key=key_of(pod))


async def reconcile(
    key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder, health: dict[str, Health],
    settings: Settings, metrics: Metrics | None = None,
) -> Result | None:
    name = key.rpartition("/")[2]
    node = cache.nodes.get(key)
    if node is None:
        health.pop(name, None)
        await _collect_pods_of_deleted_node(name, cache=cache, client=client)
        return None
    lease = cache.leases.get(f"{LEASE_NAMESPACE}/{name}")
    seen = _observe(health, name, node, lease)
    silent = time.monotonic() - seen.seen_at
    now = time.time()
    stamp = now_rfc3339(now)
    taints: list[Obj] = list((node.get("spec") or {}).get("taints") or [])
    unreachable = [t for t in taints if t.get("key") == UNREACHABLE]
    ready = _ready_condition(node) or {}

    if silent < settings.grace:
        if unreachable and ready.get("status") == "True":
            kept = [t for t in taints if t.get("key") != UNREACHABLE]
            await client.patch("nodes", name, {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                                               "spec": {"taints": kept or None}})
            log().info("node reachable again; taint removed", node=name)
            await recorder.record(node, reason="NodeReady", message=f"Node {name} status is now: NodeReady")
        return Result(requeue_after=settings.grace - silent + 0.05)

    # Silent too long: taint, Ready=Unknown, pods not ready, and evict what does not tolerate the taint.
    wanted = [{"key": UNREACHABLE, "effect": effect, "timeAdded": stamp} for effect in ("NoSchedule", "NoExecute")
              if not any(t.get("effect") == effect for t in unreachable)]
    if wanted:
        taints = taints + wanted
        # The resourceVersion makes this a compare-and-swap: taints others add meanwhile are not lost.
        await client.patch("nodes", name, {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                                           "spec": {"taints": taints}})
        unreachable = [t for t in taints if t.get("key") == UNREACHABLE]
    if ready.get("status") != "Unknown":
        await client.patch("nodes", name, {"status": {"conditions": _unknown_conditions(node, stamp)}},
                           subresource="status")
        log().warning("node stopped posting status", node=name, silent_for=round(silent, 1))
        if metrics is not None:
            metrics.inc("node_not_ready_total", help="times a node was found silent and set Ready=Unknown")
        await recorder.record(node, reason="NodeNotReady", message=f"Node {name} status is now: NodeNotReady")
    on_node = [p for p in cache.pods.list() if (p.get("spec") or {}).get("nodeName") == name]
    await _mark_pods_not_ready(on_node, client=client, stamp=stamp)
    no_execute = next(t for t in unreachable if t.get("effect") == "NoExecute")
    next_due = await _evict(node, on_node, no_execute, client=client, recorder=recorder,
                            eviction=settings.eviction, now=now, metrics=metrics)
    # Keep watching: evictions to come, and the node coming back (a lease event requeues too).
    return Result(requeue_after=min(next_due + 0.05 if next_due is not None else settings.grace, settings.grace))


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    nodes, leases, pods = ctx.informer("nodes"), ctx.informer("leases"), ctx.informer("pods")
    health: dict[str, Health] = {}

    def on_node(kind: str, obj: Obj, old: Obj | None) -> None:
        queue.add(key_of(obj))

    def on_lease(kind: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("namespace") == LEASE_NAMESPACE:
            queue.add(f"/{meta.get('name')}")

    def on_pod(kind: str, obj: Obj, old: Obj | None) -> None:
        node = (obj.get("spec") or {}).get("nodeName")
        if not node or kind == "DELETED":
            return
        known = nodes.get(f"/{node}")
        # A pod on a node already judged unreachable needs the same treatment; one on a node
        # that does not exist (deleted before this process saw it) is collected.
        if known is None or any(t.get("key") == UNREACHABLE for t in (known.get("spec") or {}).get("taints") or []):
            queue.add(f"/{node}")

    nodes.add_handler(on_node)
    leases.add_handler(on_lease)
    pods.add_handler(on_pod)
    settings = Settings(grace=float(getattr(ctx.settings, "node_grace_seconds", 40)),
                        eviction=float(getattr(ctx.settings, "eviction_seconds", 300)))
    bound = functools.partial(reconcile, cache=Caches(nodes, leases, pods), client=ctx.client,
                              recorder=ctx.recorder, health=health, settings=settings,
                              metrics=ctx.runtime.metrics)
    return Controller(name="node-lifecycle", reconcile=bound, queue=queue, primary="nodes", workers=2)
