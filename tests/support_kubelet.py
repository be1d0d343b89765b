"""Test support for the kubelet: a node with a real kubelet, pods bound to it, cleanup.

The kubelet leaves containers running when it stops (as a real one does), so
``cleanup`` kills every shim of the test's home directory and what they started.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psutil

from services.kubelet.containers import shim_directory
from shared import pki, redis_server
from tests.harness import Cluster, Process, wait_for

PY = sys.executable

FAST = (
    "--backoff-seconds", "0.5", "--backoff-max-seconds", "2", "--lease-seconds", "1",
    "--node-status-seconds", "2",
)


def node_flags(index: int) -> list[str]:
    return ["--node-ip", f"127.10.{index}.1", "--pod-cidr", f"127.11.{index}.0/24"]


def start_kubelet(cluster: Cluster, node: str = "n1", *extra: str, index: int = 201) -> Process:
    port = redis_server.free_port()
    process = cluster.start("kubelet", "--node", node, *node_flags(index), *FAST, "--metrics-port", str(port),
                            *extra, token=f"node-{node}", name=f"kubelet-{node}-{len(cluster.processes)}")
    process.port = port
    return process


def wait_kubelet_ready(process: Process, timeout: float = 30) -> None:
    import httpx

    def ready() -> bool:
        if not process.alive():
            raise AssertionError(f"kubelet exited:\n{process.log()[-3000:]}")
        return httpx.get(f"http://127.0.0.1:{process.port}/readyz", timeout=2).status_code == 200

    wait_for(ready, timeout=timeout, message="kubelet /readyz")


def node_cluster(cluster: Cluster, *nodes: str) -> Cluster:
    for node in nodes or ("n1",):
        pki.ensure_node_token(cluster.identity, node)
    cluster.start_apiserver()
    return cluster


def pod(name: str, command: list[str], *, node: str = "n1", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": spec.pop("container", "main"), "image": "busybox", "command": command}
    for key in ("env", "livenessProbe", "readinessProbe", "startupProbe", "workingDir", "ports", "args"):
        if key in spec:
            container[key] = spec.pop(key)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [container], **spec},
    }


def create(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    with cluster.http() as http:
        response = http.post("/api/v1/namespaces/default/pods", json=body)
        assert response.status_code == 201, response.text
        return response.json()


def get_pod(cluster: Cluster, name: str) -> dict[str, Any] | None:
    with cluster.http() as http:
        response = http.get(f"/api/v1/namespaces/default/pods/{name}")
        return response.json() if response.status_code == 200 else None


def status_of(cluster: Cluster, name: str, container: str = "main") -> dict[str, Any]:
    found = get_pod(cluster, name) or {}
    for item in (found.get("status") or {}).get("containerStatuses") or []:
        if item["name"] == container:
            return item
    return {}


def programs(marker: str) -> list[psutil.Process]:
    """Live processes whose command line carries ``marker`` (shims excluded)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if any(marker in part for part in cmdline) and not any(part.endswith("shim.py") for part in cmdline):
            out.append(proc)
    return out


def cleanup(home: Path) -> None:
    """Kill the shims started under ``home`` and everything below them."""
    root = str(home)
    victims: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline"]):
        directory = shim_directory(proc.info.get("cmdline") or [])
        if directory is not None and directory.startswith(root):
            try:
                victims.extend(proc.children(recursive=True))
            except psutil.Error:
                pass
            victims.append(proc)
    for proc in victims:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)
