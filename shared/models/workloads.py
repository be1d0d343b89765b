"""apps/v1, batch/v1, coordination.k8s.io/v1 and policy/v1 kinds."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.models.base import Condition, K8sModel, LabelSelector, ObjectMeta, TypedObject
from shared.models.core import IntOrString, PodTemplateSpec

# --- ReplicaSet ------------------------------------------------------------------


class ReplicaSetSpec(K8sModel):
    replicas: int = 1
    minReadySeconds: int = 0
    selector: LabelSelector
    template: PodTemplateSpec


class ReplicaSetStatus(K8sModel):
    replicas: int = 0
    fullyLabeledReplicas: int | None = None
    readyReplicas: int | None = None
    availableReplicas: int | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None
    known_fields = frozenset({"terminatingReplicas"})


class ReplicaSet(TypedObject):
    spec: ReplicaSetSpec
    status: ReplicaSetStatus | None = None


# --- Deployment ------------------------------------------------------------------


class RollingUpdateDeployment(K8sModel):
    maxUnavailable: IntOrString | None = None
    maxSurge: IntOrString | None = None


class DeploymentStrategy(K8sModel):
    type: str = "RollingUpdate"
    rollingUpdate: RollingUpdateDeployment | None = None


class DeploymentSpec(K8sModel):
    replicas: int = 1
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy)
    minReadySeconds: int = 0
    revisionHistoryLimit: int = 10
    paused: bool | None = None
    progressDeadlineSeconds: int = 600


class DeploymentStatus(K8sModel):
    observedGeneration: int | None = None
    replicas: int | None = None
    updatedReplicas: int | None = None
    readyReplicas: int | None = None
    availableReplicas: int | None = None
    unavailableReplicas: int | None = None
    conditions: list[Condition] | None = None
    collisionCount: int | None = None
    known_fields = frozenset({"terminatingReplicas"})


class Deployment(TypedObject):
    spec: DeploymentSpec
    status: DeploymentStatus | None = None


class Scale(TypedObject):
    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] | None = None


# --- Job -------------------------------------------------------------------------


class JobSpec(K8sModel):
    template: PodTemplateSpec
    parallelism: int = 1
    completions: int | None = 1
    backoffLimit: int = 6
    activeDeadlineSeconds: int | None = None
    ttlSecondsAfterFinished: int | None = None
    selector: LabelSelector | None = None
    manualSelector: bool | None = None
    completionMode: str = "NonIndexed"
    suspend: bool = False
    known_fields = frozenset(
        {
            "podFailurePolicy",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "podReplacementPolicy",
            "successPolicy",
            "managedBy",
        }
    )


class JobStatus(K8sModel):
    conditions: list[Condition] | None = None
    startTime: str | None = None
    completionTime: str | None = None
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    ready: int | None = None
    known_fields = frozenset({"completedIndexes", "failedIndexes", "terminating", "uncountedTerminatedPods"})


class Job(TypedObject):
    spec: JobSpec
    status: JobStatus | None = None


# --- Lease, Eviction -------------------------------------------------------------


class LeaseSpec(K8sModel):
    holderIdentity: str | None = None
    leaseDurationSeconds: int | None = None
    acquireTime: str | None = None
    renewTime: str | None = None
    leaseTransitions: int | None = None
    known_fields = frozenset({"preferredHolder", "strategy"})


class Lease(TypedObject):
    spec: LeaseSpec = Field(default_factory=LeaseSpec)


class Eviction(TypedObject):
    deleteOptions: dict[str, Any] | None = None


__all__ = ["Deployment", "Eviction", "Job", "Lease", "ObjectMeta", "ReplicaSet", "Scale"]
