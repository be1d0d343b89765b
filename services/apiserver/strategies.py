"""Per-kind rules applied by the handler: defaults on create, what an update may
change, how a pod is counted against its node, and which field selectors a kind has.

These are the small differences between kinds that Kubernetes keeps in each
resource's "strategy"; everything else in the handler is the same for every kind.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from shared import quantity
from shared.resources import Resource

TERMINAL_PHASES = ("Succeeded", "Failed")

#: Field selectors each kind supports, besides metadata.name and metadata.namespace.
FIELD_SELECTORS: dict[str, frozenset[str]] = {
    "pods": frozenset(
        {
            "spec.nodeName",
            "status.phase",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.podIP",
            "status.nominatedNodeName",
            "spec.hostNetwork",
        }
    ),
    "events": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "nodes": frozenset({"spec.unschedulable"}),
    "namespaces": frozenset({"status.phase"}),
    "replicasets": frozenset({"status.replicas"}),
    "jobs": frozenset({"status.successful"}),
    "services": frozenset({"spec.clusterIP", "spec.type"}),
}

#: Kinds whose PUT creates a missing object (as Kubernetes allows for these).
CREATE_ON_UPDATE = frozenset({"leases", "events", "endpoints"})


def field_selectors(resource: Resource) -> frozenset[str]:
    return FIELD_SELECTORS.get(resource.plural, frozenset()) | {"metadata.name", "metadata.namespace"}


def new_uid() -> str:
    return str(uuid.uuid4())


def pod_requests(spec: dict[str, Any]) -> tuple[int, int]:
    """Effective cpu (milli) and memory (bytes) requests, as the scheduler counts them."""

    def total(containers: list[dict[str, Any]]) -> tuple[int, int]:
        cpu = mem = 0
        for container in containers:
            resources = container.get("resources") or {}
            requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            cpu += quantity.milli(requests["cpu"]) if "cpu" in requests else 0
            mem += quantity.whole(requests["memory"]) if "memory" in requests else 0
        return cpu, mem

    cpu, mem = total(spec.get("containers") or [])
    for init in spec.get("initContainers") or []:
        icpu, imem = total([init])
        cpu, mem = max(cpu, icpu), max(mem, imem)
    return cpu, mem


def pod_account(pod: dict[str, Any]) -> str:
    """How a pod counts against its node: "node|cpu|memory", or "" when it does not."""
    node = (pod.get("spec") or {}).get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return ""
    cpu, mem = pod_requests(pod.get("spec") or {})
    return f"{node}|{cpu}|{mem}"


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in containers]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu")
        and lim.get("memory")
        and req.get("cpu", lim["cpu"]) == lim["cpu"]
        and req.get("memory", lim["memory"]) == lim["memory"]
        for req, lim in zip(requests, limits, strict=True)
    )
    return "Guaranteed" if guaranteed else "Burstable"


def prepare_create(resource: Resource, obj: dict[str, Any], now: str) -> None:
    """Defaults Kubernetes fills in when an object is created."""
    plural = resource.plural
    status = obj.get("status") or {}
    if plural == "pods":
        spec = obj["spec"]
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
        if spec.get("nodeName"):
            obj["status"]["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
            ]
        for container in spec.get("containers") or []:
            container.setdefault(
                "imagePullPolicy",
                "Always"
                if str(container.get("image", "")).endswith(":latest") or ":" not in str(container.get("image", ""))
                else "IfNotPresent",
            )
    elif plural == "namespaces":
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif plural in ("deployments", "replicasets", "jobs", "services", "daemonsets", "statefulsets", "cronjobs"):
        obj["status"] = {} if plural != "services" else {"loadBalancer": {}}
    elif plural == "nodes":
        obj["status"] = status
    if plural == "deployments":
        strategy = obj["spec"].setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
    if plural == "jobs":
        spec = obj["spec"]
        if not spec.get("manualSelector"):
            uid = obj["metadata"]["uid"]
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
            labels.setdefault("batch.kubernetes.io/controller-uid", uid)
            labels.setdefault("batch.kubernetes.io/job-name", obj["metadata"]["name"])
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", obj["metadata"]["name"])
    if plural == "events":
        obj.setdefault("count", 1)
        obj.setdefault("firstTimestamp", now)
        obj.setdefault("lastTimestamp", now)
        obj.setdefault("type", "Normal")


def normalize(resource: Resource, obj: dict[str, Any]) -> None:
    """Canonical stored form, on create and update: a Secret's stringData folds into data."""
    if resource.plural == "secrets" and obj.get("stringData"):
        data = obj.setdefault("data", {}) or {}
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(value.encode()).decode()
        obj["data"] = data


def node_capacity(node: dict[str, Any]) -> tuple[int, int, int] | None:
    """A node's allocatable (cpu milli, memory bytes, pods), if it reports one."""
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity")
    if not allocatable:
        return None
    try:
        return (
            quantity.milli(allocatable.get("cpu", "0")),
            quantity.whole(allocatable.get("memory", "0")),
            int(quantity.whole(allocatable.get("pods", "110"))),
        )
    except ValueError:
        return None
