"""The filters that depend only on the pod's constraints and the node's static facts.

Shared by the scheduler and the DaemonSet controller, which must judge a node as the
scheduler would.

Unschedulable nodes, taints (a node that is not Ready counts as tainted
``node.kubernetes.io/not-ready`` or ``…/unreachable``, as the node lifecycle controller
would taint it, so a pod tolerating those may still go there), ``nodeSelector`` and
required node affinity. They run in Kubernetes' plugin order and stop at the first
failure, whose reason (Kubernetes' wording) feeds the "0/N nodes are available" message.
Their outcome is the same for every pod with the same constraints, so the scheduler
caches it per ``signature`` until a node changes; so is ``preference`` (preferred node
affinity, PreferNoSchedule taints), which only weighs in the score.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the static filters look at, extracted once per node change."""

    name: str
    labels: dict[str, str]
    unschedulable: bool
    taints: tuple[Taint, ...]  # blocking ones only, synthetic not-ready/unreachable included
    soft_taints: tuple[Taint, ...] = ()  # PreferNoSchedule: only lower the node's score

    def fingerprint(self) -> tuple[Any, ...]:
        return (tuple(sorted(self.labels.items())), self.unschedulable, self.taints, self.soft_taints)


def node_facts(node: Obj) -> NodeFacts:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    taints: list[Taint] = []
    soft: list[Taint] = []
    for raw in spec.get("taints") or []:
        if isinstance(raw, dict) and raw.get("effect") in (*BLOCKING_EFFECTS, "PreferNoSchedule"):
            taint = Taint(str(raw.get("key") or ""), str(raw.get("value") or ""), str(raw["effect"]))
            (soft if taint.effect == "PreferNoSchedule" else taints).append(taint)
    ready = "Unknown"
    for condition in (node.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            ready = str(condition.get("status"))
    if ready != "True":
        synthetic = NOT_READY_TAINT if ready == "False" else UNREACHABLE_TAINT
        if not any(t.key == synthetic for t in taints):
            taints.append(Taint(synthetic, "", "NoSchedule"))
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return NodeFacts(str(meta.get("name", "")), labels, bool(spec.get("unschedulable")), tuple(taints), tuple(soft))


def signature(spec: Obj) -> tuple[Any, ...]:
    """A hashable summary of the pod's static constraints (pods alike share the filter outcome)."""
    selector = spec.get("nodeSelector")
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    tolerations = spec.get("tolerations")
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    )
    return (
        json.dumps(preferred, sort_keys=True) if preferred else None,
        (tuple(sorted(selector.items())) if isinstance(selector, dict) else json.dumps(selector)) if selector else None,
        json.dumps(required, sort_keys=True) if required else None,
        json.dumps(tolerations, sort_keys=True) if tolerations else None,
    )


def tolerates(tolerations: Iterable[Obj], taint: Taint) -> bool:
    """Kubernetes' ToleratesTaint: empty effect/key match any; Exists ignores the value."""
    for toleration in tolerations:
        if not isinstance(toleration, dict):
            continue
        effect = toleration.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        key = toleration.get("key") or ""
        if key and key != taint.key:
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" or (operator == "Equal" and (toleration.get("value") or "") == taint.value):
            return True
    return False


def _requirement(requirement: Obj, value: str | None) -> bool:
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def term_matches(term: Obj, facts: NodeFacts) -> bool:
    """One nodeSelectorTerm: all its expressions and fields hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for requirement in expressions:
        if not isinstance(requirement, dict):
            return False
        key = requirement.get("key")
        if not _requirement(requirement, facts.labels.get(key) if isinstance(key, str) else None):
            return False
    for requirement in fields:
        if not isinstance(requirement, dict):
            return False
        value = facts.name if requirement.get("key") == "metadata.name" else None
        if requirement.get("key") != "metadata.name" or not _requirement(requirement, value):
            return False
    return True


def affinity_matches(spec: Obj, facts: NodeFacts) -> bool:
    selector = spec.get("nodeSelector") or {}
    for key, value in selector.items():
        if facts.labels.get(key) != str(value):
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required:
        terms = (required.get("nodeSelectorTerms") or []) if isinstance(required, dict) else []
        return any(isinstance(t, dict) and term_matches(t, facts) for t in terms)
    return True


def static_reason(spec: Obj, facts: NodeFacts) -> str | None:
    """Why the node cannot take the pod whatever its load, or None when it can."""
    tolerations = spec.get("tolerations") or []
    if facts.unschedulable and not tolerates(tolerations, Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")):
        return REASON_UNSCHEDULABLE
    for taint in facts.taints:
        if not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    if not affinity_matches(spec, facts):
        return REASON_AFFINITY
    return None


def preference(spec: Obj, facts: NodeFacts) -> tuple[int, int]:
    """Raw soft scores: summed weights of matching preferred affinity terms, and untolerated
    PreferNoSchedule taints (counting only tolerations whose effect is empty or PreferNoSchedule)."""
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []
    weight = 0
    for item in preferred:
        if isinstance(item, dict) and isinstance(item.get("preference"), dict):
            if term_matches(item["preference"], facts):
                weight += int(item.get("weight") or 0)
    tolerations = [
        t for t in spec.get("tolerations") or [] if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"
    ]
    untolerated = sum(1 for taint in facts.soft_taints if not tolerates(tolerations, taint))
    return weight, untolerated


def unavailable_message(total: int, reasons: dict[str, int], *, unresolvable: int) -> str:
    """Kubernetes' FitError text: "0/3 nodes are available: 1 Insufficient cpu, …. preemption: …"."""
    if total == 0:
        return "no nodes available to schedule pods"
    histogram = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    message = f"0/{total} nodes are available: {histogram}." if histogram else f"0/{total} nodes are available."
    # redkube does not preempt; say so the way Kubernetes does when preemption cannot help.
    parts = []
    if total - unresolvable > 0:
        parts.append(f"{total - unresolvable} No preemption victims found for incoming pod")
    if unresolvable:
        parts.append(f"{unresolvable} Preemption is not helpful for scheduling")
    return f"{message} preemption: 0/{total} nodes are available: {', '.join(sorted(parts))}."
