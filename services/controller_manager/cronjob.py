"""The CronJob controller: create a Job from the template at each scheduled time.

As Kubernetes' (``cronjob_controllerv2``): the most recent scheduled time since
``status.lastScheduleTime`` (or the CronJob's creation) that has not run yet runs once,
as a Job named ``NAME-<minutes since the epoch of the scheduled time>`` owned by the
CronJob (so a second look, or a second controller, can never run it twice); earlier
missed times are not caught up. A time older than ``startingDeadlineSeconds`` is
missed instead. ``concurrencyPolicy`` Forbid skips a time while a Job still runs,
Replace deletes the running ones first, Allow runs them side by side; ``suspend``
stops new runs. ``status.active`` lists the unfinished Jobs, ``lastScheduleTime`` and
``lastSuccessfulTime`` are kept, and finished Jobs beyond the success/failure history
limits are deleted (their pods go with them). Schedules are read in ``timeZone``
(``shared/cron.py``). The clock can be sped up (``--cronjob-clock-scale``) so tests
need not wait whole minutes; at 1 it is the wall clock.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from services.controller_manager.rs_util import Obj, controller_ref, deleting, key_of, meta, owner_reference, parse_time
from shared import cron
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer
from shared.workqueue import Result, TerminalError, WorkQueue

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
#: Beyond this many missed times, Kubernetes warns that the schedule cannot be kept (it still runs the last).
TOO_MANY_MISSED = 100


@dataclass
class Caches:
    cronjobs: Informer
    jobs: Informer


def make_clock(scale: float) -> Callable[[], float]:
    """Seconds since the epoch, running ``scale`` times faster than the wall clock from now on."""
    if scale == 1:
        return time.time
    start = time.time()
    return lambda: start + (time.time() - start) * scale


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    cache = Caches(ctx.informer("cronjobs"), ctx.informer("jobs"))
    scale = float(getattr(ctx.settings, "cronjob_clock_scale", 1.0) or 1.0)
    cache.cronjobs.add_handler(lambda _kind, obj, _old: queue.add(key_of(obj)))

    def on_job(_kind: str, job: Obj, _old: Obj | None) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            queue.add(f"{meta(job).get('namespace') or ''}/{ref.get('name', '')}")

    cache.jobs.add_handler(on_job)
    recorder = EventRecorder(ctx.client, component="cronjob-controller")
    run = functools.partial(reconcile, cache=cache, client=ctx.client, recorder=recorder, clock=make_clock(scale),
                            scale=scale)
    return Controller(name="cronjob", reconcile=run, queue=queue, primary="cronjobs",
                      workers=getattr(ctx.settings, "workers", 4))


def finished(job: Obj) -> str | None:
    """"Complete" or "Failed" once the Job is done, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def job_name(cj: Obj, scheduled: datetime) -> str:
    return f"{meta(cj).get('name', '')}-{int(scheduled.timestamp() // 60)}"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reference(job: Obj) -> Obj:
    m = meta(job)
    return {"kind": "Job", "namespace": m.get("namespace"), "name": m.get("name"), "uid": m.get("uid"),
            "apiVersion": "batch/v1", "resourceVersion": m.get("resourceVersion")}


def most_recent(schedule: cron.Schedule, zone: Any, *, earliest: datetime,
                now: datetime) -> tuple[datetime | None, int, datetime | None]:
    """The latest scheduled time in (earliest, now], how many there were, and the next one after now."""
    latest: datetime | None = None
    count = 0
    current = schedule.next_after(earliest, zone)
    while current is not None and current <= now:
        latest, count = current, count + 1
        current = schedule.next_after(current, zone)
    return latest, count, current


