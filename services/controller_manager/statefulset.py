"""The StatefulSet controller: pods with stable names ``NAME-0`` … ``NAME-(N-1)``.

As Kubernetes' (``pkg/controller/statefulset``), simplified where redkube lacks the
machinery: each pod is named for its ordinal and labelled
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash`` (``NAME-<template hash>``; there are no ControllerRevision
objects, so a pod is always created from the current template). With the default
``OrderedReady`` policy, pod i+1 is created only once pod i is Running and Ready, a
missing or terminating pod halts progress, and scaling down removes the highest ordinal
first, one at a time, only while the rest are healthy; ``Parallel`` creates and deletes
without waiting. A deleted pod comes back under the same name once the old one is gone.
A RollingUpdate deletes the highest out-of-date pod at or above ``partition``, one at a
time, once every pod is Running and Ready; OnDelete leaves them. ``volumeClaimTemplates``
are kept on the object but make no claims: redkube has no volumes.
"""

from __future__ import annotations

import copy
import functools
import re
import time
from dataclasses import dataclass
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from services.controller_manager.deploy_util import template_hash
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
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer
from shared.workqueue import Result, WorkQueue

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-(\d+)$")


@dataclass
class Caches:
    statefulsets: Informer
    pods: Informer


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    cache = Caches(ctx.informer("statefulsets"), ctx.informer("pods"))
    expectations = Expectations()
    cache.statefulsets.add_handler(lambda _kind, obj, _old: queue.add(key_of(obj)))
    cache.pods.add_handler(functools.partial(on_pod, cache=cache, queue=queue, expectations=expectations))
    recorder = EventRecorder(ctx.client, component="statefulset-controller")
    run = functools.partial(reconcile, cache=cache, client=ctx.client, recorder=recorder, expectations=expectations)
    return Controller(name="statefulset", reconcile=run, queue=queue, primary="statefulsets",
                      workers=getattr(ctx.settings, "workers", 4))


def owner_of(pod: Obj, cache: Caches) -> str | None:
    ref = controller_ref(pod)
    if ref is None or ref.get("kind") != "StatefulSet":
        return None
    key = f"{meta(pod).get('namespace') or ''}/{ref.get('name', '')}"
    sts = cache.statefulsets.get(key)
    return key if sts is not None and meta(sts).get("uid") == ref.get("uid") else None


def on_pod(kind: str, pod: Obj, old: Obj | None, *, cache: Caches, queue: WorkQueue,
           expectations: Expectations) -> None:
    owner = owner_of(pod, cache)
    if owner is None:
        return
    observe_owned_pod(kind, pod, old, owner=owner, expectations=expectations)
    queue.add(owner)


def ordinal(sts_name: str, pod: Obj) -> int | None:
    match = _ORDINAL.match(str(meta(pod).get("name", "")))
    if match is None or match.group(1) != sts_name:
        return None
    return int(match.group(2))


def revision_of(sts: Obj) -> str:
    return f"{meta(sts).get('name', '')}-{template_hash((sts.get('spec') or {}).get('template'))}"


def healthy(pod: Obj) -> bool:
    """Running and Ready, and not on its way out: what OrderedReady waits for."""
    return (not deleting(pod) and (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod))


def pod_revision(pod: Obj) -> str | None:
    value = (meta(pod).get("labels") or {}).get(REVISION_LABEL)
    return str(value) if value is not None else None


@dataclass
class Plan:
    create: list[int]
    delete: list[Obj]


def plan(sts: Obj, pods: dict[int, Obj], *, revision: str) -> Plan:
    """What to do next, as the rules of ``podManagementPolicy`` and ``updateStrategy`` allow."""
    spec = sts.get("spec") or {}
    want = int(spec.get("replicas", 1) or 0)
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    out = Plan([], [])
    # Failed pods are deleted so they can be made again.
    for _, failed in sorted(pods.items()):
        if not deleting(failed) and (failed.get("status") or {}).get("phase") == "Failed":
            out.delete.append(failed)
    if out.delete:
        return out
    for i in range(want):
        existing = pods.get(i)
        if existing is None:
            out.create.append(i)
            if ordered:
                return out
            continue
        if ordered and not healthy(existing):
            return out
    condemned = sorted((i for i in pods if i >= want), reverse=True)
    if condemned:
        if not ordered:
            out.delete += [pods[i] for i in condemned if not deleting(pods[i])]
            return out
        if any(deleting(p) for p in pods.values()) or not all(healthy(pods[i]) for i in range(want)):
            return out
        out.delete.append(pods[condemned[0]])
        return out
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or out.create:
        return out
    if any(deleting(p) for p in pods.values()) or not all(i in pods and healthy(pods[i]) for i in range(want)):
        return out
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    for i in range(want - 1, partition - 1, -1):
        if pod_revision(pods[i]) != revision:
            out.delete.append(pods[i])
            break
    return out


