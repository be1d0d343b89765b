"""The request-stream transport: API requests read from ``rk:api:req``.

Every API server replica reads the stream in one consumer group, so each request is
handled by one of them. Entries are acknowledged only after the answer is written;
a replica that dies leaves its entries pending, and another claims them
(XAUTOCLAIM) after ``claim_idle_ms``. The store applies each request id at most
once, so a request handled twice is answered twice but applied once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from services.apiserver.auth import Authenticator
from services.apiserver.errors import ApiError
from services.apiserver.handler import Handler
from services.apiserver.requests import ApiRequest
from shared import bus, codec, redis_conn, redis_replies
from shared.keys import Keys
from shared.process import Runtime
from shared.resources import BY_PLURAL

GROUP = "apiserver"
MAX_BODY = 3 * 1024 * 1024
VERBS = frozenset({"get", "list", "create", "update", "patch", "delete", "deletecollection"})


class Malformed(Exception):
    """The entry cannot be read as a request at all."""


def _text(fields: dict[bytes, bytes], name: str) -> str | None:
    value = fields.get(name.encode())
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise Malformed(f"field {name!r} is not UTF-8") from exc


class RequestStream:
    def __init__(
        self,
        handler: Handler,
        authn: Authenticator,
        *,
        redis: aioredis.Redis,
        redis_url: str,
        keys: Keys,
        consumer: str,
        runtime: Runtime,
        claim_idle_ms: int = 5000,
        reply_ttl_seconds: int = bus.REPLY_TTL_S,
        block_ms: int = 1000,
        batch: int = 64,
    ) -> None:
        self.handler = handler
        self.authn = authn
        self.redis = redis
        self.redis_url = redis_url
        self.keys = keys
        self.consumer = consumer
        self.runtime = runtime
        self.claim_idle_ms = claim_idle_ms
        self.reply_ttl_seconds = reply_ttl_seconds
        self.block_ms = block_ms
        self.batch = batch
        self.log = structlog.get_logger().bind(transport="bus", consumer=consumer)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.requests, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, runtime: Runtime) -> None:
        conn = redis_conn.blocking(self.redis_url)
        backoff = 0.1
        claim_at = 0.0
        own_pending = True
        loop = asyncio.get_running_loop()
        try:
            while not runtime.stop.is_set():
                try:
                    await self.ensure_group() if own_pending else None
                    if own_pending:
                        # Entries this consumer read before a restart and never acknowledged.
                        reply = redis_replies.stream_reads(
                            await conn.xreadgroup(GROUP, self.consumer, {self.keys.requests: "0"}, count=self.batch)
                        )
                        own_pending = bool(reply and reply[0][1])
                    else:
                        reply = redis_replies.stream_reads(
                            await conn.xreadgroup(
                                GROUP, self.consumer, {self.keys.requests: ">"}, count=self.batch, block=self.block_ms
                            )
                        )
                    entries = [e for _s, items in reply or [] for e in items]
                    if loop.time() >= claim_at:
                        entries += await self._claim()
                        claim_at = loop.time() + self.claim_idle_ms / 2000
                    if entries:
                        await asyncio.gather(*(self._handle(eid, f) for eid, f in entries))
                    backoff = 0.1
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                    self.log.warning("redis unavailable; retrying", error=str(exc), backoff=backoff)
                    if await runtime.sleep(backoff):
                        break
                    backoff = min(backoff * 2, 5.0)
                    own_pending = True
                except redis.exceptions.ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        own_pending = True
                        continue
                    raise
        finally:
            await conn.aclose()

    async def _claim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Take over requests another replica read but never answered."""
        claimed: list[tuple[bytes, dict[bytes, bytes]]] = []
        start = "0-0"
        while True:
            result = await self.redis.xautoclaim(
                self.keys.requests, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id=start, count=100
            )
            start_bytes, entries = result[0], result[1]
            for entry_id, fields in entries:
                if fields is None:
                    # Trimmed before anyone handled it: nothing to answer, but say so.
                    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    await bus.dead_letter(
                        self.redis,
                        self.keys,
                        stream=self.keys.requests,
                        entry_id=eid,
                        fields=None,
                        reason="request trimmed before it was handled",
                    )
                    await self.redis.xack(self.keys.requests, GROUP, entry_id)
                    self.runtime.metrics.inc("bus_requests_lost_total")
                    continue
                claimed.append((entry_id, fields))
            if len(result) > 2:
                for entry_id in result[2] or []:
                    self.runtime.metrics.inc("bus_requests_lost_total")
                    await bus.dead_letter(
                        self.redis,
                        self.keys,
                        stream=self.keys.requests,
                        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                        fields=None,
                        reason="request trimmed before it was handled",
                    )
            start = start_bytes.decode() if isinstance(start_bytes, bytes) else str(start_bytes)
            if start == "0-0" or not entries:
                break
        if claimed:
            self.log.info("claimed requests of a dead replica", count=len(claimed))
        return claimed

    def _parse(self, entry_id: str, fields: dict[bytes, bytes]) -> ApiRequest:
        verb = _text(fields, "verb")
        resource_field = _text(fields, "resource")
        if not verb or verb not in VERBS:
            raise Malformed(f"unknown or missing verb {verb!r}: use one of {', '.join(sorted(VERBS))}")
        if not resource_field:
            raise Malformed("missing field 'resource'")
        plural, _, sub = resource_field.partition("/")
        resource = BY_PLURAL.get(plural)
        if resource is None:
            raise ApiError(404, f'the server doesn\'t have a resource type "{plural}"', reason="NotFound")
        subresource = _text(fields, "subresource") or sub or None
        user = self.authn.authenticate(_text(fields, "token"))
        ct = _text(fields, "ct")
        body: Any = None
        if fields.get(b"body") not in (None, b""):
            if len(fields[b"body"]) > MAX_BODY:
                raise ApiError(413, f"the request body is too large (limit {MAX_BODY} bytes)")
            try:
                body = codec.decode(fields[b"body"], ct)
                codec.check_bounds(body)
            except codec.DecodeError as exc:
                raise ApiError(400, f"cannot decode body: {exc}") from exc
            except codec.TooLarge as exc:
                raise ApiError(413, f"the request body is too large: {exc}") from exc
        params: dict[str, str] = {}
        if fields.get(b"params"):
            try:
                decoded = codec.from_json(fields[b"params"])
            except codec.DecodeError as exc:
                raise ApiError(400, f"cannot decode params: {exc}") from exc
            if not isinstance(decoded, dict):
                raise ApiError(400, "params must be a JSON object")
            params = {str(k): str(v) for k, v in decoded.items()}
        namespace = _text(fields, "namespace") or None
        name = _text(fields, "name") or None
        if resource.namespaced and namespace is None and verb not in ("list", "deletecollection", "create"):
            namespace = "default"
        if verb in ("get", "update", "patch", "delete") and not name:
            raise ApiError(400, f"verb {verb} needs a 'name'")
        content_type = _text(fields, "content_type") or (
            "application/strategic-merge-patch+json" if verb == "patch" else "application/json"
        )
        request_id = _text(fields, "id") or entry_id
        return ApiRequest(
            verb,
            resource,
            user,
            namespace,
            name,
            subresource,
            body,
            content_type,
            params,
            request_id=f"bus:{request_id}",
        )

    async def _handle(self, entry_id_raw: bytes, fields: dict[bytes, bytes]) -> None:
        entry_id = entry_id_raw.decode()
        reply_to: str | None = None
        ct = "json"
        request_id = entry_id
        malformed = False
        try:
            reply_to = _text(fields, "reply") or None
            if reply_to is not None and not reply_to.startswith(self.keys.reply("")):
                # The API server may write any key: a reply must not land in the store.
                bad, reply_to = reply_to, None
                raise Malformed(f"reply stream {bad!r} is not under {self.keys.reply('')!r}")
            ct = _text(fields, "ct") or "json"
            if ct not in ("json", "msgpack"):
                ct = "json"
            request_id = _text(fields, "id") or entry_id
            req = self._parse(entry_id, fields)
            response = await self.handler.handle(req)
            code, body = response.code, response.body
        except Malformed as exc:
            malformed = True
            code, body = 400, ApiError(400, f"malformed request: {exc}").status()
        except ApiError as exc:
            code, body = exc.code, exc.status()
        except redis.exceptions.ConnectionError:
            raise  # leave the entry pending: it is retried when Redis is back
        except Exception as exc:
            self.log.exception("request failed", entry=entry_id)
            code, body = 500, ApiError(500, f"Internal error occurred: {exc!r}").status()
        self.runtime.metrics.inc("apiserver_requests_total", code=str(code), transport="bus")
        if reply_to:
            await self.redis.xadd(
                reply_to,
                {"id": request_id, "code": code, "body": codec.encode(body, ct), "ct": ct},
                maxlen=bus.REPLY_CAP,
                approximate=True,
            )
            await self.redis.expire(reply_to, self.reply_ttl_seconds)  # a dead client's stream goes away
        if malformed or (code >= 400 and not reply_to):
            reason = body.get("message", "") if isinstance(body, dict) else str(body)
            await bus.dead_letter(
                self.redis,
                self.keys,
                stream=self.keys.requests,
                entry_id=entry_id,
                fields=fields,
                reason=f"{code}: {reason}",
            )
        await self.redis.xack(self.keys.requests, GROUP, entry_id_raw)