def job_from_template(cj: Obj, scheduled: datetime) -> Obj:
    template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    m = meta(cj)
    annotations = {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: rfc3339(scheduled)}
    job_meta: Obj = {"name": job_name(cj, scheduled), "namespace": m.get("namespace"), "annotations": annotations,
                     "ownerReferences": [owner_reference(cj)]}
    if tmeta.get("labels"):
        job_meta["labels"] = tmeta["labels"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": template.get("spec") or {}}


async def reconcile(key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder,
                    clock: Callable[[], float], scale: float) -> Result | None:
    cj = cache.cronjobs.get(key)
    if cj is None:
        return None
    log = structlog.get_logger().bind(controller="cronjob", key=key)
    spec = cj.get("spec") or {}
    old_status = cj.get("status") or {}
    status: Obj = {k: v for k, v in old_status.items() if k not in ("active",)}
    uid = meta(cj).get("uid")
    owned = [j for j in cache.jobs.list(namespace=meta(cj).get("namespace"))
             if (ref := controller_ref(j)) is not None and ref.get("uid") == uid]
    running = [j for j in owned if not finished(j) and not deleting(j)]
    for job in owned:
        if finished(job) == "Complete":
            done = (job.get("status") or {}).get("completionTime")
            if done and (parse_time(done) or 0) > (parse_time(status.get("lastSuccessfulTime")) or 0):
                status["lastSuccessfulTime"] = done
    requeue: float | None = None
    if not deleting(cj) and not spec.get("suspend"):
        try:
            schedule = cron.parse(str(spec.get("schedule") or ""))
            zone = cron.zone(spec.get("timeZone"))
        except ValueError as exc:
            raise TerminalError(f"unparseable schedule: {exc}") from exc
        now = datetime.fromtimestamp(clock(), UTC)
        last = parse_time(status.get("lastScheduleTime")) or parse_time(meta(cj).get("creationTimestamp"))
        earliest = datetime.fromtimestamp(last or clock(), UTC)
        deadline = spec.get("startingDeadlineSeconds")
        if isinstance(deadline, int) and earliest < now - timedelta(seconds=deadline):
            earliest = now - timedelta(seconds=deadline)
        scheduled, missed, upcoming = most_recent(schedule, zone, earliest=earliest, now=now)
        if missed > TOO_MANY_MISSED:
            await recorder.record(cj, reason="TooManyMissedTimes", type="Warning",
                                  message=f"too many missed start times: {missed}")
        if scheduled is not None:
            created = await _run(cj, scheduled, running, owned, client=client, recorder=recorder, log=log)
            if any(meta(j).get("name") == job_name(cj, scheduled) for j in owned):
                status["lastScheduleTime"] = rfc3339(scheduled)
            if created is not None:
                status["lastScheduleTime"] = rfc3339(scheduled)
                if not finished(created):
                    running = [*[j for j in running if meta(j).get("name") != meta(created).get("name")], created]
        if upcoming is not None:
            requeue = max((upcoming - now).total_seconds() / scale, 0.0) + 0.1
    status["active"] = [reference(j) for j in sorted(running, key=lambda j: meta(j).get("name", ""))] or None
    status = {k: v for k, v in status.items() if v is not None}
    await _clean_history(cj, owned, client=client, log=log)
    if status != old_status:
        body = copy.deepcopy(cj)
        body["status"] = status
        try:
            await client.update("cronjobs", body, subresource="status")
        except ApiClientError as exc:
            if exc.code == 404:
                return None
            if exc.code != 409:
                raise
            return Result(requeue_after=0.2)
    return Result(requeue_after=requeue) if requeue is not None else None


async def _run(cj: Obj, scheduled: datetime, running: list[Obj], owned: list[Obj], *, client: BusClient,
               recorder: EventRecorder, log: Any) -> Obj | None:
    """Start the Job for ``scheduled`` as the concurrency policy allows; the Job, or None when none started."""
    spec = cj.get("spec") or {}
    name = job_name(cj, scheduled)
    if any(meta(j).get("name") == name for j in owned):
        return None  # already started (the cache has it)
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and running:
        log.info("skipping a scheduled time: a job still runs", scheduled=rfc3339(scheduled))
        return None
    if policy == "Replace":
        for old in running:
            m = meta(old)
            try:
                await client.delete("jobs", m.get("name", ""), namespace=m.get("namespace"),
                                    body={"propagationPolicy": "Background"})
            except ApiClientError as exc:
                if exc.code != 404:
                    raise
            await recorder.record(cj, reason="SuccessfulDelete", message=f"Deleted job {m.get('name')}")
    try:
        created: Obj = await client.create("jobs", job_from_template(cj, scheduled),
                                           namespace=meta(cj).get("namespace"))
    except ApiClientError as exc:
        if exc.code == 409:  # made already (the cache lags): ours if it names this CronJob its controller
            try:
                existing: Obj = await client.get("jobs", name, namespace=meta(cj).get("namespace"))
            except ApiClientError:
                return None
            ref = controller_ref(existing)
            return existing if ref is not None and ref.get("uid") == meta(cj).get("uid") else None
        await recorder.record(cj, reason="FailedCreate", type="Warning",
                              message=f"Error creating job: {exc.status.get('message')}")
        raise
    log.info("created job", job=name, scheduled=rfc3339(scheduled))
    await recorder.record(cj, reason="SuccessfulCreate", message=f"Created job {name}")
    return created


async def _clean_history(cj: Obj, owned: list[Obj], *, client: BusClient, log: Any) -> None:
    spec = cj.get("spec") or {}
    for state, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                         ("Failed", spec.get("failedJobsHistoryLimit", 1))):
        if limit is None:
            continue
        done = sorted((j for j in owned if finished(j) == state and not deleting(j)),
                      key=lambda j: ((j.get("status") or {}).get("startTime") or meta(j).get("creationTimestamp")
                                     or "", meta(j).get("name", "")))
        for job in done[: max(len(done) - int(limit), 0)]:
            m = meta(job)
            try:
                await client.delete("jobs", m.get("name", ""), namespace=m.get("namespace"),
                                    body={"propagationPolicy": "Background"})
            except ApiClientError as exc:
                if exc.code != 404:
                    log.warning("could not delete an old job", job=m.get("name"), error=str(exc))
                continue
            log.info("deleted old job", job=m.get("name"), state=state)
