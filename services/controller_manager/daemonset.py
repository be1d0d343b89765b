"""The DaemonSet controller: one pod of the template on every node that should run it.

A node should run the DaemonSet's pod when the scheduler's static filters
(``shared/node_filters.py``, as the scheduler judges: nodeSelector, required node affinity, taints and
tolerations, cordoning) would let it there, with the tolerations Kubernetes gives every
daemon pod (not-ready, unreachable, the pressure conditions, unschedulable) and whether
the node is Ready or not. Pods are created already bound (``spec.nodeName``), as a daemon
pod has exactly one possible node; a node whose pod is terminating waits for it to go
before it gets a new one. Pods carry the ``controller-revision-hash`` label of their
template; a RollingUpdate replaces out-of-date pods keeping at most ``maxUnavailable``
nodes without an available pod; OnDelete leaves them until deleted. Failed pods are
deleted and replaced. Expectations keep a lagging cache from doubling pods.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from dataclasses import dataclass
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from services.controller_manager.deploy_util import SpecError, scaled, template_hash
from services.controller_manager.expectations import Expectations
from services.controller_manager.rs_util import (
    Obj,
    available_in,
    controller_ref,
    deleting,
    is_ready,
    key_of,
    meta,
    observe_owned_pod,
    owner_reference,
)
from shared import node_filters as filters
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer
from shared.workqueue import Result, TerminalError, WorkQueue

REVISION_LABEL = "controller-revision-hash"
#: Added to every daemon pod, as Kubernetes' DaemonSet controller does.
DAEMON_TOLERATIONS = (
    {"key": filters.NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": filters.UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": filters.UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
)
#: Taints that say how a node is doing, not what may run there: a daemon pod runs Ready or not.
CONDITION_TAINTS = (filters.NOT_READY_TAINT, filters.UNREACHABLE_TAINT)


@dataclass
class Caches:
    daemonsets: Informer
    pods: Informer
    nodes: Informer


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    cache = Caches(ctx.informer("daemonsets"), ctx.informer("pods"), ctx.informer("nodes"))
    expectations = Expectations()
    cache.daemonsets.add_handler(lambda _kind, obj, _old: queue.add(key_of(obj)))
    cache.nodes.add_handler(functools.partial(on_node, cache=cache, queue=queue))
    cache.pods.add_handler(functools.partial(on_pod, cache=cache, queue=queue, expectations=expectations))
    recorder = EventRecorder(ctx.client, component="daemonset-controller")
    run = functools.partial(reconcile, cache=cache, client=ctx.client, recorder=recorder, expectations=expectations)
    return Controller(name="daemonset", reconcile=run, queue=queue, primary="daemonsets",
                      workers=getattr(ctx.settings, "workers", 4))


def owner_of(pod: Obj, cache: Caches) -> str | None:
    ref = controller_ref(pod)
    if ref is None or ref.get("kind") != "DaemonSet":
        return None
    key = f"{meta(pod).get('namespace') or ''}/{ref.get('name', '')}"
    ds = cache.daemonsets.get(key)
    return key if ds is not None and meta(ds).get("uid") == ref.get("uid") else None


def on_node(kind: str, node: Obj, old: Obj | None, *, cache: Caches, queue: WorkQueue) -> None:
    """A node that came, went or changed its labels, taints or readiness concerns every DaemonSet."""
    if kind == "MODIFIED" and old is not None and _node_shape(old) == _node_shape(node):
        return
    for key in cache.daemonsets.keys():
        queue.add(key)


def _node_shape(node: Obj) -> Any:
    return (meta(node).get("labels"), (node.get("spec") or {}).get("taints"),
            (node.get("spec") or {}).get("unschedulable"))


def on_pod(kind: str, pod: Obj, old: Obj | None, *, cache: Caches, queue: WorkQueue,
           expectations: Expectations) -> None:
    owner = owner_of(pod, cache)
    if owner is None:
        return
    observe_owned_pod(kind, pod, old, owner=owner, expectations=expectations)
    queue.add(owner)


# --- which nodes ------------------------------------------------------------------------


def daemon_pod_spec(ds: Obj) -> Obj:
    spec = copy.deepcopy(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    tolerations = list(spec.get("tolerations") or [])
    for toleration in DAEMON_TOLERATIONS:
        if toleration not in tolerations:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return spec


def should_run(pod_spec: Obj, node: Obj) -> bool:
    """The scheduler's static filters, with the node's condition taints set aside."""
    facts = filters.node_facts(node)
    facts = filters.NodeFacts(facts.name, facts.labels, facts.unschedulable,
                              tuple(t for t in facts.taints if t.key not in CONDITION_TAINTS), facts.soft_taints)
    return filters.static_reason(pod_spec, facts) is None


def revision_of(ds: Obj) -> str:
    return template_hash((ds.get("spec") or {}).get("template"))


def max_unavailable(ds: Obj, desired: int) -> int:
    rolling = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {})
    try:
        value = scaled(rolling.get("maxUnavailable", 1), desired, round_up=True)
    except SpecError as exc:
        raise TerminalError(str(exc)) from exc
    return max(value, 1)


# --- reconcile ------------------------------------------------------------------------


async def reconcile(key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder,
                    expectations: Expectations) -> Result | None:
    ds = cache.daemonsets.get(key)
    if ds is None:
        expectations.forget(key)
        return None
    log = structlog.get_logger().bind(controller="daemonset", key=key)
    uid = meta(ds).get("uid")
    owned = [p for p in cache.pods.list(namespace=meta(ds).get("namespace"))
             if (ref := controller_ref(p)) is not None and ref.get("uid") == uid]
    pod_spec = daemon_pod_spec(ds)
    revision = revision_of(ds)
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    now = time.time()
    by_node: dict[str, list[Obj]] = {}
    for pod in owned:
        by_node.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
    nodes = {str(meta(n).get("name")): n for n in cache.nodes.list()}
    eligible = {name for name, node in nodes.items() if should_run(pod_spec, node)}

    creates: list[str] = []
    deletes: list[Obj] = []
    old_available: list[Obj] = []
    unavailable = 0
    wait: float | None = None
    for name in sorted(eligible | set(by_node)):
        pods = by_node.get(name, [])
        live = [p for p in pods if not deleting(p)]
        failed = [p for p in live if (p.get("status") or {}).get("phase") == "Failed"]
        live = [p for p in live if p not in failed]
        if name not in eligible:
            deletes += live + failed
            continue
        deletes += failed
        if not live:
            unavailable += 1
            if not any(deleting(p) for p in pods) and not failed:
                creates.append(name)
            continue
        # One pod per node: keep the oldest, give up the rest.
        live.sort(key=lambda p: (meta(p).get("creationTimestamp") or "", meta(p).get("name", "")))
        deletes += live[1:]
        keep = live[0]
        left = available_in(keep, min_ready, now)
        if left != 0:
            unavailable += 1
            if left is not None:
                wait = left if wait is None else min(wait, left)
        if _revision_label(keep) != revision:
            if left == 0:
                old_available.append(keep)
            elif _rolling(ds):
                deletes.append(keep)  # out of date and not available: replacing it costs nothing
    if _rolling(ds) and old_available:
        budget = max_unavailable(ds, len(eligible)) - unavailable
        deletes += old_available[: max(budget, 0)]

    error: ApiClientError | None = None
    if expectations.satisfied(key) and not deleting(ds):
        error = await _act(ds, creates, deletes, pod_spec=pod_spec, revision=revision, key=key, client=client,
                           recorder=recorder, expectations=expectations, log=log)
    status = _status(ds, by_node, eligible, revision=revision, min_ready=min_ready, now=now)
    if any((ds.get("status") or {}).get(k) != v for k, v in status.items()):
        body = copy.deepcopy(ds)
        body["status"] = {**(ds.get("status") or {}), **status}
        try:
            await client.update("daemonsets", body, subresource="status")
        except ApiClientError as exc:
            if exc.code == 404:
                return None
            if exc.code != 409:
                raise
            return Result(requeue_after=0.5)
    if error is not None:
        raise error
    delays = [d for d in (wait, expectations.remaining(key)) if d]
    return Result(requeue_after=min(delays) + 0.05) if delays else None


def _rolling(ds: Obj) -> bool:
    return ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _revision_label(pod: Obj) -> str | None:
    value = (meta(pod).get("labels") or {}).get(REVISION_LABEL)
    return str(value) if value is not None else None


async def _act(ds: Obj, creates: list[str], deletes: list[Obj], *, pod_spec: Obj, revision: str, key: str,
               client: BusClient, recorder: EventRecorder, expectations: Expectations,
               log: Any) -> ApiClientError | None:
    if not creates and not deletes:
        return None
    expectations.expect(key, adds=len(creates), deletes=[key_of(p) for p in deletes])
    results = await asyncio.gather(
        *(_create(ds, node, pod_spec=pod_spec, revision=revision, client=client, recorder=recorder)
          for node in creates),
        *(_delete(ds, pod, client=client, recorder=recorder) for pod in deletes),
    )
    failure: ApiClientError | None = None
    for i, error in enumerate(results):
        if error is None:
            continue
        if i < len(creates):
            expectations.lower(key, adds=1)
        else:
            expectations.lower(key, deletes=[key_of(deletes[i - len(creates)])])
        if error.code != 404 and failure is None:
            failure = error
    log.info("synced daemon pods", created=len(creates), deleted=len(deletes))
    return failure


async def _create(ds: Obj, node: str, *, pod_spec: Obj, revision: str, client: BusClient,
                  recorder: EventRecorder) -> ApiClientError | None:
    m = meta(ds)
    tmeta = ((ds.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), REVISION_LABEL: revision}
    pod_meta: Obj = {"generateName": f"{m.get('name', '')}-", "namespace": m.get("namespace"), "labels": labels,
                     "ownerReferences": [owner_reference(ds)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = tmeta["annotations"]
    spec = {**copy.deepcopy(pod_spec), "nodeName": node}
    try:
        pod = await client.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec},
                                  namespace=m.get("namespace"))
    except ApiClientError as exc:
        if not (exc.code == 403 and "being terminated" in str(exc)):
            await recorder.record(ds, reason="FailedCreate", type="Warning",
                                  message=f"Error creating: {exc.status.get('message')}")
        return exc
    await recorder.record(ds, reason="SuccessfulCreate", message=f"Created pod: {meta(pod).get('name')}")
    return None


async def _delete(ds: Obj, pod: Obj, *, client: BusClient, recorder: EventRecorder) -> ApiClientError | None:
    m = meta(pod)
    try:
        await client.delete("pods", m.get("name", ""), namespace=m.get("namespace"),
                            body={"preconditions": {"uid": m.get("uid")}})
    except ApiClientError as exc:
        return exc
    await recorder.record(ds, reason="SuccessfulDelete", message=f"Deleted pod: {m.get('name')}")
    return None


def _status(ds: Obj, by_node: dict[str, list[Obj]], eligible: set[str], *, revision: str, min_ready: int,
            now: float) -> Obj:
    current = misscheduled = ready = updated = available = 0
    for name, pods in by_node.items():
        live = [p for p in pods if not deleting(p) and (p.get("status") or {}).get("phase") != "Failed"]
        if not live:
            continue
        if name not in eligible:
            misscheduled += 1
            continue
        current += 1
        pod = live[0]
        if is_ready(pod):
            ready += 1
        if available_in(pod, min_ready, now) == 0:
            available += 1
        if _revision_label(pod) == revision:
            updated += 1
    desired = len(eligible)
    return {
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": max(desired - available, 0),
        "observedGeneration": int(meta(ds).get("generation") or 1),
    }
