"""The Job controller: run pods from a Job's template until enough of them succeed.

As kube-controller-manager's job controller: keeps ``active`` at most ``parallelism``
and at most the completions still missing; counts succeeded and failed pods from their
phases (as the controller did before pod-tracking finalizers: a terminal pod deleted
by hand is no longer counted); fails the Job when failures pass ``backoffLimit`` or it
runs past ``activeDeadlineSeconds`` (deleting its active pods); marks it Complete when
enough pods succeeded; honours ``suspend``; and deletes a finished Job once
``ttlSecondsAfterFinished`` has passed (the TTL-after-finished controller's work).
``completionMode: Indexed`` gives each pod an index (annotation and label
``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX``, hostname
``JOB-INDEX``): one pod per index at a time, a failed index is retried, and the Job
completes when every index has succeeded (``status.completedIndexes``).
Replacement pods after failures wait an exponential back-off (1 s, 2 s, 4 s … up to
60 s; Kubernetes starts at 10 s), measured from the newest failure, so the wait
survives a change of leader. Expectations keep a lagging cache from creating twice.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from services.controller_manager.expectations import Expectations
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer, key_of
from shared.workqueue import Result, WorkQueue

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def log() -> structlog.typing.FilteringBoundLogger:
    """This controller's logger, bound when used (logging is configured after import)."""
    return structlog.get_logger().bind(component="controller-manager", controller="job")  # type: ignore[no-any-return]


@dataclass
class Caches:
    jobs: Informer
    pods: Informer


def now_rfc3339(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def controller_ref(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _finished(status: Obj) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _condition(kind: str, reason: str, message: str, now: str, status: str = "True") -> Obj:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastProbeTime": now,
            "lastTransitionTime": now}


def _set_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    """Replace the condition of the same type, keeping its transition time if the status holds."""
    out = []
    for condition in conditions:
        if condition.get("type") == new["type"]:
            if condition.get("status") == new["status"]:
                new = {**new, "lastTransitionTime": condition.get("lastTransitionTime") or new["lastTransitionTime"]}
            continue
        out.append(condition)
    return [*out, new]


def _finish_time(pod: Obj) -> float | None:
    times = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            times.append(parse_time((state.get("terminated") or {}).get("finishedAt")))
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            times.append(parse_time(condition.get("lastTransitionTime")))
    found = [t for t in times if t is not None]
    return max(found) if found else None


def backoff_remaining(failed_pods: list[Obj], failures: int, now: float) -> float:
    """Seconds to wait before replacing a failed pod (0 when no wait is due)."""
    if failures <= 0:
        return 0.0
    finished = [t for t in (_finish_time(p) for p in failed_pods) if t is not None]
    if not finished:
        return 0.0
    delay = min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)
    return max(0.0, max(finished) + delay - now)


