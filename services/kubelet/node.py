"""The Node object and the node Lease: registration, status heartbeat, lease renewal.

Used by the kubelet and by the hollow nodes alike. The Node is created once (or its
status patched if it exists); its conditions are refreshed every few seconds so
``Ready`` stays ``True`` with a fresh heartbeat; the Lease ``kube-node-lease/NAME`` is
PUT (which creates it) every few seconds with a new ``renewTime``.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass
from typing import Any

import psutil

from shared.bus import ApiClientError, BusClient

KUBELET_VERSION = "v1.32.0-redkube"
RUNTIME_VERSION = "redkube-process://0.1"
LEASE_NAMESPACE = "kube-node-lease"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def micro_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def machine_capacity() -> dict[str, str]:
    """cpu, memory and pods of this machine, in Kubernetes quantities."""
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{psutil.virtual_memory().total // 1024}Ki",
        "pods": "110",
        "ephemeral-storage": f"{psutil.disk_usage('/').total // 1024}Ki",
    }


@dataclass
class NodeConfig:
    name: str
    node_ip: str
    pod_cidr: str = ""
    capacity: dict[str, str] | None = None
    runtime_version: str = RUNTIME_VERSION
    labels: dict[str, str] | None = None

    def node_object(self) -> dict[str, Any]:
        capacity = self.capacity or machine_capacity()
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            "beta.kubernetes.io/os": "linux",
            **(self.labels or {}),
        }
        spec: dict[str, Any] = {}
        if self.pod_cidr:
            spec = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": spec,
            "status": self.status(capacity),
        }

    def status(self, capacity: dict[str, str] | None = None) -> dict[str, Any]:
        capacity = capacity or self.capacity or machine_capacity()
        stamp = now()
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        return {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": stamp,
                 "lastTransitionTime": stamp}
                for t, s, r, m in conditions
            ],
            "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": f"redkube on {socket.gethostname()}",
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            },
        }


def _keep_transitions(fresh: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """Conditions keep their lastTransitionTime while their status is unchanged."""
    old = {c.get("type"): c for c in ((current or {}).get("status") or {}).get("conditions") or []}
    for condition in fresh.get("conditions") or []:
        before = old.get(condition["type"])
        if before and before.get("status") == condition["status"] and before.get("lastTransitionTime"):
            condition["lastTransitionTime"] = before["lastTransitionTime"]
    return fresh


async def register(client: BusClient, config: NodeConfig) -> dict[str, Any]:
    """Create the Node, or bring an existing one's labels and status up to date."""
    body = config.node_object()
    try:
        return await client.create("nodes", body)
    except ApiClientError as exc:
        if exc.code != 409:
            raise
    current = await client.get("nodes", config.name)
    labels = {**((current.get("metadata") or {}).get("labels") or {}), **body["metadata"]["labels"]}
    await client.patch("nodes", config.name, {"metadata": {"labels": labels}})
    return await heartbeat(client, config, current=current)


async def heartbeat(client: BusClient, config: NodeConfig, *, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Refresh the node's status (Ready=True with a new heartbeat); re-register if it is gone."""
    status = _keep_transitions(config.status(), current)
    try:
        return await client.patch("nodes", config.name, {"status": status}, subresource="status")
    except ApiClientError as exc:
        if exc.code != 404:
            raise
    return await client.create("nodes", config.node_object())


def lease_body(name: str, *, duration: int, acquired: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration,
            "acquireTime": acquired,
            "renewTime": micro_now(),
        },
    }


async def renew_lease(client: BusClient, name: str, *, duration: int, acquired: str) -> None:
    """PUT the lease (an update creates it when missing). Ownership is the node's alone."""
    body = lease_body(name, duration=duration, acquired=acquired)
    await client.call("update", "leases", namespace=LEASE_NAMESPACE, name=name, body=body)
