"""The ReplicaSet controller: keep ``spec.replicas`` pods matching the selector.

As kube-controller-manager's: pods are created from the template (``generateName:
<rs>-``, a controller ownerReference), matching orphans are adopted and pods that stop
matching are released; scaling down gives up the least valuable pods first
(``rs_util.scale_down_order``). Expectations (``expectations.py``) keep a lagging cache
from causing a second round of creations or deletions. Status (replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration) is written
through the status subresource; a pod that is ready but not yet for minReadySeconds
brings the ReplicaSet back when it will be.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from services.controller_manager.expectations import Expectations
from services.controller_manager.rs_util import (
    Obj,
    available_in,
    claim,
    controller_ref,
    deleting,
    is_active,
    is_ready,
    key_of,
    label_selector,
    meta,
    owner_reference,
    scale_down_order,
)
from shared import selectors
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer
from shared.store import now_rfc3339
from shared.workqueue import Result, TerminalError, WorkQueue

#: At most this many pods are created or deleted in one step (Kubernetes' burstReplicas).
BURST = 500
#: Creations start with one pod and double after each fully successful batch.
SLOW_START = 1


@dataclass
class Caches:
    replicasets: Informer
    pods: Informer


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    cache = Caches(ctx.informer("replicasets"), ctx.informer("pods"))
    expectations = Expectations()
    ctx.informer("replicasets").add_handler(lambda _kind, obj, _old: queue.add(key_of(obj)))
    ctx.informer("pods").add_handler(functools.partial(on_pod, cache=cache, queue=queue, expectations=expectations))
    # Events name this controller as their source, as Kubernetes' do ("From: replicaset-controller").
    recorder = EventRecorder(ctx.client, component="replicaset-controller")
    reconcile_rs = functools.partial(reconcile, cache=cache, client=ctx.client, recorder=recorder,
                                     expectations=expectations)
    return Controller(name="replicaset", reconcile=reconcile_rs, queue=queue, primary="replicasets",
                      workers=getattr(ctx.settings, "workers", 4))


# --- event handlers: which ReplicaSets a pod change concerns ---------------------------


def owner_of(pod: Obj, cache: Caches) -> str | None:
    """The key of the cached ReplicaSet that controls ``pod``, if any."""
    ref = controller_ref(pod)
    if ref is None or ref.get("kind") != "ReplicaSet":
        return None
    key = f"{meta(pod).get('namespace') or ''}/{ref.get('name', '')}"
    rs = cache.replicasets.get(key)
    if rs is None or meta(rs).get("uid") != ref.get("uid"):
        return None
    return key


def selecting(pod: Obj, cache: Caches) -> list[str]:
    """ReplicaSets whose selector matches an orphan pod (they may adopt it)."""
    keys = []
    for rs in cache.replicasets.list(namespace=meta(pod).get("namespace")):
        try:
            if label_selector(rs).matches(meta(pod).get("labels")):
                keys.append(key_of(rs))
        except selectors.SelectorError:
            continue
    return keys


def on_pod(kind: str, pod: Obj, old: Obj | None, *, cache: Caches, queue: WorkQueue,
           expectations: Expectations) -> None:
    pod_key = key_of(pod)
    owner = owner_of(pod, cache)
    if kind == "DELETED" or (deleting(pod) and (old is None or not deleting(old))):
        if owner:
            expectations.deletion_observed(owner, pod_key)
            queue.add(owner)
        if old is not None and (previous := owner_of(old, cache)) and previous != owner:
            expectations.deletion_observed(previous, pod_key)
            queue.add(previous)
        return
    if kind == "ADDED":
        if owner:
            expectations.creation_observed(owner)
            queue.add(owner)
        elif controller_ref(pod) is None:
            for key in selecting(pod, cache):
                queue.add(key)
        return
    if old is not None and meta(old).get("resourceVersion") == meta(pod).get("resourceVersion"):
        return
    if old is not None and (previous := owner_of(old, cache)) and previous != owner:
        queue.add(previous)
    if owner:
        queue.add(owner)
    elif controller_ref(pod) is None:
        for key in selecting(pod, cache):
            queue.add(key)


# --- reconcile ------------------------------------------------------------------------


async def reconcile(
    key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder, expectations: Expectations
) -> Result | None:
    rs = cache.replicasets.get(key)
    if rs is None:
        expectations.forget(key)
        return None
    log = structlog.get_logger().bind(controller="replicaset", key=key)
    try:
        selector = label_selector(rs)
    except selectors.SelectorError as exc:
        raise TerminalError(f"invalid selector: {exc}") from exc
    namespace = meta(rs).get("namespace")
    candidates = [p for p in cache.pods.list(namespace=namespace) if is_active(p)]
    pods = await claim(rs, candidates, plural="pods", selector=selector, client=client, log=log)
    outcome = None
    if expectations.satisfied(key) and not deleting(rs):
        outcome = await manage(rs, pods, key=key, client=client, recorder=recorder, expectations=expectations,
                               log=log)
        pods = [p for p in pods if key_of(p) not in outcome.gone]
    status, wait = calculate_status(rs, pods, outcome=outcome, now=time.time())
    if status != (rs.get("status") or {}):
        body = copy.deepcopy(rs)
        body["status"] = status
        try:
            await client.update("replicasets", body, subresource="status")
        except ApiClientError as exc:
            if exc.code == 404:
                return None
            if exc.code != 409:
                raise
            # A newer ReplicaSet is on its way to the cache; its event brings us back.
            log.debug("status conflict; will look again")
            return Result(requeue_after=0.5)
    if outcome is not None and outcome.error is not None:
        raise outcome.error
    delays = [d for d in (wait, expectations.remaining(key)) if d]
    return Result(requeue_after=min(delays) + 0.05) if delays else None


@dataclass
class Outcome:
    """What one step of ``manage`` did: the pods it deleted, and the first error it met."""

    gone: set[str] = field(default_factory=set)
    error: ApiClientError | None = None
    reason: str = ""


async def manage(
    rs: Obj, pods: list[Obj], *, key: str, client: BusClient, recorder: EventRecorder,
    expectations: Expectations, log: Any,
) -> Outcome:
    """One step toward ``spec.replicas``: create or delete the difference."""
    want = int((rs.get("spec") or {}).get("replicas", 1))
    diff = len(pods) - want
    if diff < 0:
        count = min(-diff, BURST)
        expectations.expect(key, adds=count)
        created, failure = await _create_pods(rs, count, client=client, recorder=recorder, log=log)
        if created < count:
            expectations.lower(key, adds=count - created)
        if created:
            log.info("created pods", count=created, replicas=want)
        return Outcome(error=failure, reason="FailedCreate")
    if diff > 0:
        victims = scale_down_order(pods)[: min(diff, BURST)]
        victim_keys = [key_of(p) for p in victims]
        expectations.expect(key, deletes=victim_keys)
        results = await asyncio.gather(*(_delete_pod(rs, p, client=client, recorder=recorder) for p in victims))
        failure = None
        gone = set()
        for pod_key, error in zip(victim_keys, results, strict=True):
            if error is None:
                gone.add(pod_key)
                continue
            expectations.lower(key, deletes=[pod_key])
            if error.code == 404:
                gone.add(pod_key)
            elif failure is None:
                failure = error
        log.info("deleted pods", count=len(gone), replicas=want)
        return Outcome(gone=gone, error=failure, reason="FailedDelete")
    return Outcome()


def pod_from_template(rs: Obj) -> Obj:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    m = meta(rs)
    pod_meta: Obj = {"generateName": f"{m.get('name', '')}-", "namespace": m.get("namespace"),
                     "ownerReferences": [owner_reference(rs)]}
    for name in ("labels", "annotations", "finalizers"):
        if tmeta.get(name):
            pod_meta[name] = tmeta[name]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template.get("spec") or {}}


async def _create_pods(
    rs: Obj, count: int, *, client: BusClient, recorder: EventRecorder, log: Any
) -> tuple[int, ApiClientError | None]:
    """Create ``count`` pods in doubling batches, stopping at the first batch with an error,
    so a broken template costs one failed request rather than hundreds."""
    namespace = meta(rs).get("namespace")
    created = 0
    batch = SLOW_START
    while created < count:
        size = min(batch, count - created)

        async def one() -> ApiClientError | None:
            try:
                pod = await client.create("pods", pod_from_template(rs), namespace=namespace)
            except ApiClientError as exc:
                # A namespace being deleted refuses new pods: expected, not worth an event.
                if not (exc.code == 403 and "being terminated" in str(exc)):
                    await recorder.record(rs, reason="FailedCreate", type="Warning",
                                          message=f"Error creating: {exc.status.get('message')}")
                return exc
            await recorder.record(rs, reason="SuccessfulCreate", message=f"Created pod: {meta(pod).get('name')}")
            return None

        errors = [e for e in await asyncio.gather(*(one() for _ in range(size))) if e is not None]
        created += size - len(errors)
        if errors:
            log.warning("could not create pods", error=str(errors[0]), failed=len(errors))
            return created, errors[0]
        batch *= 2
    return created, None


async def _delete_pod(rs: Obj, pod: Obj, *, client: BusClient, recorder: EventRecorder) -> ApiClientError | None:
    m = meta(pod)
    try:
        await client.delete("pods", m.get("name", ""), namespace=m.get("namespace"),
                            body={"preconditions": {"uid": m.get("uid")}})
    except ApiClientError as exc:
        if exc.code != 404:
            await recorder.record(rs, reason="FailedDelete",
                                  message=f"Error deleting: {exc.status.get('message')}", type="Warning")
        return exc
    await recorder.record(rs, reason="SuccessfulDelete", message=f"Deleted pod: {m.get('name')}")
    return None


# --- status ---------------------------------------------------------------------------


def calculate_status(rs: Obj, pods: list[Obj], *, outcome: Outcome | None,
                     now: float) -> tuple[Obj, float | None]:
    """The status the pods justify, and when to look again for a pod about to become available."""
    template_labels = (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    fully = ready = available = 0
    wait: float | None = None
    for pod in pods:
        labels = meta(pod).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully += 1
        if is_ready(pod):
            ready += 1
        left = available_in(pod, min_ready, now)
        if left == 0:
            available += 1
        elif left is not None:
            wait = left if wait is None else min(wait, left)
    old = rs.get("status") or {}
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": fully,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int(meta(rs).get("generation") or 1),
    }
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if outcome is None:
        # Nothing was tried this time (expectations outstanding): keep what was reported.
        conditions = list(old.get("conditions") or [])
    elif outcome.error is not None and outcome.error.code != 409:
        # Set once and kept while failures go on: rewriting it each time would wake this
        # ReplicaSet at once and defeat the work queue's back-off.
        conditions.append(previous or {"type": "ReplicaFailure", "status": "True", "reason": outcome.reason,
                                       "message": str(outcome.error.status.get("message") or outcome.error),
                                       "lastTransitionTime": now_rfc3339()})
    if conditions:
        status["conditions"] = conditions
    return status, wait
