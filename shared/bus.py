"""The request bus: API requests as entries on ``rk:api:req``, answers on reply streams.

``BusClient`` is how components write (they never touch the store themselves): it
XADDs a request carrying its token and a reply stream of its own, and matches
replies by request id. A request that gets no answer in time is sent again with the
same id, which the API server applies at most once.

``dead_letter`` is how any consumer sets aside an entry it cannot handle.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.typing import EncodableT, FieldT

from shared import codec, redis_conn, redis_replies
from shared.keys import Keys

REQUEST_CAP = 200_000
REPLY_CAP = 10_000
REPLY_TTL_S = 600
DEAD_CAP = 10_000


class ApiClientError(Exception):
    """The API answered with an error Status."""

    def __init__(self, code: int, status: Any) -> None:
        message = status.get("message") if isinstance(status, dict) else str(status)
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status: dict[str, Any] = status if isinstance(status, dict) else {"message": str(status)}

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))


@dataclass
class Reply:
    code: int
    body: Any


async def dead_letter(
    redis: aioredis.Redis, keys: Keys, *, stream: str, entry_id: str, fields: dict[bytes, bytes] | None, reason: str
) -> None:
    """Copy an entry that could not be handled to ``rk:dead`` with the reason."""
    record: dict[FieldT, EncodableT] = {"stream": stream, "entry": entry_id, "reason": reason}
    for key, value in (fields or {}).items():
        name = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
        if name not in record:
            record[f"f:{name}"] = "<redacted>" if name == "token" else value
    await redis.xadd(keys.dead, record, maxlen=DEAD_CAP, approximate=True)


class BusClient:
    """Send API requests over the bus and await their replies."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        redis_url: str,
        token: str,
        client_id: str | None = None,
        content_type: str = "msgpack",
        timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._url = redis_url
        self._token = token
        self.client_id = client_id or uuid.uuid4().hex
        self._ct = content_type
        self._timeout = timeout
        self._attempts = attempts
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._log = structlog.get_logger().bind(bus_client=self.client_id)

    @property
    def reply_stream(self) -> str:
        return self._keys.reply(self.client_id)

    async def __aenter__(self) -> BusClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._reader is None or self._reader.done():  # never left without a reader
            self._reader = asyncio.create_task(self._read_replies(), name=f"bus-replies-{self.client_id}")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
            self._reader = None
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        try:
            await self._redis.delete(self.reply_stream)
        except Exception:
            pass

    async def _read_replies(self) -> None:
        conn = redis_conn.blocking(self._url)
        last = "0-0"
        try:
            while True:
                try:
                    reply = redis_replies.stream_reads(
                        await conn.xread({self.reply_stream: last}, block=2000, count=500)
                    )
                except (redis.exceptions.RedisError, OSError) as exc:
                    # A socket timeout too (a partition): reconnect and read on from ``last``.
                    self._log.warning("reply stream read failed; retrying", error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        request_id = fields.get(b"id", b"").decode()
                        future = self._pending.pop(request_id, None)
                        if future is None or future.done():
                            continue
                        try:
                            code = int(fields.get(b"code", b"500"))
                            body = codec.decode(fields.get(b"body", b"null"), fields.get(b"ct", b"json").decode())
                        except (ValueError, codec.DecodeError) as exc:
                            future.set_exception(ApiClientError(502, {"message": f"undecodable reply: {exc}"}))
                            continue
                        future.set_result(Reply(code, body))
        finally:
            await conn.aclose()

    async def request(
        self,
        verb: str,
        resource: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str | None = None,
        request_id: str | None = None,
    ) -> Reply:
        await self.start()
        request_id = request_id or uuid.uuid4().hex
        fields: dict[FieldT, EncodableT] = {
            "id": request_id,
            "verb": verb,
            "resource": resource,
            "reply": self.reply_stream,
            "token": self._token,
            "ct": self._ct,
        }
        if namespace:
            fields["namespace"] = namespace
        if name:
            fields["name"] = name
        if subresource:
            fields["subresource"] = subresource
        if body is not None:
            fields["body"] = codec.encode(body, self._ct)
        if params:
            fields["params"] = codec.to_json(params)
        if content_type:
            fields["content_type"] = content_type
        for attempt in range(1, self._attempts + 1):
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            await self._redis.xadd(self._keys.requests, fields, maxlen=REQUEST_CAP, approximate=True)
            try:
                return await asyncio.wait_for(future, timeout=self._timeout)
            except TimeoutError:
                self._pending.pop(request_id, None)
                self._log.warning(
                    "no reply; sending again",
                    request_id=request_id,
                    attempt=attempt,
                    verb=verb,
                    resource=resource,
                    name=name,
                )
        raise ApiClientError(
            504,
            {
                "message": f"no reply to {verb} {resource} {name or ''} after {self._attempts} attempts",
                "reason": "Timeout",
            },
        )

    async def call(self, verb: str, resource: str, **kw: Any) -> Any:
        """Like ``request`` but returns the body, raising ApiClientError for an error code."""
        reply = await self.request(verb, resource, **kw)
        if reply.code >= 400:
            raise ApiClientError(reply.code, reply.body)
        return reply.body

    # Conveniences used by every component.
    async def create(self, resource: str, body: dict[str, Any], *, namespace: str | None = None) -> Any:
        return await self.call("create", resource, namespace=namespace, body=body)

    async def update(self, resource: str, body: dict[str, Any], *, subresource: str | None = None) -> Any:
        meta = body.get("metadata") or {}
        return await self.call(
            "update",
            resource,
            namespace=meta.get("namespace"),
            name=meta.get("name"),
            subresource=subresource,
            body=body,
        )

    async def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        content_type: str = "application/merge-patch+json",
    ) -> Any:
        return await self.call(
            "patch",
            resource,
            namespace=namespace,
            name=name,
            subresource=subresource,
            body=patch,
            content_type=content_type,
        )

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        return await self.call("delete", resource, namespace=namespace, name=name, params=params, body=body)

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Any:
        return await self.call("get", resource, namespace=namespace, name=name)
