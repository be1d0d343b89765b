"""Server-side printing: the ``Table`` kubectl asks for (``Accept: …;as=Table``).

Columns follow what kube-apiserver prints for each kind; priority 1 columns are the
extra ones ``-o wide`` shows.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from shared import selectors

Row = list[Any]
Column = tuple[str, str, int]  # name, type, priority


def human_duration(seconds: float) -> str:
    """kubectl's age format: 45s, 5m10s, 3h, 2d5h, 400d."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d"


def age(timestamp: str | None, now: float | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "<unknown>"
    return human_duration((now or time.time()) - then)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def pod_status(pod: dict[str, Any]) -> str:
    """The STATUS column as kubectl computes it (reason of a waiting/terminated container wins)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for index, init in enumerate(status.get("initContainerStatuses") or []):
        state = init.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode") == 0:
            continue
        if state.get("terminated"):
            reason = f"Init:{state['terminated'].get('reason') or 'Error'}"
            break
        if (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            reason = f"Init:{state['waiting']['reason']}"
            break
        reason = f"Init:{index}/{len((pod.get('spec') or {}).get('initContainers') or [])}"
        break
    else:
        running = False
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif state.get("terminated"):
                code = state["terminated"].get("exitCode", 0)
                reason = (
                    f"ExitCode:{code}"
                    if not state["terminated"].get("signal")
                    else f"Signal:{state['terminated']['signal']}"
                )
            elif state.get("running") and container.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if _meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod: dict[str, Any]) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return [
        _meta(pod).get("name"),
        f"{ready}/{len(spec.get('containers') or [])}",
        pod_status(pod),
        restarts,
        age(_meta(pod).get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _node_row(node: dict[str, Any]) -> Row:
    status, spec = node.get("status") or {}, node.get("spec") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown" if ready is None else {"True": "Ready", "False": "NotReady"}.get(ready.get("status"), "NotReady")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta(node).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")) or ["<none>"]
    info = status.get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        _meta(node).get("name"),
        state,
        ",".join(roles),
        age(_meta(node).get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _ports(service: dict[str, Any]) -> str:
    parts = []
    for port in (service.get("spec") or {}).get("ports") or []:
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _service_row(svc: dict[str, Any]) -> Row:
    spec = svc.get("spec") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [
        _meta(svc).get("name"),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        ",".join(spec.get("externalIPs") or []) or "<none>",
        _ports(svc),
        age(_meta(svc).get("creationTimestamp")),
        selector,
    ]


def _endpoints_row(ep: dict[str, Any]) -> Row:
    targets = []
    for subset in ep.get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                targets.append(f"{address.get('ip')}:{port.get('port')}" if port else address.get("ip"))
    text = ",".join(targets[:3]) + (f" + {len(targets) - 3} more..." if len(targets) > 3 else "")
    return [_meta(ep).get("name"), text or "<none>", age(_meta(ep).get("creationTimestamp"))]


def _containers(obj: dict[str, Any]) -> tuple[str, str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _replicaset_row(rs: dict[str, Any]) -> Row:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    names, images = _containers(rs)
    return [
        _meta(rs).get("name"),
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(_meta(rs).get("creationTimestamp")),
        names,
        images,
        selectors.to_string(spec.get("selector")),
    ]


def _deployment_row(dep: dict[str, Any]) -> Row:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    names, images = _containers(dep)
    return [
        _meta(dep).get("name"),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(_meta(dep).get("creationTimestamp")),
        names,
        images,
        selectors.to_string(spec.get("selector")),
    ]


def _job_row(job: dict[str, Any]) -> Row:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = (
        "Complete"
        if conditions.get("Complete") == "True"
        else "Failed"
        if conditions.get("Failed") == "True"
        else "Suspended"
        if spec.get("suspend")
        else "Running"
    )
    completions = spec.get("completions")
    done = f"{status.get('succeeded', 0)}/{completions if completions is not None else 1}"
    duration = ""
    if status.get("startTime"):
        start = status["startTime"]
        end = status.get("completionTime")
        if end:
            duration = human_duration(
                calendar.timegm(time.strptime(end[:19], "%Y-%m-%dT%H:%M:%S"))
                - calendar.timegm(time.strptime(start[:19], "%Y-%m-%dT%H:%M:%S"))
            )
        else:
            duration = age(start)
    names, images = _containers(job)
    return [
        _meta(job).get("name"),
        state,
        done,
        duration,
        age(_meta(job).get("creationTimestamp")),
        names,
        images,
        selectors.to_string(spec.get("selector")),
    ]


def _event_row(ev: dict[str, Any]) -> Row:
    involved = ev.get("involvedObject") or {}
    last = ev.get("lastTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp")
    return [
        age(last),
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}",
        ev.get("message", ""),
    ]


def _namespace_row(ns: dict[str, Any]) -> Row:
    return [
        _meta(ns).get("name"),
        (ns.get("status") or {}).get("phase", "Active"),
        age(_meta(ns).get("creationTimestamp")),
    ]


def _lease_row(lease: dict[str, Any]) -> Row:
    return [
        _meta(lease).get("name"),
        (lease.get("spec") or {}).get("holderIdentity", ""),
        age(_meta(lease).get("creationTimestamp")),
    ]


def _default_row(obj: dict[str, Any]) -> Row:
    return [_meta(obj).get("name"), age(_meta(obj).get("creationTimestamp"))]


NAME: Column = ("Name", "string", 0)
AGE: Column = ("Age", "string", 0)
PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any]], Row]]] = {
    "pods": (
        [
            NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    "nodes": (
        [
            NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node_row,
    ),
    "namespaces": ([NAME, ("Status", "string", 0), AGE], _namespace_row),
    "services": (
        [
            NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            AGE,
            ("Selector", "string", 1),
        ],
        _service_row,
    ),
    "endpoints": ([NAME, ("Endpoints", "string", 0), AGE], _endpoints_row),
    "replicasets": (
        [
            NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _replicaset_row,
    ),
    "deployments": (
        [
            NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment_row,
    ),
    "jobs": (
        [
            NAME,
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _job_row,
    ),
    "events": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event_row,
    ),
    "leases": ([NAME, ("Holder", "string", 0), AGE], _lease_row),
}


def columns(plural: str) -> list[dict[str, Any]]:
    cols, _ = PRINTERS.get(plural, ([NAME, AGE], _default_row))
    return [
        {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": p}
        for n, t, p in cols
    ]


def row(plural: str, obj: dict[str, Any], include: str = "Metadata") -> dict[str, Any]:
    _, printer = PRINTERS.get(plural, ([NAME, AGE], _default_row))
    if include == "Object":
        embedded: dict[str, Any] | None = obj
    elif include == "None":
        embedded = None
    else:
        embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(obj)}
    return {"cells": printer(obj), "object": embedded}


def table(
    plural: str,
    objects: list[dict[str, Any]],
    *,
    resource_version: str | None = None,
    include: str = "Metadata",
    with_columns: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    body: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "rows": [row(plural, o, include) for o in objects],
    }
    body["columnDefinitions"] = columns(plural) if with_columns else []
    return body
