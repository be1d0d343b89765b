"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding."""

from __future__ import annotations

from typing import Any

from shared.models.base import K8sModel, TypedObject


class PolicyRule(K8sModel):
    verbs: list[str]
    apiGroups: list[str] | None = None
    resources: list[str] | None = None
    resourceNames: list[str] | None = None
    nonResourceURLs: list[str] | None = None


class Role(TypedObject):
    rules: list[PolicyRule] | None = None


class ClusterRole(TypedObject):
    rules: list[PolicyRule] | None = None
    aggregationRule: dict[str, Any] | None = None


class Subject(K8sModel):
    kind: str
    name: str
    apiGroup: str | None = None
    namespace: str | None = None


class RoleRef(K8sModel):
    apiGroup: str
    kind: str
    name: str


class RoleBinding(TypedObject):
    subjects: list[Subject] | None = None
    roleRef: RoleRef


class ClusterRoleBinding(TypedObject):
    subjects: list[Subject] | None = None
    roleRef: RoleRef


class SelfSubjectAccessReview(TypedObject):
    """authorization.k8s.io/v1: "may I do this?" (``kubectl auth can-i``); never stored."""

    spec: dict[str, Any]
    status: dict[str, Any] | None = None
