"""``redkube apiserver``: the only writer of the store, over HTTPS and the request stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from services.apiserver.allocation import Allocator
from services.apiserver.auth import Authenticator
from services.apiserver.exec import ExecWebSocketProtocol
from services.apiserver.handler import Handler
from services.apiserver.http import App
from services.apiserver.limits import Limits
from services.apiserver.logs import LogReader
from services.apiserver.stream import RequestStream
from services.apiserver.tls import PeerCertProtocol, ServingCertificates, https_protocol
from shared import logging, redis_conn
from shared.config import Settings
from shared.keys import Keys
from shared.process import Runtime, run_tasks
from shared.store import Store


class ApiServerSettings(Settings):
    host: str = "127.0.0.1"
    port: int = 6443
    advertise_address: str = ""
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    #: CA that verifies client certificates (default: the cluster CA under ``home`` if there is one).
    client_ca_file: Path | None = None
    #: Seconds between looks at the serving certificate files (they are reloaded when they change).
    tls_reload_seconds: float = 1.0
    token_auth_file: Path | None = None
    service_cidr: str = "127.96.0.0/16"
    claim_idle_ms: int = 5000
    #: A reply stream expires this long after its last answer (its reader may have died).
    reply_ttl_seconds: int = 600
    consumer: str = ""
    watch_cap: int = 20_000
    max_requests_per_second: float = 200.0
    max_requests_burst: float = 400.0
    max_watches_per_user: int = 100


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's stop event rules."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_socket(host: str, port: int) -> socket.socket:
    """The HTTPS socket, bound with SO_REUSEPORT: several API server replicas on one
    machine share one address and the kernel spreads connections among them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def main(settings: ApiServerSettings, runtime: Runtime) -> None:
    log = logging.configure("apiserver", level=settings.log_level)
    keys = Keys(settings.prefix)
    redis = redis_conn.pool(settings.redis_url)
    store = Store(redis, keys, watch_cap=settings.watch_cap)
    token_file = settings.token_auth_file or settings.home / "tokens.csv"
    authn = Authenticator.from_file(token_file)
    handler = Handler(
        store, allocator=Allocator(redis, keys, service_cidr=settings.service_cidr), redis=redis, keys=keys
    )
    consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"

    async def redis_ready() -> bool:
        return bool(await redis.ping())

    runtime.ready_checks.append(redis_ready)
    scheme = "https" if settings.tls_cert_file else "http"
    address = f"{settings.advertise_address or settings.host}:{settings.port}"
    app = App(
        handler,
        authn,
        runtime=runtime,
        redis_url=settings.redis_url,
        redis=redis,
        logs=LogReader(redis, keys, settings.redis_url),
        server_address=address,
        limits=Limits(rate=settings.max_requests_per_second, burst=settings.max_requests_burst,
                      max_watches=settings.max_watches_per_user),
    )
    stream = RequestStream(
        handler,
        authn,
        redis=redis,
        redis_url=settings.redis_url,
        keys=keys,
        consumer=consumer,
        runtime=runtime,
        claim_idle_ms=settings.claim_idle_ms,
        reply_ttl_seconds=settings.reply_ttl_seconds,
    )

    certificates = None
    if settings.tls_cert_file:
        client_ca = settings.client_ca_file or settings.home / "pki" / "ca.crt"
        certificates = ServingCertificates(
            settings.tls_cert_file,
            key_file=settings.tls_private_key_file or settings.tls_cert_file,
            client_ca_file=client_ca if settings.client_ca_file or client_ca.exists() else None,
            check_interval=settings.tls_reload_seconds,
            log=log,
        )

    async def serve_http(rt: Runtime) -> None:
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            # TLS (when configured) is done by the protocol: see tls.py for why not uvicorn's ``ssl``.
            http=https_protocol(certificates, log=log) if certificates else PeerCertProtocol,  # type: ignore[arg-type]
            ws=ExecWebSocketProtocol,  # kubectl exec; keeps the TLS client certificate in the scope
        )
        server = _Server(config)
        watcher = asyncio.create_task(rt.stop.wait())
        serving = asyncio.create_task(server.serve(sockets=[listening_socket(settings.host, settings.port)]))
        await asyncio.wait({watcher, serving}, return_when="FIRST_COMPLETED")
        server.should_exit = True
        await serving
        watcher.cancel()

    async def bootstrap(rt: Runtime) -> None:
        backoff = 0.2
        while not rt.stop.is_set():
            try:
                await handler.ensure_system_namespaces()
                await stream.ensure_group()
                break
            except Exception as exc:
                log.warning("bootstrap failed; retrying", error=str(exc))
                if await rt.sleep(backoff):
                    return
                backoff = min(backoff * 2, 5)
        log.info("serving", url=f"{scheme}://{address}", consumer=consumer)
        await rt.stop.wait()

    try:
        await run_tasks(
            {"bootstrap": bootstrap, "http": serve_http, "requests": stream.run},
            runtime,
            health_host=settings.metrics_host,
            health_port=settings.metrics_port,
        )
    finally:
        await redis.aclose()
        log.info("stopped")
