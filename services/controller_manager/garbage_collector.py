"""The garbage collector: dependents go when their owners go, as deletion policies say.

As kube-controller-manager's garbage collector: every kind is watched and a graph of
ownerReferences (by uid) is kept beside the caches. Three policies:

- Background: the owner is removed at once; a dependent whose owners are all gone is
  then deleted (in the background itself, so chains unwind level by level).
- Foreground: the owner carries the ``foregroundDeletion`` finalizer; its dependents
  are deleted (in the foreground when they have dependents of their own), and once no
  dependent with ``blockOwnerDeletion`` is left the finalizer is removed, so the API
  server removes the owner.
- Orphan: the owner carries the ``orphan`` finalizer; its dependents lose their
  ownerReference to it, then the finalizer is removed.

Deciding that an owner is gone is never done from the cache alone: the kinds' watch
streams are independent, so a cache may show a dependent still pointing to an owner
that was just orphaned from it, or not yet show a new owner. A missing owner is
looked at again after ``grace`` seconds, confirmed absent with a direct GET, and the
dependent is read fresh and deleted with uid and resourceVersion preconditions.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from shared.bus import ApiClientError, BusClient
from shared.informer import Informer, key_of
from shared.metrics import Metrics
from shared.resources import BY_KIND, BY_PLURAL, RESOURCES
from shared.workqueue import Result, WorkQueue

Obj = dict[str, Any]
Item = tuple[str, str]  # (plural, namespace/name)
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


def log() -> structlog.typing.FilteringBoundLogger:
    """This controller's logger, bound when used (logging is configured after import)."""
    return structlog.get_logger().bind(component="controller-manager", controller="garbage-collector")  # type: ignore[no-any-return]


def item_key(plural: str, key: str) -> str:
    return f"{plural}|{key}"


def _refs(obj: Obj | None) -> list[Obj]:
    return list(((obj or {}).get("metadata") or {}).get("ownerReferences") or [])


@dataclass
class Graph:
    """Who owns whom, by uid, across every kind's cache."""

    informers: dict[str, Informer]
    metrics: Metrics = field(default_factory=Metrics)
    items: dict[str, Item] = field(default_factory=dict)  # uid -> item
    dependents: dict[str, set[Item]] = field(default_factory=dict)  # owner uid -> items
    missing_since: dict[str, float] = field(default_factory=dict)  # item key -> first seen without an owner

    def get(self, item: Item) -> Obj | None:
        informer = self.informers.get(item[0])
        return informer.get(item[1]) if informer else None

    def by_uid(self, uid: str) -> Obj | None:
        item = self.items.get(uid)
        obj = self.get(item) if item else None
        return obj if obj is not None and obj["metadata"].get("uid") == uid else None

    def dependents_of(self, uid: str) -> list[tuple[Item, Obj]]:
        out = []
        for item in list(self.dependents.get(uid, ())):
            obj = self.get(item)
            if obj is not None and any(r.get("uid") == uid for r in _refs(obj)):
                out.append((item, obj))
        return out

    def observe(self, item: Item, obj: Obj, old: Obj | None, *, deleted: bool) -> None:
        uid = str(obj["metadata"].get("uid") or "")
        for ref in _refs(old):
            if deleted or not any(r.get("uid") == ref.get("uid") for r in _refs(obj)):
                self.dependents.get(str(ref.get("uid")), set()).discard(item)
        if deleted:
            for ref in _refs(obj):
                self.dependents.get(str(ref.get("uid")), set()).discard(item)
            if self.items.get(uid) == item:
                del self.items[uid]
            return
        if uid:
            self.items[uid] = item
        for ref in _refs(obj):
            self.dependents.setdefault(str(ref.get("uid")), set()).add(item)


def _being_deleted_with(obj: Obj, finalizer: str) -> bool:
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or [])


async def _get(client: BusClient, plural: str, name: str, namespace: str | None) -> Obj | None:
    try:
        return await client.get(plural, name, namespace=namespace)
    except ApiClientError as exc:
        if exc.code == 404:
            return None
        raise