def new_pod(job: Obj, *, index: int | None = None) -> Obj:
    """A pod from the Job's template; in Indexed mode it carries its completion index."""
    meta = job["metadata"]
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    pod_meta: Obj = {
        "generateName": f"{meta['name']}-" if index is None else f"{meta['name']}-{index}-",
        "namespace": meta["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "annotations": dict(tmeta.get("annotations") or {}),
        "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"], "controller": True,
             "blockOwnerDeletion": True}
        ],
    }
    if index is not None:
        pod_meta["labels"][INDEX_KEY] = str(index)
        pod_meta["annotations"][INDEX_KEY] = str(index)
        spec.setdefault("hostname", f"{meta['name']}-{index}")
        for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            env = [e for e in container.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"]
            container["env"] = [*env, {"name": "JOB_COMPLETION_INDEX", "value": str(index)}]
    if not pod_meta["annotations"]:
        del pod_meta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def pod_index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(INDEX_KEY, (meta.get("labels") or {}).get(INDEX_KEY))
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def format_indexes(indexes: set[int]) -> str:
    """Kubernetes' interval notation for completedIndexes: "0-2,5"."""
    out: list[str] = []
    ordered = sorted(indexes)
    start = prev = None
    for i in [*ordered, None]:
        if start is not None and (i is None or i != prev + 1):  # type: ignore[operator]
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ",".join(out)


def _deletion_order(pod: Obj) -> tuple[int, int, int, float]:
    """Pods to remove first: unbound, then not running, then not ready, newest first."""
    spec = pod.get("spec") or {}
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0
    return (1 if spec.get("nodeName") else 0, 1 if _phase(pod) == "Running" else 0, 1 if is_ready(pod) else 0,
            -created)


async def _delete_pods(
    job: Obj, pods: list[Obj], *, key: str, client: BusClient, recorder: EventRecorder, expectations: Expectations
) -> None:
    if not pods:
        return
    expectations.expect_deletions(key, [key_of(p) for p in pods])

    async def one(pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await client.delete("pods", meta["name"], namespace=meta["namespace"],
                                body={"preconditions": {"uid": meta["uid"]}})
        except ApiClientError as exc:
            expectations.deletion_observed(key, key_of(pod))
            if exc.code not in (404, 409):
                raise
            return
        await recorder.record(job, reason="SuccessfulDelete", message=f"Deleted pod: {meta['name']}")

    results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]


async def _create_pods(
    job: Obj, indexes: list[int | None], *, key: str, client: BusClient, recorder: EventRecorder,
    expectations: Expectations,
) -> int:
    """Create one pod per entry of ``indexes`` (None: not Indexed); returns how many were created."""
    if not indexes:
        return 0
    expectations.expect_creations(key, len(indexes))
    namespace = job["metadata"]["namespace"]

    async def one(index: int | None) -> None:
        try:
            created = await client.create("pods", new_pod(job, index=index), namespace=namespace)
        except BaseException:
            expectations.creation_observed(key)
            raise
        await recorder.record(job, reason="SuccessfulCreate", message=f"Created pod: {created['metadata']['name']}")
        log().info("created pod", key=key, pod=created["metadata"]["name"])

    results = await asyncio.gather(*(one(i) for i in indexes), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        forbidden = [e for e in errors if isinstance(e, ApiClientError) and e.code == 403]
        if len(forbidden) < len(errors):
            raise errors[0]
        log().warning("pods not created", key=key, error=str(forbidden[0]))
    return len(indexes) - len(errors)


async def _after_finish(job: Obj, status: Obj, *, key: str, client: BusClient, now: float) -> Result | None:
    """ttlSecondsAfterFinished: delete the finished Job (and, in the background, its pods)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None:
        return None
    finished_at = parse_time(status.get("completionTime"))
    if finished_at is None:
        for condition in status.get("conditions") or []:
            if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
                finished_at = parse_time(condition.get("lastTransitionTime"))
    if finished_at is None:
        return None
    expires = finished_at + int(ttl)
    if now < expires:
        return Result(requeue_after=expires - now + 0.05)
    meta = job["metadata"]
    try:
        await client.delete("jobs", meta["name"], namespace=meta["namespace"],
                            params={"propagationPolicy": "Background"},
                            body={"preconditions": {"uid": meta["uid"]}})
        log().info("deleted finished job after its TTL", key=key)
    except ApiClientError as exc:
        if exc.code not in (404, 409):
            raise
    return None


async def reconcile(
    key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder, expectations: Expectations
) -> Result | None:
    job = cache.jobs.get(key)
    if job is None:
        expectations.forget(key)
        return None
    meta, spec = job["metadata"], job.get("spec") or {}
    status: Obj = copy.deepcopy(job.get("status") or {})
    if meta.get("deletionTimestamp"):
        return None
    uid = meta["uid"]
    now = time.time()
    stamp = now_rfc3339(now)
    pods = [p for p in cache.pods.list(namespace=meta["namespace"]) if (controller_ref(p) or {}).get("uid") == uid]
    active = [p for p in pods if _phase(p) not in TERMINAL and not p["metadata"].get("deletionTimestamp")]

    finished = _finished(status)
    if finished:
        # A finished Job keeps no running pods (those left when it failed, or extra ones).
        await _delete_pods(job, active, key=key, client=client, recorder=recorder, expectations=expectations)
        return await _after_finish(job, status, key=key, client=client, now=now)
    if not expectations.satisfied(key):
        return Result(requeue_after=expectations.remaining(key) + 0.1)

    indexed = spec.get("completionMode") == "Indexed" and spec.get("completions") is not None
    done_indexes = {i for p in pods if _phase(p) == "Succeeded" and (i := pod_index(p)) is not None}
    if indexed:
        done_indexes = {i for i in done_indexes if 0 <= i < int(spec["completions"])}
        succeeded = len(done_indexes)
    else:
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
    failed_pods = [p for p in pods if _phase(p) == "Failed"]
    failures = len(failed_pods)
    if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
        failures += sum(
            int(c.get("restartCount") or 0) for p in active for c in (p.get("status") or {}).get("containerStatuses") or []
        )
    suspended = bool(spec.get("suspend"))
    parallelism = int(spec.get("parallelism", 1) or 0)
    completions = spec.get("completions")
    total = int(completions) if completions is not None else 0
    backoff_limit = int(spec.get("backoffLimit", 6))
    deadline = spec.get("activeDeadlineSeconds")
    conditions: list[Obj] = list(status.get("conditions") or [])
    new: Obj = {**status}
    if not suspended and not status.get("startTime"):
        new["startTime"] = stamp
    started = parse_time(new.get("startTime"))

    failure: tuple[str, str] | None = None
    if failures > backoff_limit:
        failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    elif deadline is not None and not suspended and started is not None and now - started >= int(deadline):
        failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
    complete = failure is None and (
        succeeded >= int(completions) if completions is not None else succeeded > 0 and not active
    )
    requeue: float | None = None
    event: tuple[str, str, str] | None = None
    created = 0
    removed: list[Obj] = []

    if failure is not None or complete:
        removed = active
        await _delete_pods(job, removed, key=key, client=client, recorder=recorder, expectations=expectations)
        if failure is not None:
            conditions = _set_condition(conditions, _condition("Failed", failure[0], failure[1], stamp))
            event = ("Warning", failure[0], failure[1])
        else:
            conditions = _set_condition(
                conditions, _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods",
                                       stamp))
            new["completionTime"] = stamp
            event = ("Normal", "Completed", "Job completed")
    elif suspended:
        removed = active
        await _delete_pods(job, removed, key=key, client=client, recorder=recorder, expectations=expectations)
        conditions = _set_condition(conditions, _condition("Suspended", "JobSuspended", "Job suspended", stamp))
        new.pop("startTime", None)
    else:
        if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
            conditions = _set_condition(conditions, _condition("Suspended", "JobResumed", "Job resumed", stamp, "False"))
        if completions is None:
            wanted = parallelism if succeeded == 0 else min(parallelism, len(active))
        else:
            wanted = max(0, min(parallelism, int(completions) - succeeded))
        if indexed:
            # Each index runs once at a time: extra pods for an index, or for a finished one, go.
            seen: set[int] = set()
            for pod in sorted(active, key=_deletion_order, reverse=True):
                index = pod_index(pod)
                if index is None or index in done_indexes or index in seen or index >= total:
                    removed.append(pod)
                else:
                    seen.add(index)
        kept = [p for p in active if p not in removed]
        excess = len(kept) - wanted
        if excess > 0:
            removed += sorted(kept, key=_deletion_order)[:excess]
        await _delete_pods(job, removed, key=key, client=client, recorder=recorder, expectations=expectations)
        if excess < 0:
            wait = backoff_remaining(failed_pods, failures, now)
            if wait > 0:
                requeue = wait
            else:
                indexes: list[int | None] = [None] * -excess
                if indexed:
                    busy = done_indexes | {pod_index(p) for p in kept}
                    indexes = list[int | None]([i for i in range(total) if i not in busy][:-excess])
                created = await _create_pods(job, indexes, key=key, client=client, recorder=recorder,
                                             expectations=expectations)
        if deadline is not None and started is not None:
            left = started + int(deadline) - now + 0.05
            requeue = left if requeue is None else min(requeue, left)

    still = [p for p in active if p not in removed]
    new.update(active=len(still) + created, succeeded=succeeded, failed=len(failed_pods),
               ready=sum(1 for p in still if is_ready(p)))
    if conditions:
        new["conditions"] = conditions
    if indexed and done_indexes:
        new["completedIndexes"] = format_indexes(done_indexes)
    if new != status:
        patch = {"status": {**new, **{k: None for k in status if k not in new}}}
        await client.patch("jobs", meta["name"], patch, namespace=meta["namespace"], subresource="status")
        if event is not None:
            await recorder.record(job, type=event[0], reason=event[1], message=event[2])
    if failure is not None or complete:
        return await _after_finish(job, new, key=key, client=client, now=now)
    return Result(requeue_after=requeue) if requeue is not None else None


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    expectations = Expectations(ttl=60.0)
    jobs, pods = ctx.informer("jobs"), ctx.informer("pods")

    def on_job(kind: str, job: Obj, old: Obj | None) -> None:
        if kind == "DELETED":
            expectations.forget(key_of(job))
        queue.add(key_of(job))

    def on_pod(kind: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job":
            return
        meta = pod["metadata"]
        key = f"{meta.get('namespace')}/{ref.get('name')}"
        if kind == "ADDED" and not meta.get("deletionTimestamp"):
            expectations.creation_observed(key)
        elif kind == "DELETED" or meta.get("deletionTimestamp"):
            expectations.deletion_observed(key, key_of(pod))
        queue.add(key)

    jobs.add_handler(on_job)
    pods.add_handler(on_pod)
    bound = functools.partial(reconcile, cache=Caches(jobs, pods), client=ctx.client, recorder=ctx.recorder,
                              expectations=expectations)
    return Controller(name="job", reconcile=bound, queue=queue, primary="jobs",
                      workers=getattr(ctx.settings, "workers", 4))
