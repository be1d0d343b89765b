"""``redkube describe KIND NAME``: the object's main fields, then its Events.

Sections follow kubectl's describers for the kinds people describe most (Pod, Node,
Deployment, ReplicaSet, Service, Job); any other kind gets the metadata and a YAML
dump of its spec and status. Events are listed with the field selector kubectl uses:
``involvedObject.name=…,involvedObject.namespace=…``.
"""

from __future__ import annotations

import argparse
import calendar
import time
from typing import Any

import yaml

from services.redkube.cli_client import Client, resolve
from services.redkube.cli_printers import layout
from shared import selectors
from shared.resources import Resource

Lines = list[str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", help="kind, or KIND/NAME")
    parser.add_argument("names", nargs="*", help="object names")


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        seconds = int(time.time() - calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return "<unknown>"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


WIDTH = 18  # kubectl's describers align values after the longest common label ("Service Account:  ")


def _field(lines: Lines, label: str, value: Any, indent: int = 0) -> None:
    text = "<none>" if value in (None, "", [], {}) else str(value)
    width = WIDTH - indent if indent == 0 else 16
    head = f"{label}:"
    lines.append(f"{' ' * indent}{head:<{width}}{text}" if len(head) < width else f"{' ' * indent}{head}  {text}")


def _mapping(lines: Lines, label: str, values: dict[str, Any] | None) -> None:
    items = sorted((values or {}).items())
    if not items:
        _field(lines, label, None)
        return
    first, *rest = (f"{k}={v}" for k, v in items)
    _field(lines, label, first)
    lines += [" " * WIDTH + item for item in rest]


def _conditions(lines: Lines, conditions: list[dict[str, Any]] | None, *, columns: tuple[str, ...]) -> None:
    if not conditions:
        return
    lines.append("Conditions:")
    rows = [list(columns), ["-" * len(c) for c in columns]]
    for condition in conditions:
        rows.append([str(condition.get(_key(c)) or "") for c in columns])
    lines += ["  " + line for line in layout(rows).splitlines()]


def _key(column: str) -> str:
    return {"Type": "type", "Status": "status", "Reason": "reason", "Message": "message"}.get(column, column)


def _meta(lines: Lines, obj: dict[str, Any], resource: Resource) -> None:
    meta = obj.get("metadata") or {}
    _field(lines, "Name", meta.get("name"))
    if resource.namespaced:
        _field(lines, "Namespace", meta.get("namespace"))
    _mapping(lines, "Labels", meta.get("labels"))
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    _mapping(lines, "Annotations", annotations)
    _field(lines, "CreationTimestamp", meta.get("creationTimestamp"))
    if meta.get("deletionTimestamp"):
        _field(lines, "Deletion", meta["deletionTimestamp"])


def _state(state: dict[str, Any] | None) -> tuple[str, list[str]]:
    state = state or {}
    for name, details in state.items():
        extra = [f"{k}: {v}" for k, v in (details or {}).items() if k in ("reason", "exitCode", "startedAt", "message")]
        return name.capitalize(), extra
    return "Waiting", []


def _containers(
    lines: Lines, label: str, containers: list[dict[str, Any]], statuses: list[dict[str, Any]] | None
) -> None:
    """Containers with their state; a template (``statuses`` None) has no state to show."""
    if not containers:
        return
    by_name = {s.get("name"): s for s in statuses or []}
    lines.append(f"{label}:")
    for container in containers:
        status = by_name.get(container.get("name"), {})
        lines.append(f"  {container.get('name')}:")
        _field(lines, "Image", container.get("image"), 4)
        if container.get("command"):
            _field(lines, "Command", " ".join(container["command"]), 4)
        if container.get("args"):
            _field(lines, "Args", " ".join(container["args"]), 4)
        ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in container.get("ports") or [])
        _field(lines, "Port", ports, 4)
        if statuses is not None:
            state, extra = _state(status.get("state"))
            _field(lines, "State", state, 4)
            lines += [" " * 6 + e for e in extra]
            _field(lines, "Ready", str(bool(status.get("ready"))), 4)
            _field(lines, "Restart Count", status.get("restartCount", 0), 4)
        requests = ((container.get("resources") or {}).get("requests")) or {}
        if requests:
            lines.append("    Requests:")
            lines += [f"      {k}:  {v}" for k, v in sorted(requests.items())]
        env = container.get("env") or []
        if env:
            lines.append("    Environment:")
            lines += [f"      {e.get('name')}:  {e.get('value', '<set from source>')}" for e in env]


def _pod(lines: Lines, pod: dict[str, Any]) -> None:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    _field(lines, "Node", spec.get("nodeName"))
    _field(lines, "Start Time", status.get("startTime"))
    _field(
        lines, "Status", "Terminating" if (pod.get("metadata") or {}).get("deletionTimestamp") else status.get("phase")
    )
    if status.get("reason"):
        _field(lines, "Reason", status["reason"])
    _field(lines, "IP", status.get("podIP"))
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    _field(lines, "Controlled By", ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners))
    _containers(lines, "Init Containers", spec.get("initContainers") or [], status.get("initContainerStatuses") or [])
    _containers(lines, "Containers", spec.get("containers") or [], status.get("containerStatuses") or [])
    _conditions(lines, status.get("conditions"), columns=("Type", "Status"))
    _field(lines, "QoS Class", status.get("qosClass"))
    _mapping(lines, "Node-Selectors", spec.get("nodeSelector"))
    tolerations = [f"{t.get('key', '')}:{t.get('effect', '')}" for t in spec.get("tolerations") or []]
    _field(lines, "Tolerations", ", ".join(tolerations))


