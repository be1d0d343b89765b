"""The Namespace controller: empty a terminating namespace, then let it go.

When a namespace is deleted the API server only marks it (deletionTimestamp, phase
Terminating) because of its ``kubernetes`` finalizer. This controller, as
kube-controller-manager's namespace controller, deletes every namespaced object in
it (every namespaced kind of ``shared.resources``, read straight from the API, since
the content must be known exactly, not as a cache remembers it), reports what is
left in the namespace's conditions (NamespaceContentRemaining,
NamespaceDeletionContentFailure) while pods finish terminating, and when nothing is
left removes the finalizer through the ``finalize`` subresource, so the API server
removes the namespace.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from shared.bus import ApiClientError, BusClient
from shared.informer import Informer, key_of
from shared.resources import RESOURCES
from shared.workqueue import Result, WorkQueue

Obj = dict[str, Any]
FINALIZER = "kubernetes"
CONDITION_TYPES = ("NamespaceContentRemaining", "NamespaceDeletionContentFailure")


def log() -> structlog.typing.FilteringBoundLogger:
    """This controller's logger, bound when used (logging is configured after import)."""
    return structlog.get_logger().bind(component="controller-manager", controller="namespace")  # type: ignore[no-any-return]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def namespaced_kinds() -> list[str]:
    # Events last: deleting the rest records events about it.
    kinds = [r.plural for r in RESOURCES if r.namespaced and r.plural != "events"]
    return [*kinds, "events"]


async def _empty(namespace: str, *, client: BusClient) -> tuple[dict[str, int], list[str]]:
    """Delete what is in ``namespace``; what remains (kind -> count) and the errors met."""
    remaining: dict[str, int] = {}
    errors: list[str] = []
    for plural in namespaced_kinds():
        try:
            listed = await client.call("list", plural, namespace=namespace)
            items = listed.get("items") or []
            if not items:
                continue
            if any(not (i.get("metadata") or {}).get("deletionTimestamp") for i in items):
                await client.call("deletecollection", plural, namespace=namespace,
                                  params={"propagationPolicy": "Background"})
                items = (await client.call("list", plural, namespace=namespace)).get("items") or []
        except ApiClientError as exc:
            errors.append(f"{plural}: {exc}")
            continue
        if items:
            remaining[plural] = len(items)
    return remaining, errors


def _conditions(current: list[Obj], remaining: dict[str, int], errors: list[str]) -> list[Obj]:
    now = _now()
    wanted = {
        "NamespaceContentRemaining": (
            ("True", "SomeResourcesRemain",
             "Some resources are remaining: " + ", ".join(f"{k} has {v} resource instances"
                                                         for k, v in sorted(remaining.items())))
            if remaining else ("False", "ContentRemoved", "All content successfully removed")
        ),
        "NamespaceDeletionContentFailure": (
            ("True", "ContentDeletionFailed", "; ".join(errors)) if errors
            else ("False", "ContentDeleted", "All content successfully deleted, may be waiting on finalization")
        ),
    }
    out = [c for c in current if c.get("type") not in wanted]
    for kind, (status, reason, message) in wanted.items():
        old = next((c for c in current if c.get("type") == kind), None)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else now
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": since})
    return out


async def reconcile(key: str, *, cache: Informer, client: BusClient, retry_after: float = 1.0) -> Result | None:
    namespace = cache.get(key)
    name = key.rpartition("/")[2]
    if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
        return None
    if FINALIZER not in ((namespace.get("spec") or {}).get("finalizers") or []):
        return None
    remaining, errors = await _empty(name, client=client)
    status = namespace.get("status") or {}
    conditions = _conditions(list(status.get("conditions") or []), remaining, errors)
    if [(c["type"], c["status"], c["message"]) for c in conditions] != [
        (c.get("type"), c.get("status"), c.get("message")) for c in status.get("conditions") or []
    ]:
        try:
            await client.patch("namespaces", name, {"status": {"conditions": conditions}}, subresource="status")
        except ApiClientError as exc:
            if exc.code != 404:
                raise
    if remaining or errors:
        log().info("namespace not empty yet", key=key, remaining=remaining, errors=errors)
        return Result(requeue_after=retry_after)
    try:
        fresh = await client.get("namespaces", name)
    except ApiClientError as exc:
        if exc.code == 404:
            return None
        raise
    rest = [f for f in (fresh.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
    fresh.setdefault("spec", {})["finalizers"] = rest
    try:
        await client.call("update", "namespaces", name=name, subresource="finalize", body=fresh)
    except ApiClientError as exc:
        if exc.code != 404 or "namespaces/finalize" not in str(exc):
            raise
        # A server that does not route the finalize subresource: the same change through the object.
        await client.patch("namespaces", name, {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]},
                                                "spec": {"finalizers": rest}})
    log().info("namespace emptied and finalized", key=key)
    return None


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    namespaces = ctx.informer("namespaces")

    def on_namespace(kind: str, obj: Obj, old: Obj | None) -> None:
        if kind != "DELETED" and (obj.get("metadata") or {}).get("deletionTimestamp"):
            queue.add(key_of(obj))

    namespaces.add_handler(on_namespace)
    bound = functools.partial(reconcile, cache=namespaces, client=ctx.client)
    return Controller(name="namespace", reconcile=bound, queue=queue, primary="namespaces", workers=2)
