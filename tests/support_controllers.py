"""Test support for the controller-manager tests: a fake node agent and stream replay.

``FakeNodeAgent`` stands in for the scheduler and a kubelet (both built elsewhere): it
binds pending pods to a Node it created through the API, moves them to the phase a
test's ``policy`` asks for (status patches with the admin token, as a kubelet would
with its own), and confirms graceful deletions (``DELETE ?gracePeriodSeconds=0``).
``replay_pods`` reads the pods' watch stream back from Redis, so a test can check a
property over every state the cluster went through, not just the ones it sampled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from shared.store import decode_event
from tests.harness import Cluster

Obj = dict[str, Any]
#: policy(pod, seconds since the agent bound or first saw it) -> "Pending", "Running",
#: "NotReady" (running, not ready), "Succeeded" or "Failed".
Policy = Callable[[Obj, float], str]


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ready_condition(status: str, now: str | None = None) -> Obj:
    now = now or now_rfc3339()
    return {"type": "Ready", "status": status, "reason": "KubeletReady" if status == "True" else "KubeletNotReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}


def node_body(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "conditions": [ready_condition("True")],
            "addresses": [{"type": "InternalIP", "address": "127.30.0.1"}],
        },
    }


def running(pod: Obj, age: float) -> str:
    return "Running"


class FakeNodeAgent:
    def __init__(
        self,
        cluster: Cluster,
        node: str = "n1",
        *,
        policy: Policy = running,
        bind: bool = True,
        confirm_deletions: bool = True,
        interval: float = 0.05,
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.policy = policy
        self.bind = bind
        self.confirm_deletions = confirm_deletions
        self.interval = interval
        self.ips: dict[str, str] = {}
        self.first_seen: dict[str, float] = {}
        self.errors: list[str] = []
        self.paused = threading.Event()  # set: the node's kubelet is "dead" and does nothing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = cluster.http()

    def create_node(self) -> Obj:
        response = self._http.post("/api/v1/nodes", json=node_body(self.node))
        assert response.status_code == 201, response.text
        return response.json()

    def __enter__(self) -> FakeNodeAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"fake-agent-{self.node}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.paused.is_set():
                    self.step()
            except Exception as exc:  # the API may be restarting; keep playing the kubelet
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def _ip(self, uid: str) -> str:
        if uid not in self.ips:
            n = len(self.ips) + 1
            self.ips[uid] = f"127.31.{n // 250}.{n % 250 + 1}"
        return self.ips[uid]

    def step(self) -> None:
        pods = self._http.get("/api/v1/pods").json().get("items") or []
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            node = spec.get("nodeName")
            if meta.get("deletionTimestamp"):
                if node == self.node and self.confirm_deletions:
                    self._http.delete(path, params={"gracePeriodSeconds": "0"})
                continue
            if not node and self.bind:
                self._http.post(f"{path}/binding", json={
                    "apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}})
                continue
            if node != self.node:
                continue
            first = self.first_seen.setdefault(meta["uid"], time.monotonic())
            wanted = self.policy(pod, time.monotonic() - first)
            status = self.status_for(pod, wanted)
            if status is not None:
                self._http.patch(f"{path}/status", json={"status": status},
                                 headers={"Content-Type": "application/merge-patch+json"})

    def status_for(self, pod: Obj, wanted: str) -> Obj | None:
        """The status patch moving ``pod`` to ``wanted``, or None when it is there already."""
        current = pod.get("status") or {}
        phase = current.get("phase", "Pending")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in current.get("conditions") or [])
        if phase in ("Succeeded", "Failed") or wanted == "Pending":
            return None
        target_phase = "Running" if wanted in ("Running", "NotReady") else wanted
        target_ready = wanted == "Running"
        if phase == target_phase and ready == target_ready:
            return None
        now = now_rfc3339()
        containers = (pod.get("spec") or {}).get("containers") or []
        if target_phase == "Running":
            state: Obj = {"running": {"startedAt": now}}
        else:
            code = 0 if target_phase == "Succeeded" else 1
            state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                    "startedAt": now, "finishedAt": now}}
        flag = "True" if target_ready else "False"
        return {
            "phase": target_phase,
            "podIP": self._ip(pod["metadata"]["uid"]),
            "podIPs": [{"ip": self._ip(pod["metadata"]["uid"])}],
            "hostIP": "127.30.0.1",
            "startTime": current.get("startTime") or now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": target_ready,
                 "restartCount": 0, "started": target_phase == "Running", "state": state}
                for c in containers
            ],
        }


def renew_lease(http: httpx.Client, node: str, *, seconds: int = 40) -> None:
    """What a kubelet does every few seconds: renew its node's Lease (created on first renewal)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
    current = http.get(path)
    body: Obj = current.json() if current.status_code == 200 else {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": seconds}}
    body["spec"]["renewTime"] = stamp
    response = http.put(path, json=body)
    assert response.status_code in (200, 201), response.text


class LeaseRenewer:
    """A kubelet's heartbeat in a thread: renews its node's Lease with the node's own token."""

    def __init__(self, cluster: Cluster, node: str, *, interval: float = 0.3) -> None:
        self.node = node
        self.interval = interval
        self.renewing = threading.Event()
        self.renewing.set()
        self._stop = threading.Event()
        self._http = cluster.http(token=f"node-{node}")
        self._thread = threading.Thread(target=self._run, name=f"lease-{node}", daemon=True)

    def __enter__(self) -> LeaseRenewer:
        renew_lease(self._http, self.node)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._http.close()

    def post_ready(self) -> None:
        """The kubelet posting Ready=True on its Node (status subresource, its own token)."""
        node = self._http.get(f"/api/v1/nodes/{self.node}").json()
        conditions = [c for c in node["status"].get("conditions") or [] if c["type"] != "Ready"]
        response = self._http.patch(f"/api/v1/nodes/{self.node}/status",
                                    json={"status": {"conditions": [*conditions, ready_condition("True")]}},
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert response.status_code == 200, response.text

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.renewing.is_set():
                try:
                    renew_lease(self._http, self.node)
                except Exception:  # a missed renewal is what a flaky kubelet does too
                    pass


def replay_pods(cluster: Cluster) -> Iterator[tuple[str, Obj, dict[str, Obj]]]:
    """Every change to pods, in order: (event type, object, all pods right after it)."""
    state: dict[str, Obj] = {}
    stream = cluster.keys.kind("pods").watch
    entries: list[Any] = cluster.redis.xrange(stream)  # type: ignore[assignment]
    for entry_id, fields in entries:
        event = decode_event(entry_id, fields)
        if event.type == "DELETED":
            state.pop(event.key, None)
        else:
            state[event.key] = event.object
        yield event.type, event.object, state


def owned_by(pod: Obj, uid: str) -> bool:
    return any(r.get("uid") == uid for r in (pod.get("metadata") or {}).get("ownerReferences") or [])


def active(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp")


def start_controller_manager(cluster: Cluster, *args: str, name: str | None = None, env: dict[str, str] | None = None,
                             controllers: str | None = None) -> Any:
    """``redkube controller-manager`` with the controller-manager token; ``controllers`` is passed as
    ``--controllers`` only when the process knows that flag (so other controllers stay out of a test)."""
    from services.controller_manager.main import ControllerManagerSettings

    extra: list[str] = []
    if controllers and "controllers" in ControllerManagerSettings.model_fields:
        extra = ["--controllers", controllers]
    return cluster.start("controller-manager", *args, *extra, token="controller-manager", name=name, env=env)