async def reconcile(key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder,
                    expectations: Expectations) -> Result | None:
    sts = cache.statefulsets.get(key)
    if sts is None:
        expectations.forget(key)
        return None
    log = structlog.get_logger().bind(controller="statefulset", key=key)
    name = str(meta(sts).get("name", ""))
    uid = meta(sts).get("uid")
    pods: dict[int, Obj] = {}
    for pod in cache.pods.list(namespace=meta(sts).get("namespace")):
        ref = controller_ref(pod)
        index = ordinal(name, pod)
        if ref is not None and ref.get("uid") == uid and index is not None:
            pods[index] = pod
    revision = revision_of(sts)
    error: ApiClientError | None = None
    if expectations.satisfied(key) and not deleting(sts):
        todo = plan(sts, pods, revision=revision)
        error = await _act(sts, todo, revision=revision, key=key, client=client, recorder=recorder,
                           expectations=expectations, log=log)
    status, wait = _status(sts, pods, revision=revision, now=time.time())
    if any((sts.get("status") or {}).get(k) != v for k, v in status.items()):
        body = copy.deepcopy(sts)
        body["status"] = {**(sts.get("status") or {}), **status}
        try:
            await client.update("statefulsets", body, subresource="status")
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


def pod_for(sts: Obj, index: int, *, revision: str) -> Obj:
    m = meta(sts)
    spec = sts.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    pod_name = f"{m.get('name', '')}-{index}"
    labels = {**(tmeta.get("labels") or {}), REVISION_LABEL: revision, POD_NAME_LABEL: pod_name,
              POD_INDEX_LABEL: str(index)}
    pod_meta: Obj = {"name": pod_name, "namespace": m.get("namespace"), "labels": labels,
                     "ownerReferences": [owner_reference(sts)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = tmeta["annotations"]
    pod_spec = template.get("spec") or {}
    pod_spec.setdefault("hostname", pod_name)
    if spec.get("serviceName"):
        pod_spec.setdefault("subdomain", spec["serviceName"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


async def _act(sts: Obj, todo: Plan, *, revision: str, key: str, client: BusClient, recorder: EventRecorder,
               expectations: Expectations, log: Any) -> ApiClientError | None:
    if not todo.create and not todo.delete:
        return None
    expectations.expect(key, adds=len(todo.create), deletes=[key_of(p) for p in todo.delete])
    namespace = meta(sts).get("namespace")
    failure: ApiClientError | None = None
    for index in todo.create:
        body = pod_for(sts, index, revision=revision)
        try:
            await client.create("pods", body, namespace=namespace)
        except ApiClientError as exc:
            expectations.lower(key, adds=1)
            if exc.code == 409:
                # The name is still taken (an old pod on its way out, perhaps not ours): retry with back-off.
                failure = failure or exc
            else:
                await recorder.record(sts, reason="FailedCreate", type="Warning",
                                      message=f"create Pod {body['metadata']['name']} in StatefulSet "
                                              f"{meta(sts).get('name')} failed error: {exc.status.get('message')}")
                failure = failure or exc
            continue
        log.info("created pod", pod=body["metadata"]["name"])
        await recorder.record(sts, reason="SuccessfulCreate",
                              message=f"create Pod {body['metadata']['name']} in StatefulSet "
                                      f"{meta(sts).get('name')} successful")
    for pod in todo.delete:
        m = meta(pod)
        try:
            await client.delete("pods", m.get("name", ""), namespace=namespace,
                                body={"preconditions": {"uid": m.get("uid")}})
        except ApiClientError as exc:
            expectations.lower(key, deletes=[key_of(pod)])
            if exc.code != 404:
                failure = failure or exc
            continue
        log.info("deleted pod", pod=m.get("name"))
        await recorder.record(sts, reason="SuccessfulDelete",
                              message=f"delete Pod {m.get('name')} in StatefulSet {meta(sts).get('name')} successful")
    return failure


def _status(sts: Obj, pods: dict[int, Obj], *, revision: str, now: float) -> tuple[Obj, float | None]:
    spec = sts.get("spec") or {}
    old = sts.get("status") or {}
    want = int(spec.get("replicas", 1) or 0)
    min_ready = int(spec.get("minReadySeconds") or 0)
    current_revision = old.get("currentRevision") or revision
    live = [p for p in pods.values() if not deleting(p)]
    ready = sum(1 for p in live if is_ready(p))
    available = 0
    wait: float | None = None
    for pod in live:
        left = available_in(pod, min_ready, now)
        if left == 0:
            available += 1
        elif left is not None:
            wait = left if wait is None else min(wait, left)
    updated = sum(1 for p in live if pod_revision(p) == revision)
    current = sum(1 for p in live if pod_revision(p) == current_revision)
    # The update is complete once every wanted pod is ready at the new revision.
    if current_revision != revision and updated == want and ready == want and len(live) == want:
        current_revision, current = revision, updated
    return {
        "replicas": len(live),
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "observedGeneration": int(meta(sts).get("generation") or 1),
    }, wait