def _node(lines: Lines, node: dict[str, Any], client: Client) -> None:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    taints = [f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" for t in spec.get("taints") or []]
    _field(lines, "Taints", ", ".join(taints))
    _field(lines, "Unschedulable", str(bool(spec.get("unschedulable"))).lower())
    _conditions(lines, status.get("conditions"), columns=("Type", "Status", "Reason", "Message"))
    lines.append("Addresses:")
    lines += [f"  {a.get('type')}:  {a.get('address')}" for a in status.get("addresses") or []]
    for label in ("capacity", "allocatable"):
        lines.append(f"{label.capitalize()}:")
        lines += [f"  {k}:  {v}" for k, v in sorted((status.get(label) or {}).items())]
    info = status.get("nodeInfo") or {}
    if info:
        lines.append("System Info:")
        lines += [f"  {k}:  {v}" for k, v in sorted(info.items())]
    name = (node.get("metadata") or {}).get("name")
    pods = client.list(resolve("pods"), None, params={"fieldSelector": f"spec.nodeName={name}"})
    pods = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    lines.append(f"Non-terminated Pods:  ({len(pods)} in total)")
    if pods:
        rows = [["Namespace", "Name", "Age"], ["---------", "----", "---"]]
        rows += [
            [p["metadata"].get("namespace", ""), p["metadata"]["name"], _age(p["metadata"].get("creationTimestamp"))]
            for p in pods
        ]
        lines += ["  " + line for line in layout(rows).splitlines()]


def _workload(lines: Lines, obj: dict[str, Any], kind: str) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    _field(lines, "Selector", selectors.to_string(spec.get("selector")))
    if kind == "Deployment":
        _field(
            lines,
            "Replicas",
            f"{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated | "
            f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
            f"{status.get('unavailableReplicas', 0)} unavailable",
        )
        _field(lines, "StrategyType", (spec.get("strategy") or {}).get("type", "RollingUpdate"))
        _field(lines, "MinReadySeconds", spec.get("minReadySeconds", 0))
    elif kind == "ReplicaSet":
        _field(lines, "Replicas", f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    elif kind == "Job":
        _field(lines, "Parallelism", spec.get("parallelism", 1))
        _field(lines, "Completions", spec.get("completions"))
        _field(
            lines,
            "Pods Statuses",
            f"{status.get('active', 0)} Active / {status.get('succeeded', 0)} Succeeded / "
            f"{status.get('failed', 0)} Failed",
        )
    template = spec.get("template") or {}
    lines.append("Pod Template:")
    template_lines: Lines = []
    _mapping(template_lines, "Labels", (template.get("metadata") or {}).get("labels"))
    _containers(template_lines, "Containers", (template.get("spec") or {}).get("containers") or [], None)
    lines += ["  " + line for line in template_lines]
    _conditions(lines, status.get("conditions"), columns=("Type", "Status", "Reason"))


def _service(lines: Lines, svc: dict[str, Any], client: Client) -> None:
    spec = svc.get("spec") or {}
    _mapping(lines, "Selector", spec.get("selector"))
    _field(lines, "Type", spec.get("type", "ClusterIP"))
    _field(lines, "IP", spec.get("clusterIP"))
    for port in spec.get("ports") or []:
        _field(lines, "Port", f"{port.get('name') or '<unset>'}  {port.get('port')}/{port.get('protocol', 'TCP')}")
        _field(lines, "TargetPort", f"{port.get('targetPort', port.get('port'))}/{port.get('protocol', 'TCP')}")
        if port.get("nodePort"):
            _field(lines, "NodePort", f"{port.get('name') or '<unset>'}  {port['nodePort']}/TCP")
    meta = svc.get("metadata") or {}
    try:
        endpoints = client.get(resolve("endpoints"), meta.get("namespace"), meta.get("name", ""))
    except Exception:
        endpoints = {}
    targets = [
        f"{a.get('ip')}:{p.get('port')}"
        for subset in endpoints.get("subsets") or []
        for a in subset.get("addresses") or []
        for p in subset.get("ports") or []
    ]
    _field(lines, "Endpoints", ",".join(targets))
    _field(lines, "Session Affinity", spec.get("sessionAffinity", "None"))


def _generic(lines: Lines, obj: dict[str, Any]) -> None:
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    for key, value in rest.items():
        lines.append(f"{key[:1].upper()}{key[1:]}:")
        text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()
        lines += ["  " + line for line in text.splitlines()]


def _events(lines: Lines, client: Client, obj: dict[str, Any], resource: Resource) -> None:
    meta = obj.get("metadata") or {}
    selector = f"involvedObject.name={meta.get('name')}"
    if resource.namespaced:
        selector += f",involvedObject.namespace={meta.get('namespace')}"
    selector += f",involvedObject.kind={resource.kind}"
    namespace = meta.get("namespace") if resource.namespaced else None
    events = client.list(resolve("events"), namespace, params={"fieldSelector": selector})
    if not events:
        lines.append("Events:            <none>")
        return
    events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
    for event in events:
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent") or ""
        age = _age(event.get("lastTimestamp") or event.get("eventTime"))
        if int(event.get("count") or 1) > 1:
            age += f" (x{event['count']} over {_age(event.get('firstTimestamp'))})"
        rows.append([event.get("type", ""), event.get("reason", ""), age, source, event.get("message", "")])
    lines.append("Events:")
    lines += ["  " + line for line in layout(rows).splitlines()]


def describe(client: Client, resource: Resource, obj: dict[str, Any]) -> str:
    lines: Lines = []
    _meta(lines, obj, resource)
    if resource.kind == "Pod":
        _pod(lines, obj)
    elif resource.kind == "Node":
        _node(lines, obj, client)
    elif resource.kind in ("Deployment", "ReplicaSet", "Job"):
        _workload(lines, obj, resource.kind)
    elif resource.kind == "Service":
        _service(lines, obj, client)
    else:
        _generic(lines, obj)
    _events(lines, client, obj, resource)
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, client: Client) -> int:
    kind, _, first = args.kind.partition("/")
    resource = resolve(kind)
    names = ([first] if first else []) + list(args.names)
    namespace = args.namespace if resource.namespaced else None
    if names:
        objects = [client.get(resource, namespace, name) for name in names]
    else:
        objects = client.list(resource, namespace)
    print("\n\n".join(describe(client, resource, obj).rstrip("\n") for obj in objects))
    return 0
