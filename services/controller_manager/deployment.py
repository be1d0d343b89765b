"""The Deployment controller: one ReplicaSet per pod template, rolled out by strategy.

As kube-controller-manager's: the ReplicaSet for the current template is named
``<deployment>-<hash>`` and carries the ``pod-template-hash`` label; RollingUpdate scales
it up within ``replicas + maxSurge`` pods and old ones down while at least ``replicas -
maxUnavailable`` stay available; Recreate scales old ones to zero, waits for their pods
to be gone, then scales the new one up. A template equal to an old ReplicaSet's reuses it
with a new revision (this is what ``kubectl rollout undo`` relies on); a paused
Deployment only scales; old ReplicaSets beyond ``revisionHistoryLimit`` are deleted; the
Progressing and Available conditions and the replica counts are exactly what ``kubectl
rollout status`` reads. Every write carries the resourceVersion the decision was made
on, so a decision made on a stale cache fails with a conflict instead of being applied.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from services.controller_manager import deploy_util as du
from services.controller_manager.context import Context, Controller
from services.controller_manager.rs_util import (
    TERMINAL_PHASES,
    Obj,
    claim,
    controller_ref,
    deleting,
    key_of,
    label_selector,
    meta,
    owner_reference,
    parse_time,
)
from shared import selectors
from shared.bus import ApiClientError, BusClient
from shared.events import EventRecorder
from shared.informer import Informer
from shared.workqueue import Result, TerminalError, WorkQueue


@dataclass
class Caches:
    deployments: Informer
    replicasets: Informer
    pods: Informer


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    cache = Caches(ctx.informer("deployments"), ctx.informer("replicasets"), ctx.informer("pods"))
    cache.deployments.add_handler(lambda _kind, obj, _old: queue.add(key_of(obj)))
    cache.replicasets.add_handler(functools.partial(on_replicaset, cache=cache, queue=queue))
    cache.pods.add_handler(functools.partial(on_pod, cache=cache, queue=queue))
    # Events name this controller as their source, as Kubernetes' do ("From: deployment-controller").
    recorder = EventRecorder(ctx.client, component="deployment-controller")
    reconcile_d = functools.partial(reconcile, cache=cache, client=ctx.client, recorder=recorder)
    return Controller(name="deployment", reconcile=reconcile_d, queue=queue, primary="deployments",
                      workers=getattr(ctx.settings, "workers", 4))


# --- event handlers -------------------------------------------------------------------


def _owner(obj: Obj, informer: Informer, kind: str) -> Obj | None:
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = informer.get(f"{meta(obj).get('namespace') or ''}/{ref.get('name', '')}")
    if owner is None or meta(owner).get("uid") != ref.get("uid"):
        return None
    return owner


def on_replicaset(kind: str, rs: Obj, old: Obj | None, *, cache: Caches, queue: WorkQueue) -> None:
    owner = _owner(rs, cache.deployments, "Deployment")
    if old is not None and kind != "DELETED" and (previous := _owner(old, cache.deployments, "Deployment")):
        if owner is None or key_of(previous) != key_of(owner):
            queue.add(key_of(previous))
    if owner is not None:
        queue.add(key_of(owner))
        return
    if kind == "DELETED" or controller_ref(rs) is not None:
        return
    for d in cache.deployments.list(namespace=meta(rs).get("namespace")):
        try:
            if label_selector(d).matches(meta(rs).get("labels")):
                queue.add(key_of(d))
        except selectors.SelectorError:
            continue


def on_pod(kind: str, pod: Obj, old: Obj | None, *, cache: Caches, queue: WorkQueue) -> None:
    """A Recreate rollout waits for old pods to be gone: their deletion is its cue."""
    if kind != "DELETED":
        return
    rs = _owner(pod, cache.replicasets, "ReplicaSet")
    d = _owner(rs, cache.deployments, "Deployment") if rs else None
    if d is not None and not du.is_rolling(d):
        queue.add(key_of(d))


# --- reconcile ------------------------------------------------------------------------


async def reconcile(key: str, *, cache: Caches, client: BusClient, recorder: EventRecorder) -> Result | None:
    cached = cache.deployments.get(key)
    if cached is None:
        return None
    log = structlog.get_logger().bind(controller="deployment", key=key)
    try:
        selector = label_selector(cached)
        du.fenceposts(cached)
    except (selectors.SelectorError, du.SpecError) as exc:
        raise TerminalError(f"invalid deployment spec: {exc}") from exc
    rollout = Rollout(copy.deepcopy(cached), cache=cache, client=client, recorder=recorder, log=log)
    try:
        if selector.empty:
            await rollout.selecting_all()
            return None
        namespace = meta(cached).get("namespace")
        rollout.sets = await claim(cached, cache.replicasets.list(namespace=namespace), plural="replicasets",
                                   selector=selector, client=client, log=log)
        return await rollout.run()
    except ApiClientError as exc:
        if exc.code == 409 and exc.reason != "AlreadyExists":
            # Decided on a stale cache; the newer object's event brings us back.
            log.debug("conflict; will look again", error=str(exc))
            return Result(requeue_after=1.0)
        if exc.code == 404:
            return None
        raise


@dataclass
class Rollout:
    """One reconcile of one Deployment: the Deployment as last written, and its ReplicaSets."""

    d: Obj
    cache: Caches
    client: BusClient
    recorder: EventRecorder
    log: Any
    sets: list[Obj] = field(default_factory=list)

    # --- entry --------------------------------------------------------------------------

    async def run(self) -> Result | None:
        if deleting(self.d):
            new_rs, olds = await self.get_all(create=False)
            return await self.sync_status(_all(new_rs, olds), new_rs)
        await self.check_paused_conditions()
        if self.paused or await self.is_scaling_event():
            return await self.sync()
        if not du.is_rolling(self.d):
            return await self.rollout_recreate()
        return await self.rollout_rolling()

    @property
    def paused(self) -> bool:
        return bool((self.d.get("spec") or {}).get("paused"))

    @property
    def name(self) -> str:
        return str(meta(self.d).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(meta(self.d).get("namespace") or "default")

    async def selecting_all(self) -> None:
        await self.recorder.record(self.d, reason="SelectingAll", type="Warning",
                                   message="This deployment is selecting all pods. A non-empty selector is required.")
        status = copy.deepcopy(self.d.get("status") or {})
        generation = int(meta(self.d).get("generation") or 1)
        if int(status.get("observedGeneration") or 0) < generation:
            status["observedGeneration"] = generation
            await self.write_status(status)

    # --- writes -------------------------------------------------------------------------

    async def write_status(self, status: Obj) -> None:
        body = copy.deepcopy(self.d)
        body["status"] = status
        self.d = await self.client.update("deployments", body, subresource="status")

    async def set_revision(self, value: int) -> None:
        """The Deployment's own revision annotation, as ``kubectl describe`` shows it."""
        annotations = meta(self.d).get("annotations") or {}
        if annotations.get(du.REVISION) == str(value):
            return
        patch = {"metadata": {"annotations": {du.REVISION: str(value)},
                              "resourceVersion": meta(self.d).get("resourceVersion")}}
        self.d = await self.client.patch("deployments", self.name, patch, namespace=self.namespace)

    async def scale_rs(self, rs: Obj, size: int, *, operation: str | None = None) -> tuple[bool, Obj]:
        """Set an RS's size and the replica annotations; an event when the size changes."""
        current = du.replicas(rs)
        body = copy.deepcopy(rs)
        body.setdefault("metadata", {})
        annotated = du.set_replica_annotations(body, du.replicas(self.d), du.replicas(self.d) + du.max_surge(self.d))
        if current == size and not annotated:
            return False, rs
        body["spec"]["replicas"] = size
        updated: Obj = await self.client.update("replicasets", body)
        self.replace(updated)
        if current != size:
            operation = operation or ("up" if size > current else "down")
            await self.recorder.record(self.d, reason="ScalingReplicaSet",
                                       message=f"Scaled {operation} replica set {meta(rs).get('name')} "
                                               f"from {current} to {size}")
            self.log.info("scaled replica set", replicaset=meta(rs).get("name"), old=current, new=size)
        return current != size, updated

    def replace(self, rs: Obj) -> None:
        uid = meta(rs).get("uid")
        self.sets = [rs if meta(s).get("uid") == uid else s for s in self.sets]

    def latest(self, rs: Obj | None) -> Obj | None:
        if rs is None:
            return None
        uid = meta(rs).get("uid")
        return next((s for s in self.sets if meta(s).get("uid") == uid), rs)

    def split(self, new_rs: Obj | None) -> tuple[Obj | None, list[Obj]]:
        new_rs = self.latest(new_rs)
        uid = meta(new_rs).get("uid") if new_rs else None
        return new_rs, [s for s in self.sets if meta(s).get("uid") != uid]

    # --- the new ReplicaSet and revisions -----------------------------------------------

    def find_new(self) -> Obj | None:
        template = (self.d.get("spec") or {}).get("template")
        for rs in sorted(self.sets, key=du.created):
            if du.equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
                return rs
        return None

    async def get_all(self, *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (created when asked and missing) and the old ones, with
        revisions brought up to date (Kubernetes' getAllReplicaSetsAndSyncRevision)."""
        new_rs, olds = self.split(self.find_new())
        new_revision = max((du.revision(rs) for rs in olds), default=0) + 1
        if new_rs is not None:
            body = copy.deepcopy(new_rs)
            changed = du.set_new_rs_annotations(self.d, body, new_revision, exists=True)
            min_ready = (self.d.get("spec") or {}).get("minReadySeconds", 0)
            if (body.get("spec") or {}).get("minReadySeconds", 0) != min_ready:
                body["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                new_rs = await self.client.update("replicasets", body)
                self.replace(new_rs)
            await self.set_revision(du.revision(new_rs))
            status = copy.deepcopy(self.d.get("status") or {})
            if du.deadline(self.d) is not None and du.condition(status, "Progressing") is None:
                du.set_condition(status, du.new_condition("Progressing", "True", du.FOUND_NEW_RS,
                                                          f'Found new replica set "{meta(new_rs).get("name")}"'))
                await self.write_status(status)
            return new_rs, olds
        if not create:
            return None, olds
        return await self.create_new(olds, new_revision), olds

    async def create_new(self, olds: list[Obj], new_revision: int) -> Obj:
        spec = self.d.get("spec") or {}
        status = copy.deepcopy(self.d.get("status") or {})
        template = copy.deepcopy(spec.get("template") or {})
        digest = du.template_hash(template, status.get("collisionCount"))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = du.with_hash_label(tmeta.get("labels"), digest)
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = du.with_hash_label(selector.get("matchLabels"), digest)
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": f"{self.name}-{digest}", "namespace": self.namespace,
                         "labels": dict(tmeta["labels"]), "annotations": {},
                         "ownerReferences": [owner_reference(self.d)]},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template},
        }
        size = du.new_rs_replicas(self.d, olds, None)
        rs["spec"]["replicas"] = size
        du.set_new_rs_annotations(self.d, rs, new_revision, exists=False)
        try:
            created: Obj = await self.client.create("replicasets", rs, namespace=self.namespace)
        except ApiClientError as exc:
            if exc.reason != "AlreadyExists":
                raise
            existing: Obj = await self.client.get("replicasets", rs["metadata"]["name"], namespace=self.namespace)
            ref = controller_ref(existing)
            if ref and ref.get("uid") == meta(self.d).get("uid") and du.equal_ignore_hash(
                    (existing.get("spec") or {}).get("template"), spec.get("template")):
                # Ours, created by an earlier look the cache has not caught up with yet.
                self.sets.append(existing)
                return existing
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            self.log.warning("replica set name collision", replicaset=rs["metadata"]["name"],
                             collision_count=status["collisionCount"])
            await self.write_status(status)
            raise
        self.sets.append(created)
        self.log.info("created replica set", replicaset=meta(created).get("name"), replicas=size,
                      revision=new_revision)
        if size > 0:
            await self.recorder.record(self.d, reason="ScalingReplicaSet",
                                       message=f"Scaled up replica set {meta(created).get('name')} from 0 to {size}")
        await self.set_revision(new_revision)
        status = copy.deepcopy(self.d.get("status") or {})
        if du.deadline(self.d) is not None:
            du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_CREATED,
                                                      f'Created new replica set "{meta(created).get("name")}"'))
            await self.write_status(status)
        return created

    # --- pause and scaling ----------------------------------------------------------------

    async def check_paused_conditions(self) -> None:
        if du.deadline(self.d) is None:
            return
        status = copy.deepcopy(self.d.get("status") or {})
        cond = du.condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        if self.paused and not paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.PAUSED, "Deployment is paused"))
        elif not self.paused and paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.RESUMED, "Deployment is resumed"))
        else:
            return
        await self.write_status(status)

    async def is_scaling_event(self) -> bool:
        new_rs, olds = await self.get_all(create=False)
        for rs in du.active(_all(new_rs, olds)):
            desired = du.desired_annotation(rs)
            if desired is not None and desired != du.replicas(self.d):
                return True
        return False

    async def sync(self) -> Result | None:
        """Scale (proportionally while a rollout is under way) without rolling out."""
        new_rs, olds = await self.get_all(create=False)
        await self.scale(new_rs, olds)
        new_rs, olds = self.split(new_rs)
        if self.paused:
            await self.cleanup(olds)
            new_rs, olds = self.split(new_rs)
        return await self.sync_status(_all(new_rs, olds), new_rs)

    async def scale(self, new_rs: Obj | None, olds: list[Obj]) -> None:
        want = du.replicas(self.d)
        everything = _all(new_rs, olds)
        live = du.active(everything)
        if len(live) == 1 or (not live and everything):
            target = live[0] if live else (new_rs or sorted(olds, key=du.created)[-1])
            if du.replicas(target) != want:
                await self.scale_rs(target, want)
            return
        if not live:
            return
        if new_rs is not None and du.desired_annotation(new_rs) == want and du.replicas(new_rs) == want \
                and du.status_of(new_rs, "availableReplicas") == want:
            for old in du.active(olds):
                await self.scale_rs(old, 0)
            return
        if not du.is_rolling(self.d):
            return
        allowed = want + du.max_surge(self.d) if want > 0 else 0
        to_add = allowed - du.spec_total(live)
        if to_add > 0:
            live.sort(key=lambda rs: (-du.replicas(rs), -du.created(rs)[0]))
        elif to_add < 0:
            live.sort(key=lambda rs: (-du.replicas(rs), du.created(rs)))
        sizes: dict[str, int] = {}
        added = 0
        for rs in live:
            share = du.proportion(rs, self.d, to_add=to_add, added=added) if to_add else 0
            sizes[meta(rs).get("uid", "")] = du.replicas(rs) + share
            added += share
        operation = "up" if to_add > 0 else "down"
        for index, rs in enumerate(live):
            uid = meta(rs).get("uid", "")
            if index == 0 and to_add:
                sizes[uid] = max(sizes[uid] + to_add - added, 0)
            await self.scale_rs(rs, sizes[uid], operation=operation)

    # --- RollingUpdate --------------------------------------------------------------------

    async def rollout_rolling(self) -> Result | None:
        new_rs, olds = await self.get_all(create=True)
        if await self.reconcile_new(new_rs):
            new_rs, olds = self.split(new_rs)
            return await self.sync_rollout_status(_all(new_rs, olds), new_rs)
        new_rs, olds = self.split(new_rs)
        if await self.reconcile_old(new_rs, olds):
            new_rs, olds = self.split(new_rs)
            return await self.sync_rollout_status(_all(new_rs, olds), new_rs)
        if du.complete(self.d, self.d.get("status") or {}):
            await self.cleanup(olds)
            new_rs, olds = self.split(new_rs)
        return await self.sync_rollout_status(_all(new_rs, olds), new_rs)

    async def reconcile_new(self, new_rs: Obj | None) -> bool:
        if new_rs is None:
            return False
        want = du.replicas(self.d)
        if du.replicas(new_rs) == want:
            return False
        if du.replicas(new_rs) > want:
            scaled, _ = await self.scale_rs(new_rs, want)
            return scaled
        size = du.new_rs_replicas(self.d, self.sets, new_rs)
        scaled, _ = await self.scale_rs(new_rs, size)
        return scaled

    async def reconcile_old(self, new_rs: Obj | None, olds: list[Obj]) -> bool:
        """Scale old ReplicaSets down as far as availability allows: unhealthy pods first,
        then healthy ones while ``replicas - maxUnavailable`` stay available."""
        if du.spec_total(olds) == 0:
            return False
        all_sets = _all(new_rs, olds)
        min_available = du.replicas(self.d) - du.max_unavailable(self.d)
        new_unavailable = (du.replicas(new_rs) - du.available_of(new_rs)) if new_rs else 0
        max_scaled_down = du.spec_total(all_sets) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = 0
        for rs in sorted(du.active(olds), key=du.created):
            if cleaned >= max_scaled_down:
                break
            unhealthy = du.replicas(rs) - du.available_of(rs)
            if unhealthy <= 0:
                continue
            count = min(max_scaled_down - cleaned, unhealthy)
            await self.scale_rs(rs, du.replicas(rs) - count)
            cleaned += count
        new_rs, olds = self.split(new_rs)
        all_sets = _all(new_rs, olds)
        available = sum(du.available_of(rs) for rs in all_sets)
        scaled_down = 0
        if available > min_available:
            budget = available - min_available
            for rs in sorted(du.active(olds), key=du.created):
                if scaled_down >= budget:
                    break
                count = min(du.replicas(rs), budget - scaled_down)
                await self.scale_rs(rs, du.replicas(rs) - count)
                scaled_down += count
        return cleaned + scaled_down > 0

    # --- Recreate -------------------------------------------------------------------------

    async def rollout_recreate(self) -> Result | None:
        new_rs, olds = await self.get_all(create=False)
        scaled = False
        for rs in du.active(olds):
            changed, _ = await self.scale_rs(rs, 0)
            scaled = scaled or changed
        new_rs, olds = self.split(new_rs)
        if scaled or self.old_pods_running(new_rs, olds):
            return await self.sync_rollout_status(_all(new_rs, olds), new_rs)
        if new_rs is None:
            new_rs, olds = await self.get_all(create=True)
        if new_rs is not None and du.replicas(new_rs) != du.replicas(self.d):
            await self.scale_rs(new_rs, du.replicas(self.d))
        new_rs, olds = self.split(new_rs)
        if du.complete(self.d, self.d.get("status") or {}):
            await self.cleanup(olds)
            new_rs, olds = self.split(new_rs)
        return await self.sync_rollout_status(_all(new_rs, olds), new_rs)

    def old_pods_running(self, new_rs: Obj | None, olds: list[Obj]) -> bool:
        """Whether any pod of an old ReplicaSet still exists (terminating ones included)."""
        if sum(du.status_of(rs, "replicas") for rs in olds) > 0:
            return True
        old_uids = {meta(rs).get("uid") for rs in olds}
        for pod in self.cache.pods.list(namespace=self.namespace):
            ref = controller_ref(pod)
            if ref and ref.get("uid") in old_uids and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
                return True
        return False

    # --- history ----------------------------------------------------------------------------

    async def cleanup(self, olds: list[Obj]) -> None:
        """Delete the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        limit = (self.d.get("spec") or {}).get("revisionHistoryLimit", 10)
        if limit is None:
            return
        alive = [rs for rs in olds if not deleting(rs)]
        extra = len(alive) - int(limit)
        if extra <= 0:
            return
        for rs in sorted(alive, key=lambda s: (du.revision(s), du.created(s)))[:extra]:
            if (du.status_of(rs, "replicas") or du.replicas(rs)
                    or int(meta(rs).get("generation") or 1) > du.status_of(rs, "observedGeneration")):
                continue
            m = meta(rs)
            try:
                await self.client.delete("replicasets", m.get("name", ""), namespace=self.namespace,
                                         body={"preconditions": {"uid": m.get("uid")}})
            except ApiClientError as exc:
                if exc.code != 404:
                    raise
            self.sets = [s for s in self.sets if meta(s).get("uid") != m.get("uid")]
            self.log.info("deleted old replica set", replicaset=m.get("name"), revision=du.revision(rs))

    # --- status -----------------------------------------------------------------------------

    async def sync_status(self, all_sets: list[Obj], new_rs: Obj | None) -> Result | None:
        status = du.calculate_status(all_sets, new_rs, self.d)
        if status != (self.d.get("status") or {}):
            await self.write_status(status)
        return None

    async def sync_rollout_status(self, all_sets: list[Obj], new_rs: Obj | None) -> Result | None:
        """Status with the Progressing condition: complete, progressing, or timed out."""
        status = du.calculate_status(all_sets, new_rs, self.d)
        limit = du.deadline(self.d)
        if limit is None:
            du.remove_condition(status, "Progressing")
        current = du.condition(self.d.get("status") or {}, "Progressing")
        done = (status["replicas"] == status["updatedReplicas"] and current is not None
                and current.get("reason") == du.NEW_RS_AVAILABLE)
        now = time.time()
        rs_name = meta(new_rs).get("name") if new_rs else None
        if limit is not None and not done:
            if du.complete(self.d, status):
                message = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                           else f'Deployment "{self.name}" has successfully progressed.')
                du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, message))
            elif du.progressing(self.d, status):
                message = (f'ReplicaSet "{rs_name}" is progressing.' if rs_name
                           else f'Deployment "{self.name}" is progressing.')
                cond = du.new_condition("Progressing", "True", du.RS_UPDATED, message)
                if current is not None and current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                du.remove_condition(status, "Progressing")
                du.set_condition(status, cond)
            elif du.timed_out(self.d, status, now):
                message = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                           else f'Deployment "{self.name}" has timed out progressing.')
                du.set_condition(status, du.new_condition("Progressing", "False", du.TIMED_OUT, message))
        failure = next((du.condition(rs.get("status") or {}, "ReplicaFailure") for rs in
                        ([new_rs] if new_rs else []) + all_sets
                        if du.condition(rs.get("status") or {}, "ReplicaFailure")), None)
        if failure is not None:
            du.set_condition(status, du.new_condition("ReplicaFailure", "True", str(failure.get("reason") or ""),
                                                      str(failure.get("message") or "")))
        else:
            du.remove_condition(status, "ReplicaFailure")
        if status != (self.d.get("status") or {}):
            timed_out_now = (du.condition(status, "Progressing") or {}).get("reason") == du.TIMED_OUT
            was_timed_out = (current or {}).get("reason") == du.TIMED_OUT
            await self.write_status(status)
            if timed_out_now and not was_timed_out:
                await self.recorder.record(self.d, reason=du.TIMED_OUT, type="Warning",
                                           message=f'Deployment "{self.name}" has timed out progressing.')
        return self.requeue_stuck(status, now)

    def requeue_stuck(self, status: Obj, now: float) -> Result | None:
        """Come back when the progress deadline would pass, to notice a stalled rollout."""
        limit = du.deadline(self.d)
        cond = du.condition(status, "Progressing")
        if limit is None or cond is None or cond.get("reason") in (du.NEW_RS_AVAILABLE, du.TIMED_OUT):
            return None
        if du.complete(self.d, status):
            return None
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return None
        return Result(requeue_after=max(since + limit - now, 0.0) + 1.0)


def _all(new_rs: Obj | None, olds: list[Obj]) -> list[Obj]:
    return [*olds, new_rs] if new_rs is not None else list(olds)
