"""``pods/NAME/exec`` over a WebSocket (``v5.channel.k8s.io`` / ``v4.channel.k8s.io``), relayed to
the pod's kubelet through Redis streams (see ``shared/exec_session.py``).

Each binary WebSocket message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final
``Status`` (JSON), 4 terminal resize, and (v5 only) 255 to close a stream, which is how kubectl
says stdin ended. Checks (authentication, ``create`` on ``pods/exec``, the pod running, the
container existing) happen before the upgrade and are answered as a Kubernetes ``Status`` with
the HTTP code, which kubectl prints. The same checks answer a SPDY (plain HTTP) exec request,
and a request that passes them is told redkube speaks only WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from services.apiserver import tls
from services.apiserver.auth import User, authorize, forbidden
from services.apiserver.errors import ApiError, not_found
from shared import codec, exec_session, redis_conn
from shared.keys import Keys
from shared.resources import BY_PLURAL
from shared.store import object_key

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
START_TIMEOUT = 10.0  # seconds the kubelet has to start the command
KUBELET_SILENCE = 15.0  # seconds without a word (it beats every few) after which the kubelet is given up


class ExecWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with the connection's TLS client certificate in the scope,
    as ``tls.PeerCertProtocol`` does for plain requests (the upgrade builds a new scope)."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            extension = tls.tls_extension(self.transport)
            if extension is not None:
                scope["extensions"]["tls"] = extension  # type: ignore[index]


def _status_success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def _status_exit(code: int, command: list[str]) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {command}, "
                   f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _status_error(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}


class ExecTarget:
    """A checked exec request: where it goes and what it runs."""

    def __init__(self, pod: dict[str, Any], container: str, command: list[str], params: dict[str, list[str]]) -> None:
        self.pod = pod
        self.node = str((pod.get("spec") or {}).get("nodeName") or "")
        self.namespace = str(pod["metadata"].get("namespace") or "")
        self.name = str(pod["metadata"]["name"])
        self.uid = str(pod["metadata"].get("uid") or "")
        self.container = container
        self.command = command

        def flag(name: str) -> bool:
            return (params.get(name) or [""])[-1].lower() in ("true", "1")

        self.stdin, self.stdout, self.stderr, self.tty = flag("stdin"), flag("stdout"), flag("stderr"), flag("tty")


class ExecServer:
    """Serves exec: the checks, then the relay between the WebSocket and the kubelet's streams."""

    def __init__(self, handler: Any, authn: Any, *, redis: Any, redis_url: str, keys: Keys, runtime: Any) -> None:
        self.handler = handler
        self.authn = authn
        self.redis = redis
        self.redis_url = redis_url
        self.keys = keys
        self.runtime = runtime
        self.log = structlog.get_logger().bind(transport="exec")

    # --- checks ----------------------------------------------------------------------

    def authenticate(self, scope: dict[str, Any]) -> User:
        auth = ""
        for key, value in scope.get("headers") or []:
            if key.lower() == b"authorization":
                auth = value.decode("latin-1")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        user: User = self.authn.authenticate(token, client_cert=tls.client_certificate(scope))
        return user

    async def check(self, user: User, *, namespace: str, name: str, params: dict[str, list[str]]) -> ExecTarget:
        """Authorize ``create pods/exec`` and check the pod and container; raise ApiError otherwise."""
        resource = BY_PLURAL["pods"]
        authorize(user, verb="create", resource=resource, namespace=namespace, name=name, subresource="exec",
                  rbac=self.handler.rbac)
        if user.node_name is not None and not self.handler.rbac.allows(
            user, verb="create", group="", resource="pods/exec", namespace=namespace, name=name
        ):
            raise forbidden(user, "create", resource, namespace, name, "exec")  # kubelets do not exec
        pod = await self.handler.store.get("pods", object_key(namespace, name))
        if pod is None:
            raise not_found(resource, name)
        command = [c for c in params.get("command") or []]
        if not command:
            raise ApiError(400, "you must specify at least 1 command")
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init = [c.get("name") for c in spec.get("initContainers") or []]
        wanted = (params.get("container") or [""])[-1]
        if not wanted:
            if len(names) != 1:
                raise ApiError(400, f"a container name must be specified for pod {name}, choose one of: "
                                    f"[{' '.join(str(n) for n in names)}]")
            wanted = str(names[0])
        elif wanted not in names + init:
            raise ApiError(400, f"container {wanted} is not valid for pod {name}")
        if not spec.get("nodeName"):
            raise ApiError(400, f"pod {name} does not have a host assigned")
        phase = status.get("phase") or "Pending"
        if phase != "Running":
            raise ApiError(400, f"unable to upgrade connection: pod {name} is not running (phase {phase})")
        statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
        if "running" not in ((statuses.get(wanted) or {}).get("state") or {}):
            raise ApiError(400, f"unable to upgrade connection: container {wanted} in pod {name} is not running")
        target = ExecTarget(pod, wanted, command, params)
        if not (target.stdout or target.stderr or target.stdin):
            raise ApiError(400, "you must specify at least one of stdin, stdout, stderr")
        return target

    @staticmethod
    def parse(scope: dict[str, Any]) -> dict[str, list[str]]:
        params: dict[str, list[str]] = {}
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
            params.setdefault(key, []).append(value)
        return params

    async def http(self, scope: dict[str, Any], user: User, *, namespace: str, name: str) -> ApiError:
        """An exec over plain HTTP (kubectl's SPDY fallback): the same checks, then a refusal."""
        await self.check(user, namespace=namespace, name=name, params=self.parse(scope))
        return ApiError(400, "redkube serves exec over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io); "
                             "use kubectl 1.30 or later")

    # --- the WebSocket ---------------------------------------------------------------

    async def websocket(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI entry for every WebSocket: only ``/api/v1/namespaces/NS/pods/NAME/exec`` is served."""
        message = await receive()
        if message.get("type") != "websocket.connect":
            return
        parts = [p for p in str(scope.get("path", "")).split("/") if p]
        namespace, name = (parts[3], parts[5]) if len(parts) == 7 else ("", "")
        try:
            user = self.authenticate(scope)
            if parts[:3] != ["api", "v1", "namespaces"] or len(parts) != 7 or parts[4] != "pods" \
                    or parts[6] != "exec":
                raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
            target = await self.check(user, namespace=namespace, name=name, params=self.parse(scope))
            offered = list(scope.get("subprotocols") or [])
            protocol = next((p for p in PROTOCOLS if p in offered), None)
            if protocol is None:
                raise ApiError(400, f"unable to upgrade: none of the offered subprotocols {offered} is supported "
                                    f"(redkube speaks {', '.join(PROTOCOLS)})")
        except ApiError as exc:
            await self._refuse(send, exc.code, exc.status(), exc.headers)
            return
        except Exception as exc:
            self.log.exception("exec check failed", path=scope.get("path"))
            error = ApiError(500, f"Internal error occurred: {exc!r}", reason="InternalError")
            await self._refuse(send, 500, error.status(), {})
            return
        await send({"type": "websocket.accept", "subprotocol": protocol})
        self.runtime.metrics.inc("apiserver_exec_sessions_total", node=target.node)
        log = self.log.bind(pod=f"{namespace}/{name}", container=target.container, node=target.node, user=user.name)
        log.info("exec started", command=target.command)
        try:
            await Session(self, target, receive, send, v5=protocol.startswith("v5"), log=log).run()
        except Exception:
            log.exception("exec session failed")
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": 1000})

    @staticmethod
    async def _refuse(send: Send, code: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = codec.to_json(body)
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        try:
            await send({"type": "websocket.http.response.start", "status": code, "headers": raw})
            await send({"type": "websocket.http.response.body", "body": data})
        except Exception:
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1008})


class Session:
    """One exec relayed between a WebSocket and the kubelet's session streams."""

    def __init__(self, server: ExecServer, target: ExecTarget, receive: Receive, send: Send, *, v5: bool,
                 log: Any) -> None:
        self.server = server
        self.target = target
        self.receive = receive
        self.send = send
        self.v5 = v5
        self.log = log
        self.redis = server.redis
        self.session = uuid.uuid4().hex
        keys, node = server.keys, target.node
        self.requests = keys.exec_requests(node)
        self.input = keys.exec_input(node, self.session)
        self.output = keys.exec_output(node, self.session)
        self.alive = keys.exec_alive(node, self.session)
        self.done = False

    async def run(self) -> None:
        t = self.target
        await self.redis.set(self.alive, "1", ex=exec_session.ALIVE_TTL)
        await self.redis.xadd(self.requests, {
            "session": self.session, "namespace": t.namespace, "pod": t.name, "uid": t.uid,
            "container": t.container, "command": json.dumps(t.command), "stdin": int(t.stdin),
            "stdout": int(t.stdout), "stderr": int(t.stderr), "tty": int(t.tty),
        }, maxlen=1000, approximate=True)
        tasks = [asyncio.create_task(self._client()), asyncio.create_task(self._kubelet()),
                 asyncio.create_task(self._heartbeat())]
        stop = asyncio.create_task(self.server.runtime.stop.wait())
        try:
            # The session ends when the kubelet reports the end, or the client goes away.
            await asyncio.wait([tasks[0], tasks[1], stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # The client hears the end first; the helpers also stop on ``done`` (redis-py may
            # swallow a cancellation that lands while it connects), so they are waited for last.
            self.done = True
            for task in [*tasks, stop]:
                task.cancel()
            with contextlib.suppress(Exception):
                await self.send({"type": "websocket.close", "code": 1000})
            await asyncio.wait([*tasks, stop], timeout=3)
            with contextlib.suppress(Exception):
                await exec_session.append(self.redis, self.input, {"t": "kill"}, ttl=30)
                await self.redis.delete(self.alive, self.output)

    async def _heartbeat(self) -> None:
        while not self.done:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self.alive, "1", ex=exec_session.ALIVE_TTL)
            pipe.expire(self.input, exec_session.STREAM_TTL)
            pipe.expire(self.output, exec_session.STREAM_TTL)
            try:
                await pipe.execute()
            except Exception as exc:
                self.log.warning("exec heartbeat failed", error=str(exc))
            await asyncio.sleep(exec_session.HEARTBEAT)

    async def _client(self) -> None:
        """WebSocket -> input stream, until the client disconnects."""
        while True:
            message = await self.receive()
            if message.get("type") == "websocket.disconnect":
                self.log.info("exec client disconnected")
                return
            data = message.get("bytes")
            if data is None and message.get("text") is not None:
                data = message["text"].encode()
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and payload:
                await exec_session.wait_for_room(self.redis, self.input, gone=lambda: self.done)
                for start in range(0, len(payload), exec_session.CHUNK):
                    await exec_session.append(self.redis, self.input,
                                              {"t": "stdin", "d": payload[start:start + exec_session.CHUNK]})
            elif channel == RESIZE:
                await exec_session.append(self.redis, self.input, {"t": "resize", "d": payload})
            elif channel == CLOSE and self.v5 and payload[:1] == bytes([STDIN]):
                await exec_session.append(self.redis, self.input, {"t": "close"})

    async def _kubelet(self) -> None:
        """Output stream -> WebSocket, until the command's end (or the kubelet not answering)."""
        conn = redis_conn.blocking(self.server.redis_url)
        loop = asyncio.get_running_loop()
        started_by = loop.time() + START_TIMEOUT
        started = False
        heard = loop.time()
        last = "0-0"
        try:
            while not self.done:
                reply: Any = await conn.xread({self.output: last}, block=1000, count=100)
                if reply:
                    heard = loop.time()
                elif not started and loop.time() > started_by:
                    await self._final(_status_error(
                        f"the kubelet of node {self.target.node} did not start the command in {START_TIMEOUT:.0f}s"))
                    return
                elif started and loop.time() - heard > KUBELET_SILENCE:
                    await self._final(_status_error(f"lost contact with the kubelet of node {self.target.node}"))
                    return
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                        kind = exec_session.field(fields, "t")
                        data = exec_session.field(fields, "d")
                        if kind == b"started":
                            started = True
                        elif kind in (b"stdout", b"stderr") and data:
                            await self.send({"type": "websocket.send",
                                             "bytes": bytes([STDOUT if kind == b"stdout" else STDERR]) + data})
                        elif kind == b"exit":
                            code = int(data) if data.lstrip(b"-").isdigit() else 1
                            await self._final(_status_success() if code == 0 else _status_exit(code,
                                                                                               self.target.command))
                            return
                        elif kind == b"error":
                            await self._final(_status_error(data.decode(errors="replace")))
                            return
                    await exec_session.trim_read(self.redis, self.output, last)
        finally:
            await conn.aclose()

    async def _final(self, status: dict[str, Any]) -> None:
        self.log.info("exec ended", status=status.get("status"), message=status.get("message"))
        await self.send({"type": "websocket.send", "bytes": bytes([ERROR]) + json.dumps(status).encode()})
