"""TLS for the API server: client certificates into the ASGI scope, serving certificates
reloaded from disk while running.

uvicorn (0.55) verifies a client certificate when its SSL context asks for one but puts
nothing of it in the scope. ``PeerCertProtocol`` (its httptools protocol, one method
more) adds ASGI's ``tls`` extension with ``client_cert_chain``, read once per connection
from the transport's ``ssl_object``; authentication reads it with ``client_certificate``.

TLS is terminated by ``https_protocol``'s factory (given to uvicorn as its protocol
class, with uvicorn's own ``ssl`` unset) rather than by the event loop: the same asyncio
TLS protocol the loop would use, except that a failed handshake (a client certificate
from another CA, or expired) first sends the alert OpenSSL wrote. asyncio 3.11 drops it,
so the client saw a bare EOF, which client-go retries for tens of seconds; with the
alert kubectl reports "remote error: tls: ..." at once, as against kube-apiserver.

``ServingCertificates`` owns the SSL context handed to uvicorn. On every handshake (the
files are looked at no more than once per ``check_interval``) it builds a fresh context
when the certificate, key or client CA file changed, and switches the new connection to
it from the SNI callback, which OpenSSL runs for every ClientHello (with or without a
server name). New handshakes get the new certificate; open connections, and the watches
on them, keep the one they started with. A half-written or mismatched pair (a renewal
writes two files) is not loaded: the old context serves until the pair is whole again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from asyncio import sslproto
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HANDSHAKE_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """ASGI's ``tls`` scope extension for a connection, or None if it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    # Only a certificate that verified against the client CA gets here: with CERT_OPTIONAL,
    # OpenSSL ends the handshake on any other.
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


def client_certificate(scope: dict[str, Any]) -> str | None:
    """The verified client certificate (PEM) of the request's connection, if it sent one."""
    chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    return chain[0] if chain else None


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the connection's TLS details in every request's scope."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope.setdefault("extensions", {})["tls"] = self._tls  # type: ignore[assignment]


class ServingCertificates:
    """The serving SSL context, rebuilt when its files change (see the module docstring)."""

    def __init__(
        self,
        cert_file: Path,
        *,
        key_file: Path,
        client_ca_file: Path | None = None,
        check_interval: float = 1.0,
        log: Any = None,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.check_interval = check_interval
        self.log = log
        self.reloads = 0
        self._stamp = self._files_stamp()
        self.context = self._build()  # the context uvicorn listens with; a bad file fails the start
        self.context.sni_callback = self._on_client_hello
        self._current = self.context
        self._checked = time.monotonic()

    def _files(self) -> list[Path]:
        return [self.cert_file, self.key_file, *([self.client_ca_file] if self.client_ca_file else [])]

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in self._files():
            try:
                stat = path.stat()
                stamps.append((stat.st_mtime_ns, stat.st_ino, stat.st_size))
            except OSError:
                stamps.append((0, 0, 0))
        return tuple(stamps)

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        if self.client_ca_file is not None:
            # Optional, as in kube-apiserver: a caller may still authenticate with a token.
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cafile=str(self.client_ca_file))
        return context

    def refresh(self, *, force: bool = False) -> bool:
        """Load the files again if they changed; True if a new context now serves."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_interval:
            return False
        self._checked = now
        stamp = self._files_stamp()  # before reading: a change during the read is seen next time
        if stamp == self._stamp:
            return False
        try:
            context = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            if self.log is not None:
                self.log.warning("serving certificate not reloaded; keeping the current one", error=str(exc),
                                 cert_file=str(self.cert_file))
            return False
        self._stamp = stamp
        self._current = context
        self.reloads += 1
        if self.log is not None:
            self.log.info("serving certificate reloaded", cert_file=str(self.cert_file), reloads=self.reloads)
        return True

    def _on_client_hello(self, ssl_object: Any, _server_name: str | None, _context: ssl.SSLContext) -> None:
        try:
            self.refresh()
            if self._current is not self.context:
                ssl_object.context = self._current
        except Exception as exc:  # a handshake must never fail because a reload did
            if self.log is not None:
                self.log.warning("serving certificate check failed", error=str(exc))
        return None


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, flushing the alert of a failed handshake."""

    def __init__(self, *args: Any, log: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._log = log

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            with contextlib.suppress(Exception):
                self._process_outgoing()  # type: ignore[attr-defined]  # the alert (bad certificate, unknown CA, expired) goes out first
            if self._log is not None and isinstance(handshake_exc, ssl.SSLError):
                peer = self._transport.get_extra_info("peername") if self._transport is not None else None
                reason = getattr(handshake_exc, "verify_message", None) or handshake_exc.reason  # "certificate has expired"
                self._log.info("TLS handshake refused", reason=reason or str(handshake_exc), peer=str(peer))
        super()._on_handshake_complete(handshake_exc)


def https_protocol(certificates: ServingCertificates, *, log: Any = None) -> Callable[..., asyncio.BaseProtocol]:
    """A protocol factory for uvicorn's ``http`` setting: TLS with ``certificates``, then HTTP."""

    def create(**kwargs: Any) -> asyncio.BaseProtocol:
        app_protocol = PeerCertProtocol(**kwargs)
        return _AlertingSSLProtocol(
            asyncio.get_running_loop(),
            app_protocol,
            certificates.context,
            None,
            server_side=True,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            log=log,
        )

    return create
