"""API errors as Kubernetes ``Status`` objects, with the reasons clients switch on."""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """Raised anywhere in request handling; rendered as a Status by both transports."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(resource: Any, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    if name:
        details["name"] = name
    return details


def _qualified(resource: Any) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def not_found(resource: Any, name: str) -> ApiError:
    return ApiError(404, f'{_qualified(resource)} "{name}" not found', details=_details(resource, name))


def already_exists(resource: Any, name: str) -> ApiError:
    return ApiError(
        409, f'{_qualified(resource)} "{name}" already exists', reason="AlreadyExists", details=_details(resource, name)
    )


def conflict(resource: Any, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {_qualified(resource)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        reason="Conflict",
        details=_details(resource, name),
    )


def invalid(resource: Any, name: str, causes: list[dict[str, str]]) -> ApiError:
    summary = ", ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    details = _details(resource, name)
    details["kind"] = resource.kind
    details["causes"] = causes
    return ApiError(422, f'{resource.kind} "{name}" is invalid: {summary}', reason="Invalid", details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def success(resource: Any, name: str, uid: str | None = None) -> dict[str, Any]:
    details = _details(resource, name)
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
