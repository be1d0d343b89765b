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


# --- DaemonSet -------------------------------------------------------------------


class RollingUpdateDaemonSet(K8sModel):
    maxUnavailable: IntOrString | None = 1
    maxSurge: IntOrString | None = 0


class DaemonSetUpdateStrategy(K8sModel):
    type: str = "RollingUpdate"
    rollingUpdate: RollingUpdateDaemonSet | None = None


class DaemonSetSpec(K8sModel):
    selector: LabelSelector
    template: PodTemplateSpec
    updateStrategy: DaemonSetUpdateStrategy = Field(
        default_factory=lambda: DaemonSetUpdateStrategy(rollingUpdate=RollingUpdateDaemonSet())
    )
    minReadySeconds: int | None = None
    revisionHistoryLimit: int = 10


class DaemonSetStatus(K8sModel):
    currentNumberScheduled: int = 0
    numberMisscheduled: int = 0
    desiredNumberScheduled: int = 0
    numberReady: int = 0
    observedGeneration: int | None = None
    updatedNumberScheduled: int | None = None
    numberAvailable: int | None = None
    numberUnavailable: int | None = None
    collisionCount: int | None = None
    conditions: list[Condition] | None = None


class DaemonSet(TypedObject):
    spec: DaemonSetSpec
    status: DaemonSetStatus | None = None


# --- StatefulSet -----------------------------------------------------------------


class RollingUpdateStatefulSetStrategy(K8sModel):
    partition: int | None = 0
    maxUnavailable: IntOrString | None = None


class StatefulSetUpdateStrategy(K8sModel):
    type: str = "RollingUpdate"
    rollingUpdate: RollingUpdateStatefulSetStrategy | None = None


class StatefulSetSpec(K8sModel):
    replicas: int = 1
    selector: LabelSelector
    template: PodTemplateSpec
    serviceName: str | None = None
    podManagementPolicy: str = "OrderedReady"
    updateStrategy: StatefulSetUpdateStrategy = Field(
        default_factory=lambda: StatefulSetUpdateStrategy(rollingUpdate=RollingUpdateStatefulSetStrategy())
    )
    revisionHistoryLimit: int = 10
    minReadySeconds: int | None = None
    # Kept as given: redkube has no volumes, so no claims are ever made from them.
    volumeClaimTemplates: list[dict[str, Any]] | None = None
    persistentVolumeClaimRetentionPolicy: dict[str, Any] | None = None
    ordinals: dict[str, Any] | None = None


class StatefulSetStatus(K8sModel):
    observedGeneration: int | None = None
    replicas: int = 0
    readyReplicas: int | None = None
    currentReplicas: int | None = None
    updatedReplicas: int | None = None
    currentRevision: str | None = None
    updateRevision: str | None = None
    collisionCount: int | None = None
    availableReplicas: int | None = None
    conditions: list[Condition] | None = None


class StatefulSet(TypedObject):
    spec: StatefulSetSpec
    status: StatefulSetStatus | None = None


# --- CronJob ---------------------------------------------------------------------


class JobTemplateSpec(K8sModel):
    metadata: ObjectMeta | None = None
    spec: JobSpec


class CronJobSpec(K8sModel):
    schedule: str
    jobTemplate: JobTemplateSpec
    timeZone: str | None = None
    startingDeadlineSeconds: int | None = None
    concurrencyPolicy: str = "Allow"
    suspend: bool = False
    successfulJobsHistoryLimit: int | None = 3
    failedJobsHistoryLimit: int | None = 1


class CronJobStatus(K8sModel):
    active: list[dict[str, Any]] | None = None
    lastScheduleTime: str | None = None
    lastSuccessfulTime: str | None = None


class CronJob(TypedObject):
    spec: CronJobSpec
    status: CronJobStatus | None = None


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


__all__ = [
    "CronJob",
    "DaemonSet",
    "Deployment",
    "Eviction",
    "Job",
    "Lease",
    "ObjectMeta",
    "ReplicaSet",
    "Scale",
    "StatefulSet",
]
