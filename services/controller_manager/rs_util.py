"""What the ReplicaSet and Deployment controllers share: pod state, owner references,
adoption and release, and the order in which pods are given up.

Everything here reads plain API objects (dicts, as the informer caches hold them).
The rules are Kubernetes' own (``pkg/controller/controller_utils.go`` and
``controller_ref_manager.go``), so a Kubernetes user sees the choices they expect.
"""

from __future__ import annotations

import calendar
import copy
import re
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import structlog

from shared import selectors
from shared.bus import ApiClientError, BusClient

Obj = dict[str, Any]

TERMINAL_PHASES = ("Succeeded", "Failed")
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp; None when absent or malformed."""
    if not value:
        return None
    match = _TIME.match(value)
    if not match:
        return None
    seconds = float(calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")))
    if match.group(2):
        seconds += float(match.group(2))
    zone = match.group(3)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def key_of(obj: Obj) -> str:
    m = meta(obj)
    return f"{m.get('namespace') or ''}/{m.get('name', '')}"


def controller_ref(obj: Obj) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj) -> Obj:
    m = meta(owner)
    return {
        "apiVersion": owner.get("apiVersion") or "apps/v1",
        "kind": owner.get("kind") or "",
        "name": m.get("name", ""),
        "uid": m.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def observe_owned_pod(kind: str, pod: Obj, old: Obj | None, *, owner: str, expectations: Any) -> None:
    """Count a watch event of a pod ``owner`` controls against its outstanding creations/deletions."""
    if kind == "DELETED" or (deleting(pod) and (old is None or not deleting(old))):
        expectations.deletion_observed(owner, key_of(pod))
    elif kind == "ADDED":
        expectations.creation_observed(owner)


def label_selector(obj: Obj) -> selectors.LabelSelector:
    """The selector of a ReplicaSet or Deployment; raises SelectorError when malformed."""
    return selectors.from_label_selector((obj.get("spec") or {}).get("selector"))


# --- pods ----------------------------------------------------------------------------


def is_active(pod: Obj) -> bool:
    """Counted toward replicas: not finished and not on its way out."""
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES and not deleting(pod)


def _condition(pod: Obj, kind: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def ready_since(pod: Obj) -> float | None:
    cond = _condition(pod, "Ready")
    if not cond or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def available_in(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """0 when the pod counts as available, seconds to wait when ready but not yet long
    enough, None when it is not ready at all."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return 0.0
    return max(since + min_ready_seconds - now, 0.0)


def restarts(pod: Obj) -> int:
    return max((int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def scale_down_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order they should be deleted, least valuable first, as Kubernetes ranks
    them: unscheduled before scheduled, Pending before Unknown before Running, not ready
    before ready, pods on crowded nodes first, ready more recently first, more restarts
    first, newer before older."""
    per_node = Counter((p.get("spec") or {}).get("nodeName") for p in pods if (p.get("spec") or {}).get("nodeName"))

    def rank(pod: Obj) -> tuple[Any, ...]:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        ready = is_ready(pod)
        since = ready_since(pod) if ready else None
        created = parse_time(meta(pod).get("creationTimestamp")) or 0.0
        return (
            1 if node else 0,
            _PHASE_RANK.get(phase, 0),
            1 if ready else 0,
            -per_node.get(node, 0) if node else 0,
            -(since or 0.0),
            -restarts(pod),
            -created,
            meta(pod).get("name", ""),
        )

    return sorted(pods, key=rank)


# --- templates ----------------------------------------------------------------------

HASH_LABEL = "pod-template-hash"


def without_hash(template: Obj | None) -> Obj:
    """A pod template with the pod-template-hash label removed and empty values dropped, for
    comparing a Deployment's template with a ReplicaSet's (Kubernetes' EqualIgnoreHash). Empty
    maps and lists count as absent, as Kubernetes' semantic equality has it: ``kubectl rollout
    undo`` sends a template that spells out ``resources: {}`` where the original had none."""
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    pruned = _prune(out)
    return pruned if isinstance(pruned, dict) else {}


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# --- adoption and release -------------------------------------------------------------


async def claim(
    owner: Obj,
    candidates: Iterable[Obj],
    *,
    plural: str,
    selector: selectors.LabelSelector,
    client: BusClient,
    log: Any = None,
) -> list[Obj]:
    """The candidates ``owner`` controls once orphans it selects are adopted and the ones
    it no longer selects are released (Kubernetes' ClaimObject, one object at a time).
    A failed patch is logged and skipped: the change it causes (or a later one) brings the
    owner back for another look."""
    log = log or structlog.get_logger()
    om = meta(owner)
    uid = om.get("uid")
    owner_gone = deleting(owner)
    claimed: list[Obj] = []
    adopt_checked: bool | None = None
    for obj in candidates:
        labels = meta(obj).get("labels")
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selector.matches(labels):
                claimed.append(obj)
            elif not owner_gone and not deleting(obj):
                await _set_owners(obj, [r for r in meta(obj).get("ownerReferences") or [] if r.get("uid") != uid],
                                  plural=plural, client=client, log=log, action="release")
            continue
        if owner_gone or deleting(obj) or not selector.matches(labels):
            continue
        if adopt_checked is None:
            adopt_checked = await _can_adopt(owner, client=client)
        if not adopt_checked:
            continue
        owners = [*(meta(obj).get("ownerReferences") or []), owner_reference(owner)]
        adopted = await _set_owners(obj, owners, plural=plural, client=client, log=log, action="adopt")
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def _can_adopt(owner: Obj, *, client: BusClient) -> bool:
    """Re-read the owner from the API (not the cache) before adopting, as Kubernetes does,
    so a deleted-and-recreated owner of the same name never adopts on the old one's behalf."""
    om = meta(owner)
    plural = "deployments" if owner.get("kind") == "Deployment" else "replicasets"
    try:
        fresh = await client.get(plural, om.get("name", ""), namespace=om.get("namespace"))
    except ApiClientError:
        return False
    return meta(fresh).get("uid") == om.get("uid") and not deleting(fresh)


async def _set_owners(obj: Obj, owners: list[Obj], *, plural: str, client: BusClient, log: Any,
                      action: str) -> Obj | None:
    m = meta(obj)
    patch = {"metadata": {"ownerReferences": owners or None, "resourceVersion": m.get("resourceVersion")}}
    try:
        result: Obj = await client.patch(plural, m.get("name", ""), patch, namespace=m.get("namespace"))
    except ApiClientError as exc:
        log.info(f"could not {action}", object=key_of(obj), kind=plural, error=str(exc))
        return None
    log.info("adopted" if action == "adopt" else "released", object=key_of(obj), kind=plural)
    return result
