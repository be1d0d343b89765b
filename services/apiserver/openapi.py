"""OpenAPI v3 discovery: enough for kubectl to find server-side field validation.

kubectl v1.32 validates manifests on the server (``fieldValidation=Strict``) when the
OpenAPI v3 document lists that query parameter on the kind's PATCH operation;
otherwise it insists on downloading full schemas. Each group/version document here
lists every resource path with its operations, parameters and the
``x-kubernetes-group-version-kind`` extension, and a schema per kind that names the
kind and its top-level fields.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from shared.resources import GROUPS, RESOURCES, Resource


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gvk(resource: Resource) -> dict[str, str]:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _schema_name(resource: Resource) -> str:
    group = resource.group or "core"
    return f"io.k8s.api.{group.split('.')[0]}.{resource.version}.{resource.kind}"


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}, "uniqueItems": True}


WRITE_PARAMS = [
    _query("dryRun", "When present, indicates that modifications should not be persisted."),
    _query("fieldManager", "a name associated with the actor or entity that is making these changes."),
    _query(
        "fieldValidation",
        "instructs the server on how to handle objects in the request containing "
        "unknown or duplicate fields: Ignore, Warn or Strict.",
    ),
]
LIST_PARAMS = [
    _query(n, n)
    for n in (
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "watch",
        "timeoutSeconds",
        "allowWatchBookmarks",
    )
]


def _operation(resource: Resource, action: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{_schema_name(resource)}"}
    op: dict[str, Any] = {
        "operationId": f"{action}{resource.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource),
    }
    if action in ("post", "put", "patch"):
        media = (
            ["application/json", "application/yaml"]
            if action != "patch"
            else [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        )
        op["requestBody"] = {
            "content": {m: {"schema": ref if action != "patch" else {"type": "object"}} for m in media}
        }
    return op


def _paths(resource: Resource) -> dict[str, Any]:
    base = f"/{_gv_path(resource.group, resource.version)}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{base}/{resource.plural}"
    )
    item = f"{collection}/{{name}}"
    patch_params = [*WRITE_PARAMS, _query("force", 'Force is going to "force" Apply requests.')]
    paths = {
        collection: {
            "get": _operation(resource, "list", LIST_PARAMS),
            "post": _operation(resource, "post", WRITE_PARAMS),
            "delete": _operation(resource, "deletecollection", LIST_PARAMS),
        },
        item: {
            "get": _operation(resource, "get", []),
            "put": _operation(resource, "put", WRITE_PARAMS),
            "patch": _operation(resource, "patch", patch_params),
            "delete": _operation(
                resource, "delete", [_query("gracePeriodSeconds", ""), _query("propagationPolicy", "")]
            ),
        },
    }
    if "status" in resource.subresources:
        paths[f"{item}/status"] = {
            "get": _operation(resource, "get", []),
            "put": _operation(resource, "put", WRITE_PARAMS),
            "patch": _operation(resource, "patch", patch_params),
        }
    return paths


def _schema(resource: Resource) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }
    for name in resource.model.model_fields:
        if name not in properties:
            properties[name] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {"type": "object", "properties": properties, "x-kubernetes-group-version-kind": [_gvk(resource)]}


@cache
def group_version_document(group: str, version: str) -> dict[str, Any] | None:
    members = [r for r in RESOURCES if r.group == group and r.version == version]
    if not members:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource in members:
        paths.update(_paths(resource))
        schemas[_schema_name(resource)] = _schema(resource)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-redkube"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@cache
def root_document() -> dict[str, Any]:
    paths = {}
    for group, versions in GROUPS.items():
        for version in versions:
            doc = group_version_document(group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def document(path: str) -> dict[str, Any] | None:
    """The document at an ``/openapi/...`` path, or None (404)."""
    if path == "/openapi/v3":
        return root_document()
    if path.startswith("/openapi/v3/"):
        parts = path.removeprefix("/openapi/v3/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            return group_version_document("", parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return group_version_document(parts[1], parts[2])
    return None
