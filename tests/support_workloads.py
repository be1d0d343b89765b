"""Test support for the workload controllers: a fake node agent and samplers.

The ReplicaSet and Deployment controllers need pods to be scheduled, to run, to become
ready and to finish terminating; the scheduler and the kubelet do that in a whole
cluster. Here a small thread does it through the real API with the admin token: it
binds pending pods to a Node it registers, marks bound pods Running and Ready (after
``ready_delay`` seconds, so rollouts take observable steps), and confirms graceful
deletions (``DELETE ?gracePeriodSeconds=0``), as a kubelet would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.harness import Cluster

CONTROLLER_FLAGS = ("--lease-ms", "2000", "--renew-ms", "500", "--node-grace-seconds", "3600",
                    "--eviction-seconds", "3600")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def start_control_plane(cluster: Cluster) -> None:
    """An API server and a controller manager (the leader at once: a fresh lease)."""
    if not cluster.api_port:
        cluster.start_apiserver()
    cluster.start("controller-manager", *CONTROLLER_FLAGS, token="controller-manager", name="controller-manager")


def running_status(pod: dict[str, Any], *, ip: str) -> dict[str, Any]:
    stamp = now()
    containers = pod["spec"].get("containers") or []
    return {
        "phase": "Running",
        "podIP": ip,
        "startTime": stamp,
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [
            {"name": c["name"], "ready": True, "restartCount": 0, "image": c.get("image", ""), "imageID": "",
             "started": True, "state": {"running": {"startedAt": stamp}}}
            for c in containers
        ],
    }


class FakeNodeAgent:
    """Binds, runs and finishes deleting pods, like a scheduler plus a kubelet would."""

    def __init__(self, cluster: Cluster, *, node: str = "n1", bind: bool = True, run: bool = True,
                 confirm: bool = True, ready_delay: float = 0.0, interval: float = 0.05,
                 runs: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.cluster = cluster
        self.node = node
        self.bind = bind
        self.run = run
        self.confirm = confirm
        self.ready_delay = ready_delay
        self.interval = interval
        self.runs = runs  # which bound pods start (all when None): a stand-in for a bad image
        self.bound_at: dict[str, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"fake-node-{node}", daemon=True)
        self._ips = 0

    def __enter__(self) -> FakeNodeAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        with self.cluster.http() as http:
            response = http.post("/api/v1/nodes", json={
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node},
                "status": {"capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                           "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                           "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastHeartbeatTime": now(), "lastTransitionTime": now()}]},
            })
            assert response.status_code in (201, 409), response.text
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        with self.cluster.http() as http:
            while not self._stop.is_set():
                try:
                    self._step(http)
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    self.errors.append(repr(exc))
                self._stop.wait(self.interval)

    def _step(self, http: httpx.Client) -> None:
        pods = http.get("/api/v1/pods").json()["items"]
        for pod in pods:
            meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
            ns, name = meta["namespace"], meta["name"]
            base = f"/api/v1/namespaces/{ns}/pods/{name}"
            if meta.get("deletionTimestamp"):
                if self.confirm and spec.get("nodeName") == self.node:
                    http.delete(base, params={"gracePeriodSeconds": "0"})
                continue
            if not spec.get("nodeName"):
                if self.bind:
                    response = http.post(f"{base}/binding", json={
                        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}})
                    if response.status_code == 201:
                        self.bound_at[f"{ns}/{name}"] = time.monotonic()
                continue
            if spec["nodeName"] != self.node or not self.run or status.get("phase") != "Pending":
                continue
            if self.runs is not None and not self.runs(pod):
                continue
            since = self.bound_at.setdefault(f"{ns}/{name}", time.monotonic())
            if time.monotonic() - since < self.ready_delay:
                continue
            self._ips += 1
            ip = f"127.1.{self._ips // 250}.{self._ips % 250 + 1}"
            http.patch(f"{base}/status", json={"status": running_status(pod, ip=ip)},
                       headers={"Content-Type": "application/merge-patch+json"})


class Sampler:
    """Samples a number from the API in a thread until stopped (e.g. available pods
    during a rollout), so a test can assert on the worst value seen."""

    def __init__(self, cluster: Cluster, measure: Callable[[httpx.Client], int], *, interval: float = 0.02) -> None:
        self.cluster = cluster
        self.measure = measure
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        with self.cluster.http() as http:
            while not self._stop.is_set():
                try:
                    self.samples.append(self.measure(http))
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                self._stop.wait(self.interval)


def pods(http: httpx.Client, *, selector: str, namespace: str = "default") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = http.get(f"/api/v1/namespaces/{namespace}/pods",
                                           params={"labelSelector": selector}).json()["items"]
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def available_pods(http: httpx.Client, *, selector: str, namespace: str = "default") -> int:
    """Ready pods not on their way out: what a Service would send traffic to."""
    return sum(1 for p in pods(http, selector=selector, namespace=namespace)
               if is_ready(p) and not p["metadata"].get("deletionTimestamp"))


def live_pods(http: httpx.Client, *, selector: str, namespace: str = "default") -> int:
    """Pods that exist and are not terminating."""
    return sum(1 for p in pods(http, selector=selector, namespace=namespace)
               if not p["metadata"].get("deletionTimestamp"))


def events(http: httpx.Client, *, name: str, reason: str | None = None, namespace: str = "default") -> list[str]:
    items = http.get(f"/api/v1/namespaces/{namespace}/events",
                     params={"fieldSelector": f"involvedObject.name={name}"}).json()["items"]
    return [e["message"] for e in items if reason is None or e.get("reason") == reason]
