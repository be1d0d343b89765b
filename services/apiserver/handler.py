"""The one request handler behind both transports (HTTP and the request stream).

It authorizes, validates, applies defaults and admission rules, and turns each verb
into store operations; it knows nothing of HTTP or streams. Writes that read first
(update without a resourceVersion, patch, delete) retry their compare-and-swap on a
conflict, as the Kubernetes registry does, so only a stale client precondition
surfaces as 409.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from services.apiserver import errors, strategies, validation
from services.apiserver.allocation import Allocator
from services.apiserver.auth import authorize, self_subject_review
from services.apiserver.errors import ApiError
from services.apiserver.rbac import Rbac
from services.apiserver.requests import ApiRequest, ApiResponse
from shared import patch as patching
from shared import selectors
from shared.models.base import K8sModel
from shared.resources import BY_PLURAL, SUBRESOURCE_MODELS, Resource, lookup
from shared.store import Gone, Mutation, Store, StoreError, now_rfc3339, object_key

CAS_RETRIES = 8
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
APPLY_PATCH = "application/apply-patch+yaml"


def _random_suffix(length: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


class Handler:
    def __init__(
        self, store: Store, *, allocator: Allocator | None = None, redis: aioredis.Redis | None = None, keys: Any = None
    ) -> None:
        self.store = store
        self.rbac = Rbac(store)
        self.allocator = allocator
        self.redis = redis
        self.keys = keys

    # --- dispatch ----------------------------------------------------------------

    async def handle(self, req: ApiRequest) -> ApiResponse:
        verb = req.verb
        await self.rbac.refresh()
        if req.resource.plural == "selfsubjectaccessreviews":
            return self._access_review(req)
        if req.resource.plural == "selfsubjectreviews":
            return self._subject_review(req)
        if req.subresource and req.subresource not in req.resource.subresources:
            raise ApiError(
                404,
                f"the server could not find the requested resource ({req.resource.plural}/{req.subresource})",
                reason="NotFound",
            )
        if req.subresource == "scale":
            return await self._scale(req)
        if verb == "get":
            return await self._get(req)
        if verb == "list":
            return await self._list(req)
        if verb == "create":
            return await self._create(req)
        if verb in ("update", "patch"):
            return await self._update(req)
        if verb == "delete":
            return await self._delete(req)
        if verb == "deletecollection":
            return await self._delete_collection(req)
        raise ApiError(405, f"verb {verb!r} is not supported", reason="MethodNotAllowed")

    def _key(self, req: ApiRequest, name: str | None = None) -> str:
        return object_key(req.namespace if req.resource.namespaced else None, name or req.name or "")

    def _authorize(self, req: ApiRequest, verb: str | None = None, existing: dict[str, Any] | None = None) -> None:
        authorize(
            req.user,
            verb=verb or req.verb,
            resource=req.resource,
            namespace=req.namespace,
            name=req.name,
            subresource=req.subresource,
            existing=existing,
            rbac=self.rbac,
        )

    def _access_review(self, req: ApiRequest) -> ApiResponse:
        """``kubectl auth can-i``: answer whether the caller may do what the review describes."""
        if req.verb != "create":
            raise ApiError(405, "selfsubjectaccessreviews only support create", reason="MethodNotAllowed")
        body = req.body if isinstance(req.body, dict) else {}
        spec = body["spec"] if isinstance(body.get("spec"), dict) else {}
        attrs = spec.get("resourceAttributes") or {}
        allowed, reason = False, ""
        if isinstance(attrs, dict) and attrs:
            target = lookup(str(attrs.get("resource", ""))) if attrs.get("resource") != "*" else None
            resource = target or req.resource
            subresource = attrs.get("subresource") or None
            if target is None and attrs.get("resource") not in ("*", None):
                reason = f"the server doesn't have a resource type {attrs.get('resource')!r}"
            else:
                try:
                    authorize(req.user, verb=str(attrs.get("verb", "")), resource=resource,
                              namespace=attrs.get("namespace") or None, name=attrs.get("name") or None,
                              subresource=subresource, rbac=self.rbac)
                    allowed = True
                except ApiError:
                    allowed = False  # Kubernetes gives no reason when no rule allows it
        elif spec.get("nonResourceAttributes"):
            allowed = "system:masters" in req.user.groups
        status: dict[str, Any] = {"allowed": allowed}
        if reason and not allowed:
            status["reason"] = reason
        return ApiResponse(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                                 "metadata": {"creationTimestamp": None}, "spec": spec, "status": status})

    def _subject_review(self, req: ApiRequest) -> ApiResponse:
        """``kubectl auth whoami``: who the server thinks the caller is."""
        if req.verb != "create":
            raise ApiError(405, "selfsubjectreviews only support create", reason="MethodNotAllowed")
        return ApiResponse(201, self_subject_review(req.user))

    # --- reads -------------------------------------------------------------------

    async def _get(self, req: ApiRequest) -> ApiResponse:
        obj = await self.store.get(req.resource.plural, self._key(req))
        self._authorize(req, existing=obj)
        if obj is None:
            raise errors.not_found(req.resource, req.name or "")
        return ApiResponse(200, obj)

    async def list_objects(self, req: ApiRequest) -> tuple[list[dict[str, Any]], int]:
        resource = req.resource
        label_sel = _parse_labels(req.params.get("labelSelector"))
        field_sel = _parse_fields(req.params.get("fieldSelector"), resource)
        namespace = req.namespace if resource.namespaced else None
        items, revision = await self.store.list(resource.plural, namespace=namespace)
        items = [
            o for o in items if label_sel.matches((o.get("metadata") or {}).get("labels")) and field_sel.matches(o)
        ]
        return items, revision

    async def _list(self, req: ApiRequest) -> ApiResponse:
        self._authorize(req)
        items, revision = await self.list_objects(req)
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        limit = _int_param(req, "limit")
        token = req.params.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = str(state["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("invalid continue token") from exc
            items = [o for o in items if _sort_key(o) > start]
        if limit and limit > 0 and len(items) > limit:
            last = _sort_key(items[limit - 1])
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"start": last, "rv": revision}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        body = {
            "kind": req.resource.list_kind,
            "apiVersion": req.resource.api_version,
            "metadata": meta,
            "items": items,
        }
        return ApiResponse(200, body)

    async def check_watch(self, req: ApiRequest) -> None:
        """Refuse a watch up front: bad selectors, no permission, or a compacted revision."""
        self._authorize(req, verb="watch")
        _parse_labels(req.params.get("labelSelector"))
        _parse_fields(req.params.get("fieldSelector"), req.resource)
        rv = req.params.get("resourceVersion", "")
        if req.flag("sendInitialEvents") and not req.flag("allowWatchBookmarks"):
            raise errors.invalid(req.resource, "", [validation.forbidden(
                "sendInitialEvents", "sendInitialEvents requires setting allowWatchBookmarks to true")])
        if rv not in ("", "0") and not req.flag("sendInitialEvents"):
            try:
                revision = int(rv)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion {rv!r}") from exc
            try:
                await self.store.check_watchable(req.resource.plural, revision)
            except Gone as exc:
                raise ApiError(410, str(exc), reason="Expired") from exc

    async def watch(
        self, req: ApiRequest, *, conn: aioredis.Redis, block_ms: int = 1000, stop: Any = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events as dicts ``{"type", "object"}``; 410 Gone when compacted."""
        self._authorize(req, verb="watch")
        resource = req.resource
        label_sel = _parse_labels(req.params.get("labelSelector"))
        field_sel = _parse_fields(req.params.get("fieldSelector"), resource)
        if req.name:
            field_sel = selectors.FieldSelector((*field_sel.requirements, ("metadata.name", "=", req.name)))
        namespace = req.namespace if resource.namespaced else None
        rv = req.params.get("resourceVersion", "")
        matching: set[str] = set()
        selective = not label_sel.empty or bool(field_sel.requirements)

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            if namespace and meta.get("namespace") != namespace:
                return False
            return label_sel.matches(meta.get("labels")) and field_sel.matches(obj)

        initial_events = req.flag("sendInitialEvents")
        if rv in ("", "0") or initial_events:
            # The current state as ADDED events first (rv unset or 0, or client-go's watch-list).
            items, last = await self.store.list(resource.plural, namespace=namespace)
            for obj in items:
                if matches(obj):
                    matching.add(_sort_key(obj))
                    yield {"type": "ADDED", "object": obj}
            if initial_events:
                yield {"type": "BOOKMARK", "object": {
                    "kind": resource.kind, "apiVersion": resource.api_version,
                    "metadata": {"resourceVersion": str(last),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}}
        else:
            try:
                last = int(rv)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion {rv!r}") from exc
            try:
                await self.store.check_watchable(resource.plural, last)
            except Gone as exc:
                raise ApiError(410, str(exc), reason="Expired") from exc
            if selective:
                items, _ = await self.store.list(resource.plural, namespace=namespace)
                matching = {_sort_key(o) for o in items if matches(o)}
        bookmarks = req.flag("allowWatchBookmarks")
        while stop is None or not stop.is_set():
            try:
                events = await self.store.read_events(resource.plural, last, conn=conn, block_ms=block_ms)
            except Gone as exc:
                yield {"type": "ERROR", "object": ApiError(410, str(exc), reason="Expired").status()}
                return
            for event in events:
                last = event.revision
                key = event.key
                if matches(event.object):
                    kind = event.type
                    if selective and kind == "MODIFIED" and key not in matching:
                        kind = "ADDED"
                    if kind == "DELETED":
                        matching.discard(key)
                    else:
                        matching.add(key)
                    yield {"type": kind, "object": event.object}
                elif key in matching:
                    matching.discard(key)
                    yield {"type": "DELETED", "object": event.object}
            if not events and bookmarks:
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": resource.kind,
                        "apiVersion": resource.api_version,
                        "metadata": {"resourceVersion": str(last)},
                    },
                }

    # --- writes ------------------------------------------------------------------

    def _decode_body(self, req: ApiRequest, *, kind: str | None = None) -> dict[str, Any]:
        body = req.body
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON or YAML object")
        body = copy.deepcopy(body)
        resource = req.resource
        expected_kind = kind or resource.kind
        expected_version = resource.api_version
        if kind in ("Binding", "Eviction", "Scale"):
            expected_version = {"Binding": "v1", "Eviction": "policy/v1", "Scale": "autoscaling/v1"}[kind]
        body_kind = body.get("kind")
        if body_kind is not None and body_kind != expected_kind:
            raise errors.bad_request(
                f'the kind "{body_kind}" in the request body does not match the "{expected_kind}" '
                f"of the {resource.plural} endpoint"
            )
        body_version = body.get("apiVersion")
        if body_version is not None and body_version != expected_version and kind not in ("Eviction", "Scale"):
            raise errors.bad_request(
                f"the API version in the data ({body_version}) does not match the expected API version "
                f"({expected_version})"
            )
        body["kind"] = expected_kind
        body["apiVersion"] = expected_version
        return body

    def _admit(self, req: ApiRequest, obj: dict[str, Any], *, name: str) -> tuple[dict[str, Any], list[str]]:
        """Validate structure and rules; returns the defaulted object and warnings."""
        resource = req.resource
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise errors.invalid(resource, name, [validation.invalid("metadata", meta, "must be an object")])
        try:
            model = resource.model.model_validate(obj)
        except ValidationError as exc:
            raise errors.invalid(resource, name, validation.pydantic_causes(exc)) from exc
        unknown = validation.unknown_fields(model)
        mode = req.params.get("fieldValidation", "Warn")
        warnings: list[str] = []
        if unknown:
            if mode == "Strict":
                detail = ", ".join(f'unknown field "{f}"' for f in unknown)
                raise ApiError(400, f"strict decoding error: {detail}")
            _prune(model, set(unknown))
            if mode != "Ignore":
                warnings = [f'unknown field "{f}"' for f in unknown]
        result = model.dump()
        strategies.normalize(resource, result)
        causes = validation.validate_metadata(resource, result.get("metadata") or {})
        causes += validation.validate_spec(resource, result)
        if causes:
            raise errors.invalid(resource, name, causes)
        return result, warnings

    async def _ensure_namespace(self, req: ApiRequest) -> None:
        if not req.resource.namespaced:
            return
        ns = await self.store.get("namespaces", object_key(None, req.namespace or ""))
        if ns is None:
            raise ApiError(
                404, f'namespaces "{req.namespace}" not found', details={"name": req.namespace, "kind": "namespaces"}
            )
        if (ns.get("metadata") or {}).get("deletionTimestamp") and req.resource.plural != "events":
            raise ApiError(
                403,
                f'{req.resource.plural} "{req.name or ""}" is forbidden: unable to create new '
                f"content in namespace {req.namespace} because it is being terminated",
                reason="Forbidden",
            )

    async def _create(self, req: ApiRequest) -> ApiResponse:
        resource = req.resource
        if req.subresource == "binding":
            return await self._bind(req)
        if req.subresource == "eviction":
            return await self._evict(req)
        if req.subresource:
            raise ApiError(
                405, f"create is not supported on {resource.plural}/{req.subresource}", reason="MethodNotAllowed"
            )
        body = self._decode_body(req)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if resource.namespaced:
            body_ns = meta.get("namespace")
            if req.namespace and body_ns and body_ns != req.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            req.namespace = req.namespace or body_ns or "default"
            meta["namespace"] = req.namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and isinstance(meta.get("generateName"), str) and meta["generateName"]:
            meta["name"] = f"{meta['generateName']}{_random_suffix()}"
        name = str(meta.get("name") or "")
        req.name = name
        self._authorize(req, existing=body)
        now = now_rfc3339()
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = strategies.new_uid()
        meta["creationTimestamp"] = now
        meta["generation"] = 1
        obj, warnings = self._admit(req, body, name=name)
        strategies.prepare_create(resource, obj, now)
        await self._ensure_namespace(req)
        if req.params.get("dryRun") == "All":
            return ApiResponse(201, obj)
        key = self._key(req, name)
        claimed: list[str] = []
        if resource.plural == "services" and self.allocator is not None:
            claimed = await self.allocator.allocate(key, obj["spec"])
        try:
            result = await self._write_create(req, key, obj)
        except StoreError as exc:
            if claimed and self.allocator is not None:
                await self.allocator.release_fields(key, claimed)
            if exc.reason == "exists":
                raise errors.already_exists(resource, name) from exc
            raise self._store_error(exc, req) from exc
        await self._after_write(resource, result.object)
        headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else {}
        return ApiResponse(200 if result.duplicate else 201, result.object, headers)

    async def _write_create(self, req: ApiRequest, key: str, obj: dict[str, Any]) -> Mutation:
        node = (obj.get("spec") or {}).get("nodeName") if req.resource.plural == "pods" else None
        return await self.store.create(
            req.resource.plural,
            key,
            obj,
            request_id=req.request_id,
            node=node,
            account=strategies.pod_account(obj) if req.resource.plural == "pods" else "",
        )

    async def _after_write(self, resource: Resource, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """Derived data kept beside the object: a node's capacity for the binding check."""
        if resource.plural != "nodes":
            return
        name = obj["metadata"]["name"]
        capacity = None if deleted else strategies.node_capacity(obj)
        if capacity is None:
            await self.store.forget_node_capacity(name)
        else:
            cpu, mem, pods = capacity
            await self.store.set_node_capacity(name, cpu_milli=cpu, memory=mem, pods=pods)

    def _store_error(self, exc: StoreError, req: ApiRequest) -> ApiError:
        if exc.reason == "conflict":
            return errors.conflict(req.resource, req.name or "")
        if exc.reason == "notfound":
            return errors.not_found(req.resource, req.name or "")
        if exc.reason == "exists":
            return errors.already_exists(req.resource, req.name or "")
        if exc.reason == "nonode":
            return ApiError(404, f'nodes "{exc.detail}" not found', details={"name": exc.detail, "kind": "nodes"})
        if exc.reason == "overcommit":
            return ApiError(
                409, f"pod {req.name} cannot be bound: node would be overcommitted: {exc.detail}", reason="Conflict"
            )
        return ApiError(500, f"store error: {exc}")

    async def _update(self, req: ApiRequest) -> ApiResponse:
        resource = req.resource
        if req.subresource not in (None, "status", "finalize"):
            raise ApiError(
                405, f"{req.verb} is not supported on {resource.plural}/{req.subresource}", reason="MethodNotAllowed"
            )
        is_patch = req.verb == "patch"
        body = req.body
        if not is_patch:
            body = self._decode_body(req)
            meta = body.get("metadata") or {}
            if meta.get("name") not in (None, req.name):
                raise errors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({req.name})"
                )
            if resource.namespaced and meta.get("namespace") not in (None, req.namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
        for _attempt in range(CAS_RETRIES):
            existing = await self.store.get(resource.plural, self._key(req))
            if existing is None:
                self._authorize(req)
                if is_patch and req.content_type.startswith(APPLY_PATCH) and req.subresource is None:
                    return await self._apply_create(req)
                if not is_patch and resource.plural in strategies.CREATE_ON_UPDATE and req.subresource is None:
                    return await self._create(req)
                raise errors.not_found(resource, req.name or "")
            self._authorize(req, existing=existing)
            if is_patch:
                new, precondition = self._patched(req, existing)
            else:
                new = copy.deepcopy(body)
                precondition = (new.get("metadata") or {}).get("resourceVersion")
            if precondition and precondition != existing["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, req.name or "")
            obj, warnings = self._merge_update(req, existing, new)
            if req.params.get("dryRun") == "All":
                return ApiResponse(200, obj)
            services = resource.plural == "services" and self.allocator is not None and req.subresource is None
            claimed = await self.allocator.allocate(self._key(req), obj["spec"]) if services and self.allocator else []
            try:
                result = await self._write_update(req, existing, obj)
            except StoreError as exc:
                if claimed:
                    await self.allocator.release_fields(self._key(req), claimed)  # type: ignore[union-attr]
                if exc.reason == "conflict" and not precondition:
                    continue
                raise self._store_error(exc, req) from exc
            except BaseException:
                if claimed:
                    await self.allocator.release_fields(self._key(req), claimed)  # type: ignore[union-attr]
                raise
            if services and not result.object["metadata"].get("deletionTimestamp"):
                await self.allocator.release_unused(self._key(req), existing["spec"], obj["spec"])  # type: ignore[union-attr]
            headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else {}
            return ApiResponse(200, result.object, headers)
        raise errors.conflict(resource, req.name or "")

    def _patched(self, req: ApiRequest, existing: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        current = copy.deepcopy(existing)
        ct = req.content_type
        body = req.body
        if ct.startswith(APPLY_PATCH):
            if not isinstance(body, dict):
                raise errors.bad_request("an apply patch must be a YAML or JSON object")
            body = {k: v for k, v in body.items() if k not in ("status",)}
            ct = "application/strategic-merge-patch+json"
        elif ct.startswith("application/json") and not ct.startswith("application/json-patch"):
            raise ApiError(
                415,
                f"the content type {ct!r} is not a patch type; use "
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json or application/apply-patch+yaml",
            )
        try:
            patched = patching.apply(current, body, ct)
        except patching.PatchError as exc:
            if "unsupported patch type" in str(exc):
                raise ApiError(415, str(exc)) from exc
            raise ApiError(422 if "test failed" in str(exc) else 400, str(exc)) from exc
        precondition = None
        if isinstance(body, dict):
            precondition = ((body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}).get(
                "resourceVersion"
            )
        elif isinstance(body, list):
            if any(
                isinstance(op, dict)
                and op.get("path") == "/metadata/resourceVersion"
                and op.get("op") in ("replace", "add")
                for op in body
            ):
                precondition = (patched.get("metadata") or {}).get("resourceVersion")
        return patched, precondition

    def _merge_update(
        self, req: ApiRequest, existing: dict[str, Any], new: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """The object to store: the request's changes limited to what this endpoint may change."""
        resource = req.resource
        if not isinstance(new, dict):
            raise errors.bad_request("the request body must be an object")
        new.setdefault("metadata", {})
        if not isinstance(new["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        if req.subresource == "status":
            merged = copy.deepcopy(existing)
            merged["status"] = new.get("status")
            new = merged
        elif req.subresource == "finalize":
            merged = copy.deepcopy(existing)
            merged["spec"] = new.get("spec") or {}
            new = merged
        elif resource.has_status and "status" in existing:
            new["status"] = copy.deepcopy(existing["status"])
        meta, old_meta = new["metadata"], existing["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new["kind"], new["apiVersion"] = resource.kind, resource.api_version
        obj, warnings = self._admit(req, new, name=req.name or "")
        causes = validation.validate_immutable(resource, existing, obj)
        if causes:
            raise errors.invalid(resource, req.name or "", causes)
        if resource.plural == "services" and existing.get("spec", {}).get("clusterIP"):
            obj["spec"].setdefault("clusterIP", existing["spec"]["clusterIP"])
            obj["spec"].setdefault("clusterIPs", existing["spec"].get("clusterIPs"))
            if obj["spec"].get("type") in ("NodePort", "LoadBalancer"):
                for new_port in obj["spec"].get("ports") or []:
                    for old_port in existing["spec"].get("ports") or []:
                        same = (old_port.get("port"), old_port.get("protocol")) == (
                            new_port.get("port"), new_port.get("protocol"))
                        if same and old_port.get("nodePort"):
                            new_port.setdefault("nodePort", old_port["nodePort"])
        if (obj.get("spec") != existing.get("spec")) and "generation" in old_meta:
            obj["metadata"]["generation"] = int(old_meta.get("generation") or 1) + 1
        return obj, warnings

    async def _write_update(self, req: ApiRequest, existing: dict[str, Any], obj: dict[str, Any]) -> Mutation:
        plural = req.resource.plural
        key = self._key(req)
        expected = existing["metadata"]["resourceVersion"]
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if plural == "namespaces" and meta.get("deletionTimestamp"):
            finalizers = finalizers + list((obj.get("spec") or {}).get("finalizers") or [])
        node = (obj.get("spec") or {}).get("nodeName") if plural == "pods" else None
        if meta.get("deletionTimestamp") and not finalizers and not (plural == "pods" and node):
            result = await self.store.delete(plural, key, obj, expected=expected, request_id=req.request_id, node=node)
            await self._after_write(req.resource, obj, deleted=True)
            await self._release(req, obj)
            return result
        had_node = (existing.get("spec") or {}).get("nodeName") if plural == "pods" else None
        result = await self.store.update(
            plural,
            key,
            obj,
            expected=expected,
            request_id=req.request_id,
            node=node,
            node_event="ADDED" if node and not had_node else None,
            account=strategies.pod_account(obj) if plural == "pods" else "",
        )
        await self._after_write(req.resource, result.object)
        return result

    async def _release(self, req: ApiRequest, obj: dict[str, Any]) -> None:
        if req.resource.plural == "services" and self.allocator is not None:
            await self.allocator.release(self._key(req), obj.get("spec") or {})

    async def _apply_create(self, req: ApiRequest) -> ApiResponse:
        """Server-side apply of an object that does not exist yet is a create."""
        create = ApiRequest(
            "create",
            req.resource,
            req.user,
            req.namespace,
            None,
            None,
            copy.deepcopy(req.body),
            "application/json",
            dict(req.params),
            req.request_id,
        )
        if isinstance(create.body, dict):
            create.body.setdefault("metadata", {})["name"] = req.name
        return await self._create(create)

    # --- delete --------------------------------------------------------------------

    async def _delete(self, req: ApiRequest) -> ApiResponse:
        resource = req.resource
        options = req.body if isinstance(req.body, dict) else {}
        grace = _int_param(req, "gracePeriodSeconds")
        if grace is None and isinstance(options.get("gracePeriodSeconds"), int):
            grace = options["gracePeriodSeconds"]
        policy = req.params.get("propagationPolicy") or options.get("propagationPolicy")
        if options.get("orphanDependents") is True or req.params.get("orphanDependents") == "true":
            policy = policy or "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(
                f'unsupported propagationPolicy "{policy}": supported values: "Background", "Foreground", "Orphan"'
            )
        preconditions = options.get("preconditions") or {}
        for _attempt in range(CAS_RETRIES):
            existing = await self.store.get(resource.plural, self._key(req))
            self._authorize(req, existing=existing)
            if existing is None:
                raise errors.not_found(resource, req.name or "")
            meta = existing["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise ApiError(
                    409,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta.get('uid')}",
                    reason="Conflict",
                )
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(resource, req.name or "")
            obj = copy.deepcopy(existing)
            finalizers = list(obj["metadata"].get("finalizers") or [])
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            graceful = self._grace_period(resource, obj, grace)
            if req.params.get("dryRun") == "All":
                return ApiResponse(200, obj)
            try:
                if resource.plural == "namespaces" or finalizers or graceful is not None:
                    result = await self._mark_deleted(req, obj, finalizers, graceful)
                    if result is not None:
                        return ApiResponse(200, result.object)
                result = await self.store.delete(
                    resource.plural,
                    self._key(req),
                    obj,
                    expected=meta["resourceVersion"],
                    request_id=req.request_id,
                    node=(obj.get("spec") or {}).get("nodeName") if resource.plural == "pods" else None,
                )
            except StoreError as exc:
                if exc.reason == "conflict" and not preconditions.get("resourceVersion"):
                    continue
                raise self._store_error(exc, req) from exc
            await self._after_write(resource, obj, deleted=True)
            await self._release(req, obj)
            return ApiResponse(200, result.object)
        raise errors.conflict(resource, req.name or "")

    @staticmethod
    def _grace_period(resource: Resource, obj: dict[str, Any], grace: int | None) -> int | None:
        """Seconds of graceful termination for a pod a kubelet runs; None to delete at once."""
        if resource.plural != "pods":
            return None
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or (status.get("phase") in strategies.TERMINAL_PHASES and grace is None):
            return None
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= 0:
            return None
        return grace

    async def _mark_deleted(
        self, req: ApiRequest, obj: dict[str, Any], finalizers: list[str], graceful: int | None
    ) -> Mutation | None:
        """Set deletionTimestamp instead of removing: finalizers, a kubelet, or a namespace must finish."""
        meta = obj["metadata"]
        already = meta.get("deletionTimestamp")
        if req.resource.plural == "namespaces":
            obj.setdefault("status", {})["phase"] = "Terminating"
        elif not finalizers and graceful is None:
            return None
        if graceful is not None:
            current = meta.get("deletionGracePeriodSeconds")
            if already and current is not None and current <= graceful and finalizers == meta.get("finalizers", []):
                return Mutation(obj, int(meta["resourceVersion"]))
            meta["deletionGracePeriodSeconds"] = graceful
        elif already and finalizers == (meta.get("finalizers") or []) and req.resource.plural != "namespaces":
            return Mutation(obj, int(meta["resourceVersion"]))
        meta.setdefault("deletionTimestamp", now_rfc3339())
        if graceful is None:
            meta.setdefault("deletionGracePeriodSeconds", 0)
        if finalizers:
            meta["finalizers"] = finalizers
        node = (obj.get("spec") or {}).get("nodeName") if req.resource.plural == "pods" else None
        return await self.store.update(
            req.resource.plural,
            self._key(req),
            obj,
            expected=meta["resourceVersion"],
            request_id=req.request_id,
            node=node,
            account=strategies.pod_account(obj) if req.resource.plural == "pods" else "",
        )

    async def _delete_collection(self, req: ApiRequest) -> ApiResponse:
        self._authorize(req)
        items, _ = await self.list_objects(req)
        deleted = []
        for obj in items:
            one = ApiRequest(
                "delete",
                req.resource,
                req.user,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                None,
                req.body,
                req.content_type,
                dict(req.params),
            )
            try:
                deleted.append((await self._delete(one)).body)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return ApiResponse(
            200,
            {"kind": req.resource.list_kind, "apiVersion": req.resource.api_version, "metadata": {}, "items": deleted},
        )

    # --- subresources ------------------------------------------------------------

    async def _bind(self, req: ApiRequest) -> ApiResponse:
        body = self._decode_body(req, kind="Binding")
        try:
            binding = SUBRESOURCE_MODELS["binding"].model_validate(body).dump()
        except ValidationError as exc:
            raise ApiError(400, f"invalid binding: {validation.pydantic_causes(exc)}") from exc
        name = req.name or (binding.get("metadata") or {}).get("name")
        req.name = name
        target = binding["target"].get("name")
        if not target:
            raise errors.invalid(req.resource, name or "", [validation.required("target.name")])
        for _attempt in range(CAS_RETRIES):
            pod = await self.store.get("pods", self._key(req, name))
            self._authorize(req, verb="create", existing=pod)
            if pod is None:
                raise errors.not_found(req.resource, name or "")
            spec = pod["spec"]
            if spec.get("nodeName"):
                raise ApiError(
                    409,
                    f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is '
                    f'already assigned to node "{spec["nodeName"]}"',
                    reason="Conflict",
                )
            if pod["metadata"].get("deletionTimestamp"):
                raise ApiError(409, f"pod {name} is being deleted, cannot be assigned to a host", reason="Conflict")
            spec["nodeName"] = target
            conditions = [c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] != "PodScheduled"]
            conditions.append(
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
            )
            pod.setdefault("status", {})["conditions"] = conditions
            try:
                await self.store.update(
                    "pods",
                    self._key(req, name),
                    pod,
                    expected=pod["metadata"]["resourceVersion"],
                    request_id=req.request_id,
                    node=target,
                    node_event="ADDED",
                    account=strategies.pod_account(pod),
                    check_capacity=True,
                )
            except StoreError as exc:
                if exc.reason == "conflict":
                    continue
                raise self._store_error(exc, req) from exc
            return ApiResponse(
                201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            )
        raise errors.conflict(req.resource, name or "")

    async def _evict(self, req: ApiRequest) -> ApiResponse:
        body = req.body if isinstance(req.body, dict) else {}
        delete = ApiRequest(
            "delete",
            req.resource,
            req.user,
            req.namespace,
            req.name,
            None,
            body.get("deleteOptions") or {},
            "application/json",
            {},
            req.request_id,
        )
        await self._delete(delete)
        return ApiResponse(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )

    async def _scale(self, req: ApiRequest) -> ApiResponse:
        resource = req.resource
        for _attempt in range(CAS_RETRIES):
            obj = await self.store.get(resource.plural, self._key(req))
            self._authorize(req, existing=obj)
            if obj is None:
                raise errors.not_found(resource, req.name or "")
            scale = _scale_of(resource, obj)
            if req.verb == "get":
                return ApiResponse(200, scale)
            if req.verb not in ("update", "patch"):
                raise ApiError(
                    405, f"{req.verb} is not supported on {resource.plural}/scale", reason="MethodNotAllowed"
                )
            if req.verb == "patch":
                try:
                    new_scale = patching.apply(
                        scale, req.body, req.content_type.replace(APPLY_PATCH, "application/merge-patch+json")
                    )
                except patching.PatchError as exc:
                    raise ApiError(400, str(exc)) from exc
            else:
                new_scale = self._decode_body(req, kind="Scale")
            replicas = (new_scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ApiError(
                    422,
                    f'Scale.autoscaling "{req.name}" is invalid: spec.replicas: Invalid value: '
                    f"{json.dumps(replicas)}: must be greater than or equal to 0",
                    reason="Invalid",
                )
            precondition = (new_scale.get("metadata") or {}).get("resourceVersion")
            if precondition and precondition != obj["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, req.name or "")
            if obj["spec"].get("replicas") != replicas:
                obj["spec"]["replicas"] = replicas
                obj["metadata"]["generation"] = int(obj["metadata"].get("generation") or 1) + 1
            try:
                result = await self.store.update(
                    resource.plural,
                    self._key(req),
                    obj,
                    expected=obj["metadata"]["resourceVersion"],
                    request_id=req.request_id,
                )
            except StoreError as exc:
                if exc.reason == "conflict" and not precondition:
                    continue
                raise self._store_error(exc, req) from exc
            return ApiResponse(200, _scale_of(resource, result.object))
        raise errors.conflict(resource, req.name or "")

    async def ensure_system_namespaces(self) -> None:
        from services.apiserver.auth import User

        admin = User("system:apiserver", groups=("system:masters",))
        for name in SYSTEM_NAMESPACES:
            req = ApiRequest("create", BY_PLURAL["namespaces"], admin, body={"metadata": {"name": name}})
            try:
                await self._create(req)
            except ApiError as exc:
                if exc.code != 409:
                    raise


def _scale_of(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selectors.to_string(obj["spec"].get("selector")),
        },
    }


def _sort_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return object_key(meta.get("namespace"), meta.get("name", ""))


def _parse_labels(text: str | None) -> selectors.LabelSelector:
    try:
        return selectors.parse_labels(text)
    except selectors.SelectorError as exc:
        raise errors.bad_request(f"unable to parse requirement: {exc}") from exc


def _parse_fields(text: str | None, resource: Resource) -> selectors.FieldSelector:
    try:
        return selectors.parse_fields(text, allowed=strategies.field_selectors(resource), kind=f'"{resource.kind}"')
    except selectors.SelectorError as exc:
        raise errors.bad_request(str(exc)) from exc


def _int_param(req: ApiRequest, name: str) -> int | None:
    value = req.params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise errors.bad_request(f"invalid {name} {value!r}: must be an integer") from exc


def _prune(model: K8sModel, unknown: set[str], path: str = "") -> None:
    """Drop fields Kubernetes does not define (``fieldValidation`` Warn/Ignore)."""
    extra = model.model_extra or {}
    for key in list(extra):
        if (f"{path}.{key}" if path else key) in unknown:
            del extra[key]
    for name in type(model).model_fields:
        value = getattr(model, name)
        child = f"{path}.{name}" if path else name
        if isinstance(value, K8sModel):
            _prune(value, unknown, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, K8sModel):
                    _prune(item, unknown, f"{child}[{index}]")


__all__ = ["Handler"]
