"""Helpers for the scheduler tests: plain Node objects, pods with requests, a started scheduler.

Nodes are created with the admin token as plain objects (allocatable and a Ready
condition, no kubelet), which is all the scheduler and the API server's binding
check look at.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared import redis_server
from tests.harness import Cluster, Process, wait_for

PODS = "/api/v1/namespaces/default/pods"

#: Short back-off so that tests see retries quickly.
FAST = ("--initial-backoff-seconds", "0.2", "--max-backoff-seconds", "1", "--unschedulable-flush-seconds", "5")


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: str = "True",
    unschedulable: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "test node"}],
        },
    }


def pod(name: str, *, cpu: str | None = "100m", memory: str | None = None, **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": ["sleep", "3600"]}
    if requests:
        container["resources"] = {"requests": requests}
    labels = spec.pop("labels", None) or {"app": "test"}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if "ownerReferences" in spec:
        meta["ownerReferences"] = spec.pop("ownerReferences")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container], **spec}}


def create(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def start_scheduler(cluster: Cluster, *args: str, name: str | None = None, wait: bool = True) -> Process:
    port = redis_server.free_port()
    process = cluster.start(
        "scheduler", "--metrics-port", str(port), *FAST, *args, token="scheduler", name=name or f"scheduler-{port}"
    )
    process.port = port
    if wait:

        def ready() -> bool:
            if not process.alive():
                raise AssertionError(f"{process.name} exited:\n{process.log()[-3000:]}")
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200

        wait_for(ready, timeout=30, message=f"{process.name} ready")
    return process


def node_of(http: httpx.Client, name: str, namespace: str = "default") -> str | None:
    response = http.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    assert response.status_code == 200, response.text
    return response.json()["spec"].get("nodeName")


def wait_bound(http: httpx.Client, name: str, *, timeout: float = 20.0) -> str:
    return wait_for(lambda: node_of(http, name), timeout=timeout, message=f"pod {name} bound")


def condition(http: httpx.Client, name: str, kind: str = "PodScheduled") -> dict[str, Any] | None:
    body = http.get(f"{PODS}/{name}").json()
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def events_for(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = http.get(
        "/api/v1/namespaces/default/events", params={"fieldSelector": f"involvedObject.name={name}"}
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]
