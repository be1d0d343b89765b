"""The HTTPS transport: Kubernetes REST paths in front of the shared handler.

A small ASGI application (served by uvicorn) so that routing stays a direct reading
of the Kubernetes URL layout: ``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` and
``/apis/GROUP/VERSION/...``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
import redis.exceptions
import structlog
import yaml

from services.apiserver import discovery, openapi, protobuf, tables, tls
from services.apiserver.auth import Authenticator, User
from services.apiserver.errors import ApiError
from services.apiserver.exec import ExecServer
from services.apiserver.handler import Handler
from services.apiserver.limits import Limits
from services.apiserver.logs import LogReader
from services.apiserver.requests import ApiRequest
from shared import codec, redis_conn
from shared.process import Runtime
from shared.resources import BY_PLURAL, Resource, by_group_version

MAX_BODY = 3 * 1024 * 1024
PROTOBUF = "application/vnd.kubernetes.protobuf"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
OPEN_PATHS = {"/healthz", "/livez", "/readyz", "/version", "/metrics"}


@dataclass
class Route:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Route | None:
    """Map a Kubernetes REST path to its resource, namespace, name and subresource."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = by_group_version(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    resource = by_group_version(group, version, rest[0])
    if resource is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return Route(resource, namespace, name, sub)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _wants_table(accept: str) -> bool:
    return "as=Table" in accept


