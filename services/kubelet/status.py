"""A pod's status as the kubelet reports it: phase, conditions, container statuses.

Pure functions over what the worker knows of each container (``ContainerView``), so
the rules (Kubernetes' ``getPhase`` and its condition reasons) live in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _seconds(stamp: str | None) -> str | None:
    """Kubernetes reports container times to the second."""
    if not stamp:
        return stamp
    return stamp[:19] + "Z" if len(stamp) > 20 else stamp


@dataclass
class ContainerView:
    name: str
    image: str
    init: bool
    created: bool
    started_at: str | None
    finished: dict[str, Any] | None
    previous: dict[str, Any] | None
    restart_count: int
    ready: bool
    started: bool
    container_id: str | None
    backoff: str | None  # the CrashLoopBackOff message while waiting to restart


def terminated(exit: dict[str, Any], container_id: str | None) -> dict[str, Any]:
    code = int(exit.get("exitCode", 0))
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": exit.get("reason") or ("Completed" if code == 0 else "Error"),
        "startedAt": _seconds(exit.get("startedAt")) or _seconds(exit.get("finishedAt")),
        "finishedAt": _seconds(exit.get("finishedAt")),
    }
    if exit.get("message"):
        state["message"] = exit["message"]
    if container_id:
        state["containerID"] = container_id
    return state


def container_status(view: ContainerView, *, waiting_reason: str) -> dict[str, Any]:
    state: dict[str, Any]
    last: dict[str, Any]
    if view.finished is not None and view.backoff:
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": view.backoff}}
        last = {"terminated": terminated(view.finished, view.container_id)}
    elif view.finished is not None:
        state = {"terminated": terminated(view.finished, view.container_id)}
        last = {"terminated": terminated(view.previous, None)} if view.previous else {}
    elif view.created and view.started_at:
        state = {"running": {"startedAt": _seconds(view.started_at)}}
        last = {"terminated": terminated(view.previous, None)} if view.previous else {}
    else:
        state = {"waiting": {"reason": waiting_reason}}
        last = {"terminated": terminated(view.previous, None)} if view.previous else {}
    status: dict[str, Any] = {
        "name": view.name,
        "state": state,
        "lastState": last,
        "ready": view.ready,
        "restartCount": view.restart_count,
        "image": view.image,
        "imageID": "",
        "started": view.started,
    }
    if view.container_id and (view.created or view.finished is not None):
        status["containerID"] = view.container_id
    return status


def phase(pod: dict[str, Any], views: list[ContainerView]) -> str:
    """Kubernetes' getPhase, for the containers as they are now."""
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    inits = [v for v in views if v.init]
    for view in inits:
        if view.finished is not None and int(view.finished.get("exitCode", 0)) == 0:
            continue
        if view.finished is not None and policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for view in (v for v in views if not v.init):
        if view.finished is not None:
            stopped += 1
            if int(view.finished.get("exitCode", 0)) == 0:
                succeeded += 1
        elif view.created and view.started_at:
            running += 1
        elif view.previous is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def pod_status(
    pod: dict[str, Any],
    views: list[ContainerView],
    *,
    pod_ip: str,
    host_ip: str,
    start_time: str,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The status to write; ``previous`` (the last status written) keeps transition times."""
    current = phase(pod, views)
    inits = [v for v in views if v.init]
    mains = [v for v in views if not v.init]
    incomplete = [v.name for v in inits if not (v.finished is not None and int(v.finished.get("exitCode", 0)) == 0)]
    initialized = not incomplete
    unready = [v.name for v in mains if not v.ready]
    Row = tuple[str, bool, str | None, str | None]
    conditions: list[Row] = [
        ("PodReadyToStartContainers", bool(pod_ip), None, None),
        (
            "Initialized",
            initialized,
            None if initialized else "ContainersNotInitialized",
            None if initialized else f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
    ]
    ready: list[Row]
    if current == "Succeeded":
        ready = [("Ready", False, "PodCompleted", None), ("ContainersReady", False, "PodCompleted", None)]
    elif unready:
        message = f"containers with unready status: [{' '.join(unready)}]"
        ready = [("Ready", False, "ContainersNotReady", message), ("ContainersReady", False, "ContainersNotReady",
                                                                   message)]
    else:
        ready = [("Ready", True, None, None), ("ContainersReady", True, None, None)]
    conditions.extend(ready)
    before: dict[Any, dict[str, Any]] = {c.get("type"): c for c in ((previous or {}).get("conditions") or [])}
    for condition in (pod.get("status") or {}).get("conditions") or []:
        before.setdefault(condition.get("type"), condition)
    out = []
    for kind, ok, reason, note in conditions:
        value = "True" if ok else "False"
        old = before.get(kind) or {}
        item: dict[str, Any] = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == value else _now(),
        }
        if reason:
            item["reason"] = reason
        if note:
            item["message"] = note
        out.append(item)
    scheduled = before.get("PodScheduled") or {
        "type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": start_time,
    }
    out.append(scheduled)
    waiting_reason = "ContainerCreating" if initialized else "PodInitializing"
    status: dict[str, Any] = {
        "phase": current,
        "conditions": out,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip or None,
        "podIPs": [{"ip": pod_ip}] if pod_ip else None,
        "startTime": start_time,
        "containerStatuses": [container_status(v, waiting_reason=waiting_reason) for v in mains],
    }
    if inits:
        status["initContainerStatuses"] = [
            container_status(v, waiting_reason="PodInitializing") for v in inits
        ]
    return status
