"""The scheduler's view of every node's load: pods seen bound plus pods it has assumed.

Like kube-scheduler's cache, a pod is "assumed" on its node the moment the scheduler
decides, before the binding is written, so the next decision already counts it; the
assumption is confirmed when the pod informer shows the pod bound (to whichever node
won), and dropped when the binding fails or, after a successful bind that the watch
never shows, when it expires. Counting follows the API server's binding check: every
pod with a node and a non-terminal phase counts, deleting or not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.scheduler.resources import Requests, controller_uid, is_terminal, node_allocatable, pod_requests
from shared.node_filters import NodeFacts, node_facts

Obj = dict[str, Any]


@dataclass(slots=True)
class NodeInfo:
    name: str
    facts: NodeFacts | None = None  # None: known only from pods bound to it, not as a Node
    cpu: int = 0  # allocatable
    memory: int = 0
    pods: int = 0
    used_cpu: int = 0  # requested by pods counted here
    used_memory: int = 0
    used_pods: int = 0
    score_cpu: int = 0  # requested with non-zero defaults, for scoring
    score_memory: int = 0
    owners: dict[str, int] = field(default_factory=dict)  # controller uid -> pods here


@dataclass(slots=True)
class Counted:
    node: str
    requests: Requests
    owner: str
    assumed: bool
    expires: float = 0.0  # for assumptions whose binding succeeded: drop if never seen bound


class SchedulerCache:
    def __init__(self, *, assume_ttl: float = 30.0) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.node_names: list[str] = []  # real Nodes, in a stable order
        self.generation = 0  # bumped when a node's static facts change
        self._counted: dict[str, Counted] = {}
        self._assume_ttl = assume_ttl

    # --- nodes ---------------------------------------------------------------------

    def _info(self, name: str) -> NodeInfo:
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        return info

    def set_node(self, node: Obj) -> bool:
        """Record a Node; True when something a pending pod could care about changed."""
        facts = node_facts(node)
        info = self._info(facts.name)
        cpu, memory, pods = node_allocatable(node)
        fresh = info.facts is None
        static_changed = fresh or info.facts is None or info.facts.fingerprint() != facts.fingerprint()
        capacity_changed = (info.cpu, info.memory, info.pods) != (cpu, memory, pods)
        info.facts = facts
        info.cpu, info.memory, info.pods = cpu, memory, pods
        if fresh:
            self.node_names.append(facts.name)
        if static_changed:
            self.generation += 1
        return static_changed or capacity_changed

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None or info.facts is None:
            return
        info.facts = None
        info.cpu = info.memory = info.pods = 0
        self.node_names.remove(name)
        self.generation += 1
        if not info.used_pods:
            del self.nodes[name]

    # --- pods ----------------------------------------------------------------------

    def _add(self, key: str, counted: Counted) -> None:
        self._remove(key)
        info = self._info(counted.node)
        r = counted.requests
        info.used_cpu += r.cpu
        info.used_memory += r.memory
        info.used_pods += 1
        info.score_cpu += r.score_cpu
        info.score_memory += r.score_memory
        if counted.owner:
            info.owners[counted.owner] = info.owners.get(counted.owner, 0) + 1
        self._counted[key] = counted

    def _remove(self, key: str) -> Counted | None:
        counted = self._counted.pop(key, None)
        if counted is None:
            return None
        info = self.nodes.get(counted.node)
        if info is not None:
            r = counted.requests
            info.used_cpu -= r.cpu
            info.used_memory -= r.memory
            info.used_pods -= 1
            info.score_cpu -= r.score_cpu
            info.score_memory -= r.score_memory
            if counted.owner:
                left = info.owners.get(counted.owner, 0) - 1
                if left > 0:
                    info.owners[counted.owner] = left
                else:
                    info.owners.pop(counted.owner, None)
            if info.facts is None and not info.used_pods:
                del self.nodes[counted.node]
        return counted

    def update_pod(self, key: str, pod: Obj) -> bool:
        """Count a pod as the informer shows it; True when this freed capacity somewhere."""
        node = (pod.get("spec") or {}).get("nodeName")
        previous = self._counted.get(key)
        if not node:
            # Unbound: keep this scheduler's assumption, if any, until the bind answers.
            return False
        if is_terminal(pod):
            return self._remove(key) is not None
        if previous is not None and not previous.assumed and previous.node == node:
            return False
        try:
            requests = pod_requests(pod.get("spec") or {})
        except (ValueError, TypeError, AttributeError):
            requests = Requests(0, 0, 0, 0)
        self._add(key, Counted(node, requests, controller_uid(pod), assumed=False))
        return previous is not None and previous.node != node

    def remove_pod(self, key: str) -> bool:
        return self._remove(key) is not None

    def assume(self, key: str, *, node: str, requests: Requests, owner: str) -> None:
        self._add(key, Counted(node, requests, owner, assumed=True))

    def forget(self, key: str) -> None:
        """Drop an assumption (the bind failed); a pod seen bound stays counted."""
        counted = self._counted.get(key)
        if counted is not None and counted.assumed:
            self._remove(key)

    def bound(self, key: str) -> None:
        """The binding succeeded: keep assuming until the watch shows it, but not forever."""
        counted = self._counted.get(key)
        if counted is not None and counted.assumed:
            counted.expires = time.monotonic() + self._assume_ttl

    def expire(self) -> int:
        now = time.monotonic()
        stale = [k for k, c in self._counted.items() if c.assumed and c.expires and c.expires < now]
        for key in stale:
            self._remove(key)
        return len(stale)

    def is_counted(self, key: str) -> bool:
        return key in self._counted

    def assumed_count(self) -> int:
        return sum(1 for c in self._counted.values() if c.assumed)
