"""Kinds redkube stores and serves but runs no controller for, as a cluster without
that add-on would: Ingress (no ingress controller), NetworkPolicy (no policy-enforcing
network), PodDisruptionBudget (evictions do not consult it yet), HorizontalPodAutoscaler
(no metrics), PersistentVolumeClaim (no storage provisioner). Manifests written for
real clusters carry them; refusing them would fail a whole ``kubectl apply``.
"""

from __future__ import annotations

from typing import Any

from shared.models.base import TypedObject


class PassiveObject(TypedObject):
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


class Ingress(PassiveObject):
    pass


class NetworkPolicy(PassiveObject):
    pass


class PodDisruptionBudget(PassiveObject):
    pass


class HorizontalPodAutoscaler(PassiveObject):
    pass


class PersistentVolumeClaim(PassiveObject):
    pass
