"""Recording Events: what happened to an object, as ``kubectl describe`` shows it.

Repeats of the same (object, type, reason, message) bump the count of one Event
instead of creating another, as Kubernetes' event correlator does. Recording never
fails the caller: an event that cannot be written is logged and dropped.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import Any

import structlog

from shared.bus import ApiClientError, BusClient

CACHE_SIZE = 4096
QUEUE_SIZE = 10_000


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def reference(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    ref = {
        "kind": obj.get("kind"),
        "apiVersion": obj.get("apiVersion"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return {k: v for k, v in ref.items() if v is not None}


class EventRecorder:
    def __init__(self, client: BusClient, *, component: str, host: str | None = None,
                 backlog: int = QUEUE_SIZE) -> None:
        self._client = client
        self._component = component
        self._host = host
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, str, int]] = OrderedDict()
        self._log = structlog.get_logger().bind(recorder=component)
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str]] = asyncio.Queue(maxsize=backlog)
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0

    def emit(self, obj: dict[str, Any], *, reason: str, message: str, type: str = "Normal") -> None:
        """Record in the background, in order: the caller's work never waits for an Event.

        When the backlog is full the event is dropped (and counted): events are
        best-effort, the work they describe is not.
        """
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name=f"events-{self._component}")
        try:
            self._queue.put_nowait((obj, reason, message, type))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _drain(self) -> None:
        while True:
            obj, reason, message, type = await self._queue.get()
            await self.record(obj, reason=reason, message=message, type=type)

    async def record(self, obj: dict[str, Any], *, reason: str, message: str, type: str = "Normal") -> None:
        ref = reference(obj)
        namespace = ref.get("namespace") or "default"
        identity = (str(ref.get("uid") or ref.get("name")), type, reason, message)
        now = _now()
        try:
            seen = self._seen.get(identity)
            if seen is not None:
                name, ns, count = seen
                try:
                    await self._client.patch("events", name, {"count": count + 1, "lastTimestamp": now}, namespace=ns)
                    self._seen[identity] = (name, ns, count + 1)
                    self._seen.move_to_end(identity)
                    return
                except ApiClientError as exc:
                    if exc.code != 404:
                        raise
            name = f"{ref.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}"
            source: dict[str, str] = {"component": self._component}
            if self._host:
                source["host"] = self._host
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref,
                "reason": reason,
                "message": message,
                "type": type,
                "source": source,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": self._component,
                "reportingInstance": self._host or self._component,
            }
            await self._client.create("events", event, namespace=namespace)
            self._seen[identity] = (name, namespace, 1)
            if len(self._seen) > CACHE_SIZE:
                self._seen.popitem(last=False)
        except Exception as exc:
            self._log.warning("could not record event", reason=reason, error=str(exc))
