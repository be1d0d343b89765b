"""The simulated runtime (as kwok does): pods go Running and Ready at once, nothing runs.

Used by ``redkube kubelet --runtime simulated`` and by the hollow nodes, so the
control plane can be exercised at hundreds of nodes on one machine.
"""

from __future__ import annotations

import time
from typing import Any

from services.kubelet.ipam import AddressPool
from shared.bus import ApiClientError, BusClient


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def running_status(pod: dict[str, Any], *, pod_ip: str, host_ip: str) -> dict[str, Any]:
    now = _now()
    status = pod.get("status") or {}
    start = status.get("startTime") or now
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None) or {
        "type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": start,
    }
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ]
    spec = pod.get("spec") or {}
    uid = (pod.get("metadata") or {}).get("uid", "")

    def container(c: dict[str, Any], *, init: bool) -> dict[str, Any]:
        state = (
            {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": now}}
            if init else {"running": {"startedAt": now}}
        )
        return {"name": c["name"], "state": state, "lastState": {}, "ready": not init, "restartCount": 0,
                "image": c.get("image") or "", "imageID": "", "started": not init,
                "containerID": f"redkube-simulated://{uid}-{c['name']}"}

    out: dict[str, Any] = {
        "phase": "Running",
        "conditions": [*conditions, scheduled],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start,
        "containerStatuses": [container(c, init=False) for c in spec.get("containers") or []],
    }
    if spec.get("initContainers"):
        out["initContainerStatuses"] = [container(c, init=True) for c in spec["initContainers"]]
    return out


class Simulator:
    """Makes one node's pods look run: a status at once, deletions confirmed at once."""

    def __init__(self, client: BusClient, *, node_ip: str, pool: AddressPool) -> None:
        self.client = client
        self.node_ip = node_ip
        self.pool = pool
        self._uids: dict[str, str] = {}  # pod key -> uid holding an address

    async def sync(self, key: str, pod: dict[str, Any] | None) -> None:
        if pod is None:
            uid = self._uids.pop(key, None)
            if uid:
                self.pool.release(uid)
            return
        meta = pod["metadata"]
        uid = str(meta.get("uid") or "")
        self._uids[key] = uid
        namespace = meta.get("namespace") or "default"
        try:
            if meta.get("deletionTimestamp"):
                await self.client.delete("pods", meta["name"], namespace=namespace,
                                         params={"gracePeriodSeconds": "0"})
                self.pool.release(uid)
                return
            status = pod.get("status") or {}
            if status.get("phase") in ("Running", "Succeeded", "Failed") and status.get("podIP"):
                return
            pod_ip = status.get("podIP") or self.pool.allocate(uid)
            await self.client.patch("pods", meta["name"], {"status": running_status(pod, pod_ip=pod_ip,
                                                                                    host_ip=self.node_ip)},
                                    namespace=namespace, subresource="status",
                                    content_type="application/merge-patch+json")
        except ApiClientError as exc:
            if exc.code != 404:
                raise
