"""authentication.k8s.io/v1: SelfSubjectReview ("who am I?", ``kubectl auth whoami``); never stored."""

from __future__ import annotations

from typing import Any

from shared.models.base import TypedObject


class SelfSubjectReview(TypedObject):
    status: dict[str, Any] | None = None
