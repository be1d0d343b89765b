"""The resource kinds redkube serves: REST names, groups, scope and their models.

This registry drives routing, discovery, the store's key names and validation, so
adding a kind is adding one entry here (and its model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.models.authentication import SelfSubjectReview
from shared.models.base import TypedObject
from shared.models.core import (
    Binding,
    ConfigMap,
    Endpoints,
    Event,
    Namespace,
    Node,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from shared.models.passive import (
    HorizontalPodAutoscaler,
    Ingress,
    NetworkPolicy,
    PersistentVolumeClaim,
    PodDisruptionBudget,
)
from shared.models.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding, SelfSubjectAccessReview
from shared.models.workloads import (
    CronJob,
    DaemonSet,
    Deployment,
    Eviction,
    Job,
    Lease,
    ReplicaSet,
    Scale,
    StatefulSet,
)

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str
    version: str
    namespaced: bool
    model: type[TypedObject]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = ""
    verbs: tuple[str, ...] = ALL_VERBS
    has_status: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def name(self) -> str:
        return self.singular or self.kind.lower()


RESOURCES: tuple[Resource, ...] = (
    Resource("namespaces", "Namespace", "", "v1", False, Namespace, ("ns",), (), ("status", "finalize")),
    Resource("nodes", "Node", "", "v1", False, Node, ("no",), (), ("status",)),
    Resource("pods", "Pod", "", "v1", True, Pod, ("po",), ("all",), ("status", "binding", "log", "eviction")),
    Resource("services", "Service", "", "v1", True, Service, ("svc",), ("all",), ("status",)),
    Resource(
        "endpoints", "Endpoints", "", "v1", True, Endpoints, ("ep",), (), (), singular="endpoints", has_status=False
    ),
    Resource("configmaps", "ConfigMap", "", "v1", True, ConfigMap, ("cm",), (), (), has_status=False),
    Resource("secrets", "Secret", "", "v1", True, Secret, (), (), (), has_status=False),
    Resource("serviceaccounts", "ServiceAccount", "", "v1", True, ServiceAccount, ("sa",), (), (), has_status=False),
    Resource("events", "Event", "", "v1", True, Event, ("ev",), (), (), has_status=False),
    Resource("replicasets", "ReplicaSet", "apps", "v1", True, ReplicaSet, ("rs",), ("all",), ("status", "scale")),
    Resource("deployments", "Deployment", "apps", "v1", True, Deployment, ("deploy",), ("all",), ("status", "scale")),
    Resource("jobs", "Job", "batch", "v1", True, Job, (), ("all",), ("status",)),
    Resource("daemonsets", "DaemonSet", "apps", "v1", True, DaemonSet, ("ds",), ("all",), ("status",)),
    Resource("statefulsets", "StatefulSet", "apps", "v1", True, StatefulSet, ("sts",), ("all",), ("status", "scale")),
    Resource("cronjobs", "CronJob", "batch", "v1", True, CronJob, ("cj",), ("all",), ("status",)),
    Resource("leases", "Lease", "coordination.k8s.io", "v1", True, Lease, (), (), (), has_status=False),
    Resource("roles", "Role", "rbac.authorization.k8s.io", "v1", True, Role, (), (), (), has_status=False),
    Resource(
        "clusterroles",
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "v1",
        False,
        ClusterRole,
        (),
        (),
        (),
        has_status=False,
    ),
    Resource(
        "rolebindings",
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        True,
        RoleBinding,
        (),
        (),
        (),
        has_status=False,
    ),
    Resource(
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        "authorization.k8s.io",
        "v1",
        False,
        SelfSubjectAccessReview,
        (),
        (),
        (),
        verbs=("create",),
        has_status=False,
    ),
    Resource(
        "selfsubjectreviews",
        "SelfSubjectReview",
        "authentication.k8s.io",
        "v1",
        False,
        SelfSubjectReview,
        verbs=("create",),
        has_status=False,
    ),
    Resource(
        "clusterrolebindings",
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        False,
        ClusterRoleBinding,
        (),
        (),
        (),
        has_status=False,
    ),
    # Stored and served, no controller acts on them (see shared/models/passive.py).
    Resource("persistentvolumeclaims", "PersistentVolumeClaim", "", "v1", True, PersistentVolumeClaim, ("pvc",),
             (), ("status",)),
    Resource("ingresses", "Ingress", "networking.k8s.io", "v1", True, Ingress, ("ing",), (), ("status",)),
    Resource("networkpolicies", "NetworkPolicy", "networking.k8s.io", "v1", True, NetworkPolicy, ("netpol",),
             (), (), has_status=False),
    Resource("poddisruptionbudgets", "PodDisruptionBudget", "policy", "v1", True, PodDisruptionBudget, ("pdb",),
             (), ("status",)),
    Resource("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v2", True,
             HorizontalPodAutoscaler, ("hpa",), (), ("status",)),
)

BY_PLURAL: dict[str, Resource] = {r.plural: r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}

#: Subresource bodies have kinds of their own.
SUBRESOURCE_MODELS: dict[str, type[TypedObject]] = {
    "binding": Binding,
    "scale": Scale,
    "eviction": Eviction,
}

#: Group -> versions served, in discovery order.
GROUPS: dict[str, tuple[str, ...]] = {}
for _r in RESOURCES:
    GROUPS.setdefault(_r.group, ())
    if _r.version not in GROUPS[_r.group]:
        GROUPS[_r.group] = (*GROUPS[_r.group], _r.version)


def lookup(name: str) -> Resource | None:
    """Find a resource by plural, singular, kind or short name (as kubectl accepts)."""
    lowered = name.lower()
    for resource in RESOURCES:
        if lowered in (resource.plural, resource.name, resource.kind.lower(), *resource.short_names):
            return resource
    if "." in lowered:
        plural, _, group = lowered.partition(".")
        found = lookup(plural)
        if found and group in (found.group, f"{found.version}.{found.group}"):
            return found
    return None


def by_group_version(group: str, version: str, plural: str) -> Resource | None:
    resource = BY_PLURAL.get(plural)
    if resource and resource.group == group and resource.version == version:
        return resource
    return None
