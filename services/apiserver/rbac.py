"""RBAC: Roles, ClusterRoles and their bindings decide what ordinary users may do.

The admin (system:masters), the control-plane components and nodes (NodeRestriction)
are decided in ``auth.authorize``; everyone else is allowed exactly what some
RoleBinding or ClusterRoleBinding grants them. The rules are cached in the API
server and re-read when any of the four kinds' revision moves (checked at most once
a second), so a new binding takes effect within a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.apiserver.auth import User
from shared.store import Store

RBAC_KINDS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")

#: The default ClusterRoles Kubernetes ships, reduced to what redkube serves.
DEFAULT_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "admin": [{"apiGroups": ["", "apps", "batch", "coordination.k8s.io", "rbac.authorization.k8s.io"],
               "resources": ["*"], "verbs": ["*"]}],
    "edit": [{"apiGroups": ["", "apps", "batch"],
              "resources": ["pods", "pods/log", "pods/eviction", "pods/exec", "services", "endpoints", "configmaps", "secrets",
                            "serviceaccounts", "replicasets", "replicasets/scale", "deployments",
                            "deployments/scale", "jobs", "events", "daemonsets", "statefulsets",
                            "statefulsets/scale", "cronjobs"],
              "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}],
    "view": [{"apiGroups": ["", "apps", "batch"],
              "resources": ["pods", "pods/log", "services", "endpoints", "configmaps", "serviceaccounts",
                            "replicasets", "replicasets/scale", "deployments", "deployments/scale", "jobs", "events",
                            "namespaces", "daemonsets", "statefulsets", "statefulsets/scale", "cronjobs"],
              "verbs": ["get", "list", "watch"]}],
}


def _rule_allows(rule: dict[str, Any], *, verb: str, group: str, resource: str, name: str | None) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and group not in groups:
        return False
    resources = rule.get("resources") or []
    base = resource.split("/", 1)[0]
    if "*" not in resources and resource not in resources and f"{base}/*" not in resources:
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


@dataclass
class Rbac:
    store: Store
    refresh_interval: float = 1.0
    _objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _revisions: dict[str, int] = field(default_factory=dict)
    _checked: float = 0.0

    async def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_interval:
            return
        self._checked = now
        for plural in RBAC_KINDS:
            revision = await self.store.revision(plural)
            if self._revisions.get(plural) != revision or plural not in self._objects:
                items, revision = await self.store.list(plural)
                self._objects[plural] = items
                self._revisions[plural] = revision

    def _rules(self, kind: str, name: str, namespace: str | None) -> list[dict[str, Any]]:
        if kind == "ClusterRole":
            for role in self._objects.get("clusterroles", []):
                if role["metadata"]["name"] == name:
                    return list(role.get("rules") or [])
            return list(DEFAULT_CLUSTER_ROLES.get(name, []))
        for role in self._objects.get("roles", []):
            if role["metadata"]["name"] == name and role["metadata"].get("namespace") == namespace:
                return list(role.get("rules") or [])
        return []

    def allows(self, user: User, *, verb: str, group: str, resource: str, namespace: str | None,
               name: str | None) -> bool:
        """``resource`` is ``plural`` or ``plural/subresource``."""
        for binding in self._objects.get("clusterrolebindings", []):
            if any(_subject_matches(s, user, None) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                rules = self._rules(ref.get("kind", ""), ref.get("name", ""), None)
                if any(_rule_allows(r, verb=verb, group=group, resource=resource, name=name) for r in rules):
                    return True
        if namespace is None:
            return False
        for binding in self._objects.get("rolebindings", []):
            binding_ns = binding["metadata"].get("namespace")
            if binding_ns != namespace:
                continue
            if any(_subject_matches(s, user, binding_ns) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                rules = self._rules(ref.get("kind", ""), ref.get("name", ""), binding_ns)
                if any(_rule_allows(r, verb=verb, group=group, resource=resource, name=name) for r in rules):
                    return True
        return False
