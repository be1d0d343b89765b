"""What a pod asks of a node: effective cpu/memory requests, counted as the API server counts them.

The API server refuses a binding that would overcommit a node using the same rule
(``pod_requests`` in the API server's strategies); it is copied here, not imported,
because services do not import each other. The scheduler must count exactly as the
API server does, or it would pick nodes the binding check then refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import quantity

TERMINAL_PHASES = ("Succeeded", "Failed")
#: Requests assumed for scoring when a container sets none (Kubernetes' non-zero defaults),
#: so that pods without requests still spread instead of piling onto one node.
DEFAULT_SCORE_CPU_MILLI = 100
DEFAULT_SCORE_MEMORY = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Requests:
    cpu: int  # milli
    memory: int  # bytes
    score_cpu: int  # with non-zero defaults, for scoring only
    score_memory: int


def pod_requests(spec: dict[str, Any]) -> Requests:
    """Effective requests: the sum over containers, or the largest init container if bigger.

    A container's limits stand in for requests it does not set. Raises ValueError on a
    quantity that does not parse.
    """

    def one(container: dict[str, Any]) -> tuple[int, int, int, int]:
        resources = container.get("resources") or {}
        requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        cpu = quantity.milli(requests["cpu"]) if "cpu" in requests else 0
        mem = quantity.whole(requests["memory"]) if "memory" in requests else 0
        score_cpu = cpu if "cpu" in requests else DEFAULT_SCORE_CPU_MILLI
        score_mem = mem if "memory" in requests else DEFAULT_SCORE_MEMORY
        return cpu, mem, score_cpu, score_mem

    totals = [0, 0, 0, 0]
    for container in spec.get("containers") or []:
        for index, value in enumerate(one(container)):
            totals[index] += value
    for init in spec.get("initContainers") or []:
        for index, value in enumerate(one(init)):
            totals[index] = max(totals[index], value)
    return Requests(*totals)


def is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def controller_uid(pod: dict[str, Any]) -> str:
    """The uid of the pod's controlling owner (ReplicaSet, Job, …), or "" when it has none."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


def node_allocatable(node: dict[str, Any]) -> tuple[int, int, int]:
    """A node's allocatable (cpu milli, memory bytes, pods); zeros when it reports none.

    Mirrors the API server's capacity record: allocatable, else capacity; pods default 110.
    """
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity")
    if not allocatable:
        return 0, 0, 0
    try:
        return (
            quantity.milli(allocatable.get("cpu", "0")),
            quantity.whole(allocatable.get("memory", "0")),
            int(quantity.whole(allocatable.get("pods", "110"))),
        )
    except (ValueError, TypeError, AttributeError):
        return 0, 0, 0