class App:
    """ASGI entry point."""

    def __init__(
        self,
        handler: Handler,
        authn: Authenticator,
        *,
        runtime: Runtime,
        redis_url: str,
        redis: aioredis.Redis,
        logs: LogReader,
        server_address: str,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.handler = handler
        self.authn = authn
        self.runtime = runtime
        self.redis_url = redis_url
        self.redis = redis
        self.logs = logs
        self.server_address = server_address
        self.log = structlog.get_logger().bind(transport="http")
        self.exec = ExecServer(handler, authn, redis=redis, redis_url=redis_url, keys=handler.keys, runtime=runtime)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            return await self.exec.websocket(scope, receive, send)  # kubectl exec
        if scope["type"] != "http":
            return
        metrics = self.runtime.metrics
        try:
            await self._dispatch(scope, receive, send)
        except ApiError as exc:
            metrics.inc("apiserver_requests_total", code=str(exc.code), transport="http")
            await self._json(send, exc.code, exc.status(), exc.headers)
        except redis.exceptions.ConnectionError as exc:
            metrics.inc("apiserver_requests_total", code="503", transport="http")
            error = ApiError(
                503,
                f"the storage backend is unavailable: {exc}",
                reason="ServiceUnavailable",
                headers={"Retry-After": "1"},
            )
            await self._json(send, 503, error.status(), error.headers)
        except Exception as exc:  # the process must survive any request
            self.log.exception("request failed", path=scope.get("path"))
            error = ApiError(500, f"Internal error occurred: {exc!r}", reason="InternalError")
            try:
                await self._json(send, 500, error.status())
            except Exception:
                pass

    async def _dispatch(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/") or "/"
        method: str = scope["method"]
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if path in ("/healthz", "/livez"):
            return await self._text(send, 200, "ok")
        if path == "/readyz":
            ok = await self.runtime.ready()
            return await self._text(send, 200 if ok else 503, "ok" if ok else "redis unavailable")
        if path == "/metrics":
            return await self._text(send, 200, self.runtime.metrics.render())
        if path == "/version":
            return await self._json(send, 200, discovery.VERSION)
        auth = _header(scope, b"authorization")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        user = self.authn.authenticate(token, client_cert=tls.client_certificate(scope))
        self.limits.admit(user)
        if path == "/api":
            return await self._json(send, 200, discovery.api_versions(self.server_address))
        if path == "/apis":
            return await self._json(send, 200, discovery.api_groups())
        if path.startswith("/openapi/"):
            document = openapi.document(path)
            if document is None:
                raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
            return await self._json(send, 200, document)
        parts = [p for p in path.split("/") if p]
        if (parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            listing = discovery.resource_list(group, version)
            if listing is None:
                raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
            return await self._json(send, 200, listing)
        if parts[0] == "apis" and len(parts) == 2:
            group_doc = discovery.api_group(parts[1])
            if group_doc is None:
                raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
            return await self._json(send, 200, group_doc)
        route = parse_path(path)
        if route is None:
            raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
        await self._resource(scope, receive, send, route, method, params, user)

    async def _resource(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        route: Route,
        method: str,
        params: dict[str, str],
        user: User,
    ) -> None:
        if route.subresource == "exec" and route.resource.plural == "pods" and route.name and route.namespace:
            raise await self.exec.http(scope, user, namespace=route.namespace, name=route.name)  # SPDY: refused
        if method == "GET":
            if route.subresource == "log":
                return await self._logs(send, route, params, user)
            if route.name and route.subresource is None and params.get("watch") not in ("true", "1"):
                verb = "get"
            elif route.name and route.subresource:
                verb = "get"
            else:
                verb = "watch" if params.get("watch") in ("true", "1") else "list"
        elif method == "DELETE":
            verb = "delete" if route.name else "deletecollection"
        elif method in METHOD_VERBS:
            verb = METHOD_VERBS[method]
        else:
            raise ApiError(405, f"method {method} is not allowed", reason="MethodNotAllowed")
        if verb in ("update", "patch") and not route.name:
            raise ApiError(405, f"{method} requires a resource name", reason="MethodNotAllowed")
        content_type = _header(scope, b"content-type") or "application/json"
        if content_type.startswith(PROTOBUF) and method in ("POST", "PUT", "PATCH", "DELETE"):
            raw = await self._read_raw(receive, scope)
            try:
                body: Any = protobuf.decode_request(raw, route.resource, subresource=route.subresource, method=method)
            except protobuf.Unsupported as exc:
                raise ApiError(415, f"the body of the request was in an unsupported protobuf message: {exc}; "
                               "send application/json or application/yaml") from exc
            except protobuf.ProtobufError as exc:
                raise ApiError(400, f"error decoding protobuf: {exc}") from exc
            content_type = "application/json"
        elif method in ("POST", "PUT", "PATCH", "DELETE"):
            body = await self._read_body(receive, scope, content_type)
        else:
            body = None
        namespace = route.namespace
        if route.resource.namespaced and namespace is None and verb not in ("list", "watch", "deletecollection"):
            raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
        req = ApiRequest(
            verb, route.resource, user, namespace, route.name, route.subresource, body, content_type, params
        )
        accept = _header(scope, b"accept")
        if verb == "watch":
            with self.limits.watch(user):
                return await self._watch(send, req, accept)
        response = await self.handler.handle(req)
        self.runtime.metrics.inc("apiserver_requests_total", code=str(response.code), transport="http", verb=verb)
        result = response.body
        if _wants_table(accept) and verb in ("get", "list") and isinstance(result, dict) and not route.subresource:
            objects = result.get("items", []) if verb == "list" else [result]
            rv = (result.get("metadata") or {}).get("resourceVersion")
            table = tables.table(
                route.resource.plural, objects, resource_version=rv, include=params.get("includeObject", "Metadata")
            )
            if verb == "list" and (result.get("metadata") or {}).get("continue"):
                table["metadata"]["continue"] = result["metadata"]["continue"]
            result = table
        await self._json(send, response.code, result, response.headers)

    async def _read_raw(self, receive: Receive, scope: dict[str, Any]) -> bytes:
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise ApiError(413, f"the request body is too large ({declared} bytes; limit {MAX_BODY})")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, f"the request body is too large (limit {MAX_BODY} bytes)")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        return raw

    async def _read_body(self, receive: Receive, scope: dict[str, Any], content_type: str) -> Any:
        raw = await self._read_raw(receive, scope)
        if not raw.strip():
            return None
        document = self._decode(raw, content_type)
        try:
            codec.check_bounds(document)
        except codec.TooLarge as exc:
            raise ApiError(413, f"the request body is too large: {exc}") from exc
        except codec.DecodeError as exc:
            raise ApiError(400, f"error decoding the request body: {exc}") from exc
        return document

    @staticmethod
    def _decode(raw: bytes, content_type: str) -> Any:
        ct = content_type.split(";")[0].strip().lower()
        if ct in ("application/yaml", "application/apply-patch+yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ApiError(400, f"error decoding YAML: {exc}") from exc
            except RecursionError as exc:
                raise ApiError(400, "error decoding YAML: nested too deeply") from exc
        if ct in (
            "application/json",
            "application/merge-patch+json",
            "application/json-patch+json",
            "application/strategic-merge-patch+json",
            "*/*",
            "",
        ):
            try:
                return codec.from_json(raw)
            except codec.DecodeError as exc:
                raise ApiError(400, f"error decoding JSON: {exc}") from exc
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f'application/json, application/yaml (got "{content_type}")',
        )

    async def _watch(self, send: Send, req: ApiRequest, accept: str) -> None:
        await self.handler.check_watch(req)  # 400/403/410 while a status code can still be sent
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-cache, private")],
            }
        )
        timeout = req.params.get("timeoutSeconds", "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout.isdigit() else None
        table = _wants_table(accept)
        include = req.params.get("includeObject", "Metadata")
        first_table = True
        conn = redis_conn.blocking(self.redis_url)
        events = self.handler.watch(req, conn=conn, block_ms=1000, stop=self.runtime.stop).__aiter__()
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(events.__anext__(), timeout=remaining)
                except (StopAsyncIteration, TimeoutError):
                    break
                obj = event["object"]
                if table and event["type"] not in ("ERROR", "BOOKMARK"):
                    obj = tables.table(req.resource.plural, [obj], include=include, with_columns=first_table)
                    first_table = False
                await send(
                    {
                        "type": "http.response.body",
                        "more_body": True,
                        "body": codec.to_json({"type": event["type"], "object": obj}) + b"\n",
                    }
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            await conn.aclose()

    async def _logs(self, send: Send, route: Route, params: dict[str, str], user: User) -> None:
        req = ApiRequest(
            "get", route.resource, user, route.namespace, route.name, "log", None, "application/json", params
        )
        pod = (
            await self.handler.handle(
                ApiRequest("get", route.resource, user, route.namespace, route.name, None, None, "application/json", {})
            )
        ).body
        from services.apiserver.auth import authorize

        authorize(
            user,
            verb="get",
            resource=route.resource,
            namespace=route.namespace,
            name=route.name,
            subresource="log",
            existing=pod,
            rbac=self.handler.rbac,
        )
        container = self.logs.pick_container(pod, params.get("container"))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        async for chunk in self.logs.read(req, pod, container, stop=self.runtime.stop):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = codec.to_json(body)
        raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": data})

    @staticmethod
    async def _text(send: Send, status: int, text: str) -> None:
        data = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})


__all__ = ["BY_PLURAL", "App", "parse_path"]
