"""Server-side printing: the ``Table`` kubectl asks for (``Accept: …;as=Table``).

Columns and cells follow kube-apiserver's printers (``pkg/printers/internalversion``)
kind by kind, including the pod STATUS rules (CrashLoopBackOff, Completed,
Init:N/M, Terminating, "3 (5m ago)" restarts); priority 1 columns are the extra
ones ``-o wide`` shows. The ``redkube get`` client renders these same tables.
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
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def age(timestamp: str | None, now: float | None = None) -> str:
    then = _epoch(timestamp)
    if then is None:
        return "<unknown>"
    seconds = (now or time.time()) - then
    if seconds < -1:
        return "<invalid>"
    return human_duration(seconds)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _restartable(container: dict[str, Any] | None) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def _terminated_reason(terminated: dict[str, Any], prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def pod_summary(pod: dict[str, Any]) -> tuple[str, int, int, str]:
    """(status, ready, total, restarts) exactly as kubectl's printPod computes them.

    The reason of a waiting or terminated container wins over the phase; init
    containers show as ``Init:N/M`` (or ``Init:<reason>``); a pod being deleted shows
    ``Terminating``; restarts carry "(5m ago)" from the last termination.
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if _restartable(c))
    ready = restarts = sidecar_restarts = 0
    last_restart = sidecar_last_restart = 0.0
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    initializing = False
    init_count = len(spec.get("initContainers") or [])
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(container.get("restartCount") or 0)
        finished = _epoch(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")) or 0.0
        last_restart = max(last_restart, finished)
        sidecar = _restartable(init_specs.get(container.get("name")))
        if sidecar:
            sidecar_restarts += int(container.get("restartCount") or 0)
            sidecar_last_restart = max(sidecar_last_restart, finished)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated and terminated.get("exitCode") == 0:
            continue
        if sidecar and container.get("started"):
            ready += 1 if container.get("ready") else 0
            continue
        if terminated:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{init_count}"
        initializing = True
        break
    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            ended = _epoch(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
            last_restart = max(last_restart, ended or 0.0)
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated:
                reason = _terminated_reason(terminated)
            elif container.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"
    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({human_duration(time.time() - last_restart)} ago)"
    return reason or "Unknown", ready, total, restarts_text


def pod_status(pod: dict[str, Any]) -> str:
    """The STATUS column as kubectl computes it."""
    return pod_summary(pod)[0]


def _readiness_gates(pod: dict[str, Any]) -> str:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    true = {c.get("type") for c in (pod.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    return f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}"


def _pod_row(pod: dict[str, Any]) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason, ready, total, restarts = pod_summary(pod)
    return [
        _meta(pod).get("name"),
        f"{ready}/{total}",
        reason,
        restarts,
        age(_meta(pod).get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        _readiness_gates(pod),
    ]


def _node_row(node: dict[str, Any]) -> Row:
    status, spec = node.get("status") or {}, node.get("spec") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown" if ready is None else {"True": "Ready", "False": "NotReady"}.get(ready.get("status"), "NotReady")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta(node).get("labels") or {}
    roles = {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    roles.discard("")
    info = status.get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        _meta(node).get("name"),
        state,
        ",".join(sorted(roles)) or "<none>",
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


def _external_ip(svc: dict[str, Any]) -> str:
    """kubectl's EXTERNAL-IP: external IPs, load-balancer ingress (or <pending>), or the external name."""
    spec = svc.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        found = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        return ",".join(found + external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    return "<unknown>"


def _service_row(svc: dict[str, Any]) -> Row:
    spec = svc.get("spec") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [
        _meta(svc).get("name"),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        _external_ip(svc),
        _ports(svc),
        age(_meta(svc).get("creationTimestamp")),
        selector,
    ]


def _endpoints_row(ep: dict[str, Any]) -> Row:
    """At most three ``ip:port`` (subset by subset, port by port), then "+ N more..."."""
    shown: list[str] = []
    count = 0
    for subset in ep.get("subsets") or []:
        addresses = subset.get("addresses") or []
        for port in subset.get("ports") or [None]:
            count += len(addresses)
            for address in addresses:
                if len(shown) == 3:
                    break
                ip = str(address.get("ip", ""))
                host = f"[{ip}]" if ":" in ip else ip
                shown.append(f"{host}:{port.get('port')}" if port else ip)
    text = ",".join(shown) + (f" + {count - 3} more..." if count > 3 else "")
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
    true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in true:
        state = "Complete"
    elif "Failed" in true:
        state = "Failed"
    elif _meta(job).get("deletionTimestamp"):
        state = "Terminating"
    elif "Suspended" in true:
        state = "Suspended"
    elif "FailureTarget" in true:
        state = "FailureTarget"
    elif "SuccessCriteriaMet" in true:
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        done = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        done = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        done = f"{succeeded}/1"
    start, end = _epoch(status.get("startTime")), _epoch(status.get("completionTime"))
    duration = "" if start is None else human_duration((end if end is not None else time.time()) - start)
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


def _event_source(ev: dict[str, Any]) -> str:
    source = ev.get("source") or {}
    component, host = source.get("component") or "", source.get("host") or ""
    if not component and not host:
        component, host = ev.get("reportingComponent") or "", ev.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_row(ev: dict[str, Any]) -> Row:
    """All ten columns the API server prints for events (five without ``-o wide``)."""
    involved = ev.get("involvedObject") or {}
    first = age(ev.get("firstTimestamp") or ev.get("eventTime"))
    last = age(ev.get("lastTimestamp")) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 1
    series = ev.get("series") or {}
    if series:
        last = age(series.get("lastObservedTime"))
        count = series.get("count") or count
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last,
        ev.get("type", ""),
        ev.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        _event_source(ev),
        (ev.get("message") or "").strip(),
        first,
        count,
        _meta(ev).get("name"),
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


def _created_at(obj: dict[str, Any]) -> Row:
    return [_meta(obj).get("name"), _meta(obj).get("creationTimestamp") or ""]


def _binding_row(binding: dict[str, Any]) -> Row:
    ref = binding.get("roleRef") or {}
    subjects = binding.get("subjects") or []

    def names(kind: str) -> str:
        found = [
            f"{s.get('namespace')}/{s.get('name')}" if kind == "ServiceAccount" else str(s.get("name"))
            for s in subjects
            if s.get("kind") == kind
        ]
        return ", ".join(found)

    return [
        _meta(binding).get("name"),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(_meta(binding).get("creationTimestamp")),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


def _configmap_row(cm: dict[str, Any]) -> Row:
    data = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_meta(cm).get("name"), data, age(_meta(cm).get("creationTimestamp"))]


def _secret_row(secret: dict[str, Any]) -> Row:
    data = len(secret.get("data") or {}) + len(secret.get("stringData") or {})
    return [_meta(secret).get("name"), secret.get("type", "Opaque"), data, age(_meta(secret).get("creationTimestamp"))]


def _serviceaccount_row(sa: dict[str, Any]) -> Row:
    return [_meta(sa).get("name"), len(sa.get("secrets") or []), age(_meta(sa).get("creationTimestamp"))]


def _default_row(obj: dict[str, Any]) -> Row:
    return [_meta(obj).get("name"), age(_meta(obj).get("creationTimestamp"))]


def _daemonset_row(ds: dict[str, Any]) -> Row:
    spec, status = ds.get("spec") or {}, ds.get("status") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    names, images = _containers(ds)
    return [
        _meta(ds).get("name"),
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        ",".join(f"{k}={node_selector[k]}" for k in sorted(node_selector)) or "<none>",
        age(_meta(ds).get("creationTimestamp")),
        names,
        images,
        selectors.to_string(spec.get("selector")),
    ]


def _statefulset_row(sts: dict[str, Any]) -> Row:
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    names, images = _containers(sts)
    return [
        _meta(sts).get("name"),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        age(_meta(sts).get("creationTimestamp")),
        names,
        images,
    ]


def _cronjob_row(cj: dict[str, Any]) -> Row:
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers({"spec": job_spec})
    last = status.get("lastScheduleTime")
    return [
        _meta(cj).get("name"),
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        str(bool(spec.get("suspend"))),
        len(status.get("active") or []),
        age(last) if last else "<none>",
        age(_meta(cj).get("creationTimestamp")),
        names,
        images,
        selectors.to_string(job_spec.get("selector")) if job_spec.get("selector") else "<none>",
    ]


NAME: Column = ("Name", "string", 0)
AGE: Column = ("Age", "string", 0)
BINDING_COLUMNS: list[Column] = [
    NAME,
    ("Role", "string", 0),
    AGE,
    ("Users", "string", 1),
    ("Groups", "string", 1),
    ("ServiceAccounts", "string", 1),
]
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
    "daemonsets": (
        [
            NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _daemonset_row,
    ),
    "statefulsets": (
        [NAME, ("Ready", "string", 0), AGE, ("Containers", "string", 1), ("Images", "string", 1)],
        _statefulset_row,
    ),
    "cronjobs": (
        [
            NAME,
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "date", 0),
            AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _cronjob_row,
    ),
    "events": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
        _event_row,
    ),
    "leases": ([NAME, ("Holder", "string", 0), AGE], _lease_row),
    "roles": ([NAME, ("Created At", "date", 0)], _created_at),
    "clusterroles": ([NAME, ("Created At", "date", 0)], _created_at),
    "rolebindings": (BINDING_COLUMNS, _binding_row),
    "clusterrolebindings": (BINDING_COLUMNS, _binding_row),
    "configmaps": ([NAME, ("Data", "integer", 0), AGE], _configmap_row),
    "secrets": ([NAME, ("Type", "string", 0), ("Data", "integer", 0), AGE], _secret_row),
    "serviceaccounts": ([NAME, ("Secrets", "integer", 0), AGE], _serviceaccount_row),
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