async def _owner_state(ref: Obj, namespace: str | None, *, graph: Graph, client: BusClient) -> str:
    """"solid", "waiting" (being deleted in the foreground), "absent" or "unknown" (a kind not served)."""
    owner = graph.by_uid(str(ref.get("uid")))
    resource = BY_KIND.get(str(ref.get("kind")))
    if owner is None:
        if resource is None:
            return "unknown"
        owner = await _get(client, resource.plural, str(ref.get("name")), namespace if resource.namespaced else None)
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return "absent"
    return "waiting" if _being_deleted_with(owner, FOREGROUND) else "solid"


async def _delete(client: BusClient, plural: str, obj: Obj, *, policy: str) -> None:
    meta = obj["metadata"]
    preconditions = {"uid": meta["uid"]}
    if meta.get("resourceVersion"):
        preconditions["resourceVersion"] = meta["resourceVersion"]
    try:
        await client.delete(plural, meta["name"], namespace=meta.get("namespace"),
                            params={"propagationPolicy": policy}, body={"preconditions": preconditions})
    except ApiClientError as exc:
        if exc.code == 404:
            return
        raise


async def _drop_finalizer(client: BusClient, plural: str, obj: Obj, finalizer: str) -> None:
    meta = obj["metadata"]
    rest = [f for f in meta.get("finalizers") or [] if f != finalizer]
    try:
        await client.patch(plural, meta["name"], {"metadata": {"resourceVersion": meta["resourceVersion"],
                                                               "finalizers": rest or None}},
                           namespace=meta.get("namespace"))
    except ApiClientError as exc:
        if exc.code != 404:
            raise


async def _foreground(item: Item, owner: Obj, *, graph: Graph, client: BusClient) -> Result | None:
    uid = owner["metadata"]["uid"]
    blocking = 0
    for (plural, _), dependent in graph.dependents_of(uid):
        if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in _refs(dependent)):
            blocking += 1
        if dependent["metadata"].get("deletionTimestamp"):
            continue
        has_own = bool(graph.dependents_of(dependent["metadata"]["uid"]))
        await _delete(client, plural, dependent, policy="Foreground" if has_own else "Background")
        graph.metrics.inc("gc_deleted_total", help="dependents deleted because their owners were gone", kind=plural)
    if blocking:
        # Each dependent's disappearance requeues the owner; the delay is only a safety net.
        return Result(requeue_after=5.0)
    await _drop_finalizer(client, item[0], owner, FOREGROUND)
    log().info("dependents deleted; foreground deletion finished", key=item_key(*item))
    return None


async def _orphan(item: Item, owner: Obj, *, graph: Graph, client: BusClient) -> None:
    uid = owner["metadata"]["uid"]
    for (plural, _), dependent in graph.dependents_of(uid):
        meta = dependent["metadata"]
        kept = [r for r in _refs(dependent) if r.get("uid") != uid]
        try:
            await client.patch(plural, meta["name"], {"metadata": {"resourceVersion": meta["resourceVersion"],
                                                                   "ownerReferences": kept or None}},
                               namespace=meta.get("namespace"))
        except ApiClientError as exc:
            if exc.code != 404:
                raise
        graph.metrics.inc("gc_orphaned_total", help="dependents released from an owner deleted with Orphan",
                          kind=plural)
    await _drop_finalizer(client, item[0], owner, ORPHAN)
    log().info("dependents orphaned", key=item_key(*item))


