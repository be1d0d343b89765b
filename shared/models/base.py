"""Shared building blocks of the Kubernetes API objects: metadata, selectors, conditions.

Field names are the Kubernetes wire names (camelCase) on purpose: the models mirror
the API reference field for field, so manifests and client payloads round-trip
unchanged. Fields redkube does not interpret are kept (``extra="allow"``); under
``fieldValidation=Strict`` only names Kubernetes itself defines are accepted
(``known_fields`` lists the ones not modelled here).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import quantity


class K8sModel(BaseModel):
    """Base of every API type: strict types, unknown fields kept."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)
    known_fields: ClassVar[frozenset[str]] = frozenset()

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class OwnerReference(K8sModel):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ObjectMeta(K8sModel):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managedFields: list[dict[str, Any]] | None = None
    known_fields = frozenset({"selfLink"})


class ListMeta(K8sModel):
    resourceVersion: str | None = None
    continue_: str | None = Field(default=None, alias="continue")
    remainingItemCount: int | None = None


class LabelSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(K8sModel):
    matchLabels: dict[str, str] | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None


class Condition(K8sModel):
    """The condition shape shared by Pods, Nodes, Deployments and Jobs."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None
    lastProbeTime: str | None = None
    lastHeartbeatTime: str | None = None
    lastUpdateTime: str | None = None
    observedGeneration: int | None = None


Quantity = str


def check_quantities(value: dict[str, Any] | None) -> dict[str, str] | None:
    """Validate a resource list and store every quantity in its string form."""
    if value is None:
        return None
    return {name: quantity.canonical(q) for name, q in value.items()}


class ResourceRequirements(K8sModel):
    limits: dict[str, str | int | float] | None = None
    requests: dict[str, str | int | float] | None = None

    @field_validator("limits", "requests")
    @classmethod
    def _quantities(cls, value: dict[str, Any] | None) -> dict[str, str] | None:
        return check_quantities(value)


class TypedObject(K8sModel):
    """A top-level object: ``apiVersion``, ``kind``, ``metadata``."""

    apiVersion: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
