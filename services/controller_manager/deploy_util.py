"""Pure rules of the Deployment controller: template hashes, revisions, surge and
unavailability limits, status and conditions.

They follow Kubernetes' ``pkg/controller/deployment/util`` closely, because ``kubectl
rollout`` (status, history, undo) reads exactly these fields and annotations.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from services.controller_manager.rs_util import HASH_LABEL, meta, parse_time, without_hash
from shared.store import now_rfc3339

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
#: Deployment annotations a ReplicaSet does not inherit.
SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
})
REVISION_HISTORY_CHARS = 2000

# Condition reasons, as Kubernetes names them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


class SpecError(ValueError):
    """A Deployment spec the controller cannot act on (the API should have refused it)."""


# --- the template hash ----------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: Obj | None, collision_count: int | None = None) -> str:
    """A short, stable name for a pod template: FNV-1a of its canonical JSON (and the
    collision count), spelled in Kubernetes' safe alphabet (no vowels, no look-alikes)."""
    data = json.dumps(without_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in str(fnv32a(data)))


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    return without_hash(a) == without_hash(b)


def with_hash_label(obj: Obj | None, value: str) -> Obj:
    """A copy of a template's metadata or a selector's matchLabels with the hash label."""
    out = copy.deepcopy(obj or {})
    out[HASH_LABEL] = value
    return out


# --- fenceposts -------------------------------------------------------------------------


def scaled(value: Any, total: int, *, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SpecError(f"invalid value {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%") and text[:-1].isdigit():
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise SpecError(f"invalid value {value!r}: must be an integer or a percentage")


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") != "Recreate"


def replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1) or 0)


def fenceposts(d: Obj) -> tuple[int, int]:
    """maxSurge (rounded up) and maxUnavailable (rounded down) for the desired replicas;
    both zero would stall a rollout, so unavailability is then 1, as Kubernetes does."""
    rolling = (((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {})
    desired = replicas(d)
    surge = scaled(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


# --- replica sets -----------------------------------------------------------------------


def revision(obj: Obj | None) -> int:
    try:
        return int((meta(obj or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def created(obj: Obj) -> tuple[float, str]:
    return (parse_time(meta(obj).get("creationTimestamp")) or 0.0, meta(obj).get("name", ""))


def spec_total(sets: list[Obj]) -> int:
    return sum(replicas(rs) for rs in sets)


def status_of(rs: Obj, field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def available_of(rs: Obj) -> int:
    """Available pods an RS will keep: its reported count, but never more than it is told to
    keep, since a scale-down may not be reflected in its status yet."""
    return min(status_of(rs, "availableReplicas"), replicas(rs))


def active(sets: list[Obj]) -> list[Obj]:
    return [rs for rs in sets if replicas(rs) > 0]


def new_rs_replicas(d: Obj, all_sets: list[Obj], new_rs: Obj | None) -> int:
    """How big the new ReplicaSet may get now (Kubernetes' NewRSNewReplicas)."""
    current_new = replicas(new_rs) if new_rs else 0
    if not is_rolling(d):
        return replicas(d)
    total = spec_total(all_sets)
    most = replicas(d) + max_surge(d)
    if total >= most:
        return current_new
    return current_new + min(most - total, replicas(d) - current_new)


def set_replica_annotations(rs: Obj, desired: int, most: int) -> bool:
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for name, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(most))):
        if annotations.get(name) != value:
            annotations[name] = value
            changed = True
    return changed


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, *, exists: bool) -> bool:
    """Copy the Deployment's annotations onto its new ReplicaSet and give it the newest
    revision, remembering the revisions it had before (a rollback reuses an old RS)."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for name, value in (meta(d).get("annotations") or {}).items():
        if name in SKIPPED_ANNOTATIONS or annotations.get(name) == value:
            continue
        annotations[name] = value
        changed = True
    old_text = annotations.get(REVISION)
    old = revision(rs)
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_text is not None:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            history.append(old_text)
            while history and len(",".join(history)) > REVISION_HISTORY_CHARS:
                history.pop(0)
            annotations[REVISION_HISTORY] = ",".join(history)
    if not exists and set_replica_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def max_replicas_annotation(rs: Obj) -> int | None:
    try:
        return int((meta(rs).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        return None


def desired_annotation(rs: Obj) -> int | None:
    try:
        return int((meta(rs).get("annotations") or {})[DESIRED_REPLICAS])
    except (KeyError, ValueError):
        return None


def proportion(rs: Obj, d: Obj, *, to_add: int, added: int) -> int:
    """This RS's share of a scale while a rollout is under way (Kubernetes' GetProportion)."""
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -replicas(rs)
    else:
        most = replicas(d) + max_surge(d)
        before = max_replicas_annotation(rs) or int((d.get("status") or {}).get("replicas") or 0)
        if before == 0:
            fraction = 0
        else:
            fraction = math.floor(replicas(rs) * most / before + 0.5) - replicas(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# --- status and conditions -------------------------------------------------------------


def condition(status: Obj, kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def new_condition(kind: str, state: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {"type": kind, "status": state, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason,
            "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """Set a condition unless one with the same status and reason is there; keep the
    transition time when only the reason changes."""
    current = condition(status, cond["type"])
    if current and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, kind: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def calculate_status(all_sets: list[Obj], new_rs: Obj | None, d: Obj) -> Obj:
    available = sum(status_of(rs, "availableReplicas") for rs in all_sets)
    total = spec_total(all_sets)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int(meta(d).get("generation") or 1),
        "replicas": sum(status_of(rs, "replicas") for rs in all_sets),
        "updatedReplicas": status_of(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(status_of(rs, "readyReplicas") for rs in all_sets),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability."))
    return status


def complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= int(meta(d).get("generation") or 1))


def progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}

    def get(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    return (get(new, "updatedReplicas") > get(old, "updatedReplicas") or get(new, "replicas") < get(old, "replicas")
            or get(new, "readyReplicas") > get(old, "readyReplicas")
            or get(new, "availableReplicas") > get(old, "availableReplicas"))


def deadline(d: Obj) -> int | None:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds", 600)
    return None if value is None or value >= 2**31 - 1 else int(value)


def timed_out(d: Obj, status: Obj, now: float) -> bool:
    limit = deadline(d)
    cond = condition(status, "Progressing")
    if limit is None or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + limit < now