async def _check_owners(item: Item, obj: Obj, *, graph: Graph, client: BusClient, grace: float) -> Result | None:
    plural, key = item
    namespace = obj["metadata"].get("namespace")
    # Quick answer from the cache: every owner known and not leaving.
    if all(graph.by_uid(str(r.get("uid"))) is not None and not _being_deleted_with(graph.by_uid(str(r.get("uid")))
                                                                                    or {}, FOREGROUND)
           for r in _refs(obj)):
        graph.missing_since.pop(item_key(*item), None)
        return None
    first = graph.missing_since.setdefault(item_key(*item), time.monotonic())
    waited = time.monotonic() - first
    if waited < grace:
        return Result(requeue_after=grace - waited + 0.01)
    fresh = await _get(client, plural, key.partition("/")[2], namespace)
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        graph.missing_since.pop(item_key(*item), None)
        return None
    states = [(ref, await _owner_state(ref, namespace, graph=graph, client=client)) for ref in _refs(fresh)]
    solid = [ref for ref, state in states if state in ("solid", "unknown")]
    dangling = [ref for ref, state in states if state == "absent"]
    waiting = [ref for ref, state in states if state == "waiting"]
    graph.missing_since.pop(item_key(*item), None)
    if solid:
        gone = {str(r.get("uid")) for r in dangling + waiting}
        if gone:
            kept = [r for r in _refs(fresh) if str(r.get("uid")) not in gone]
            meta = fresh["metadata"]
            await client.patch(plural, meta["name"], {"metadata": {"resourceVersion": meta["resourceVersion"],
                                                                   "ownerReferences": kept}}, namespace=namespace)
        return None
    if waiting:
        return None  # the owner's foreground deletion deletes this one
    if dangling:
        log().info("owners gone; deleting dependent", key=item_key(*item))
        await _delete(client, plural, fresh, policy="Background")
        graph.metrics.inc("gc_deleted_total", help="dependents deleted because their owners were gone", kind=plural)
    return None


async def reconcile(key: str, *, cache: Graph, client: BusClient, grace: float) -> Result | None:
    plural, _, name_key = key.partition("|")
    item = (plural, name_key)
    obj = cache.get(item)
    if obj is None:
        cache.missing_since.pop(key, None)
        return None
    if obj["metadata"].get("deletionTimestamp"):
        if _being_deleted_with(obj, ORPHAN):
            await _orphan(item, obj, graph=cache, client=client)
        elif _being_deleted_with(obj, FOREGROUND):
            return await _foreground(item, obj, graph=cache, client=client)
        return None
    if not _refs(obj):
        return None
    return await _check_owners(item, obj, graph=cache, client=client, grace=grace)


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    informers = {r.plural: ctx.informer(r.plural) for r in RESOURCES}
    graph = Graph(informers, metrics=ctx.runtime.metrics)

    def requeue_owners(obj: Obj) -> None:
        for ref in _refs(obj):
            owner_item = graph.items.get(str(ref.get("uid")))
            owner = graph.get(owner_item) if owner_item else None
            if owner_item and owner is not None and owner["metadata"].get("deletionTimestamp"):
                queue.add(item_key(*owner_item))

    def handler_for(plural: str) -> Any:
        def on_change(kind: str, obj: Obj, old: Obj | None) -> None:
            item = (plural, key_of(obj))
            deleted = kind == "DELETED"
            graph.observe(item, obj, old, deleted=deleted)
            if deleted:
                for dep_item in list(graph.dependents.get(str(obj["metadata"].get("uid")), ())):
                    queue.add(item_key(*dep_item))
                requeue_owners(old or obj)
                return
            meta = obj.get("metadata") or {}
            if _refs(obj) or (meta.get("deletionTimestamp") and {ORPHAN, FOREGROUND} & set(meta.get("finalizers") or [])):
                queue.add(item_key(*item))
            requeue_owners(obj)
            if old is not None:
                requeue_owners(old)

        return on_change

    for plural, informer in informers.items():
        if plural in BY_PLURAL:
            informer.add_handler(handler_for(plural))
    grace = float(getattr(ctx.settings, "gc_grace_seconds", 1.0))
    bound = functools.partial(reconcile, cache=graph, client=ctx.client, grace=grace)
    return Controller(name="garbage-collector", reconcile=bound, queue=queue, primary="",
                      workers=getattr(ctx.settings, "workers", 4))
