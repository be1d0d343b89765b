"""The transport-neutral request and response the handler works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.apiserver.auth import User
from shared.resources import Resource


@dataclass
class ApiRequest:
    """One API call, whether it came over HTTP or the request stream."""

    verb: str  # get list watch create update patch delete deletecollection
    resource: Resource
    user: User
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    body: Any = None
    content_type: str = "application/json"
    params: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None

    def flag(self, name: str) -> bool:
        return self.params.get(name, "").lower() in ("true", "1")


@dataclass
class ApiResponse:
    code: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
