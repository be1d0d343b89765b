"""Relaying one TCP connection to an endpoint, with asyncio buffered protocols.

Each accepted connection is paused until a backend connection is made (trying other
endpoints when one refuses or does not answer within the connect timeout), then
bytes flow both ways without tasks: a side's ``buffer_updated`` writes straight to
the peer transport, and the peer's write-buffer limits pause and resume reading
(back-pressure). Half-closes are passed on (``write_eof``), so request/response
protocols that shut down one direction work. Reads land in one buffer shared by
every connection of the loop: with Python 3.11's selector loop ``transport.write``
sends at once or copies what it could not send, so the buffer is free again when it
returns (newer versions and uvloop may keep a view of it, so there the data is
copied first).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, cast

from services.proxy.balancing import Backends, Endpoint

_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass
class RelayConfig:
    """What every relay of one proxy shares: timeouts, buffer sizes, the live set."""

    connect_timeout: float = 1.0
    buffer_size: int = 256 * 1024
    write_high_water: int = 1024 * 1024
    active: set[Relay] = field(default_factory=set)
    _buffer: bytearray | None = None
    _view: memoryview | None = None
    write_copies: bool = False

    def view(self) -> memoryview:
        if self._view is None:
            self._buffer = bytearray(self.buffer_size)
            self._view = memoryview(self._buffer)
            # Only 3.11's selector transports are known to copy what they cannot send at once;
            # elsewhere (3.12+, uvloop) the data is copied before writing.
            loop = asyncio.get_running_loop()
            self.write_copies = sys.version_info < (3, 12) and isinstance(loop, asyncio.SelectorEventLoop)
        return self._view


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP RST, so the client sees the connection refused/reset at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
    transport.abort()  # type: ignore[attr-defined]


class Side(asyncio.BufferedProtocol):
    """One socket of a relayed connection: what it reads goes to the peer's socket."""

    def __init__(self, relay: Relay, *, client: bool) -> None:
        self.relay = relay
        self.client = client
        self.view = relay.config.view()
        self.copy = not relay.config.write_copies
        self.counters = relay.backends.counters
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self.eof = False
        self.lost = False
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.transport.set_write_buffer_limits(high=self.relay.config.write_high_water)
        if self.client:
            self.relay.accepted(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        peer = self.peer
        if peer is None:
            # Not relaying yet: a client's early bytes (a loop may read before our pause takes
            # effect: uvloop starts reading after connection_made), or a backend's greeting sent
            # before the relay is wired up. Kept for the peer.
            self.pending.append(bytes(self.view[:nbytes]))
            if self.transport is not None:
                self.transport.pause_reading()
            return
        if peer.lost:
            return  # the other side is gone: nothing to pass this to
        transport = peer.transport
        if transport is None or transport.is_closing():
            return
        if self.client:
            self.counters.bytes_to_backend += nbytes
        else:
            self.counters.bytes_to_client += nbytes
        transport.write(bytes(self.view[:nbytes]) if self.copy else self.view[:nbytes])

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None:
            return True  # before the relay is wired up: passed on by Relay._attach
        if peer.eof or not peer.transport.can_write_eof():
            peer.transport.close()
            return False
        if not peer.transport.is_closing():
            peer.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.lost:
            if exc is None:
                peer.transport.close()  # flush what is still buffered for it
            else:
                peer.transport.abort()
        self.relay.side_lost(self)

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.resume_reading()


class Relay:
    """A client connection and, once connected, its backend connection."""

    def __init__(self, backends: Backends, config: RelayConfig, *, log: Any) -> None:
        self.backends = backends
        self.config = config
        self.client = Side(self, client=True)
        self.backend: Side | None = None
        self.endpoint: Endpoint | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = log
        self._done = False

    def accepted(self, side: Side) -> None:
        transport = side.transport
        assert transport is not None
        counters = self.backends.counters
        counters.accepted += 1
        self.backends.active += 1
        self.config.active.add(self)
        if not self.backends.endpoints:
            counters.failed_no_endpoints += 1
            reset(transport)
            return
        transport.pause_reading()
        peer = transport.get_extra_info("peername")
        client_ip = peer[0] if isinstance(peer, tuple) and peer else ""
        self._task = asyncio.get_running_loop().create_task(self._connect_guarded(client_ip))

    async def _connect_guarded(self, client_ip: str) -> None:
        try:
            await self._connect(client_ip)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("relaying a connection failed")
            self.abort()

    async def _connect(self, client_ip: str) -> None:
        loop = asyncio.get_running_loop()
        tried: set[Endpoint] = set()
        counters = self.backends.counters
        while not self.client.lost:
            endpoint = self.backends.pick(client_ip, exclude=tried)
            if endpoint is None:
                break
            side = Side(self, client=False)
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    await loop.create_connection(lambda side=side: side, endpoint[0], endpoint[1])  # type: ignore[misc]
            except (OSError, TimeoutError) as exc:
                tried.add(endpoint)
                counters.retries += 1
                self._log.info("endpoint did not accept; trying another", endpoint=f"{endpoint[0]}:{endpoint[1]}",
                               error=str(exc) or type(exc).__name__)
                continue
            self._attach(side, endpoint)
            return
        if not self.client.lost:
            counters.failed_connect += 1
            self._log.warning("no endpoint accepted the connection", tried=len(tried))
            if self.client.transport is not None:
                reset(self.client.transport)

    def _attach(self, side: Side, endpoint: Endpoint) -> None:
        self.backend, self.endpoint = side, endpoint
        client = self.client
        assert side.transport is not None and client.transport is not None
        if client.lost:
            side.transport.close()
            return
        side.peer, client.peer = client, side
        counters = self.backends.counters
        if side.lost:  # the backend answered and reset before we got here: pass on what it said
            for chunk in side.pending:
                counters.bytes_to_client += len(chunk)
                client.transport.write(chunk)
            client.transport.close()
            return
        for chunk in client.pending:
            counters.bytes_to_backend += len(chunk)
            side.transport.write(chunk)
        for chunk in side.pending:
            counters.bytes_to_client += len(chunk)
            client.transport.write(chunk)
        client.pending.clear()
        side.pending.clear()
        if side.eof and client.eof:
            side.transport.close()
            client.transport.close()
            return
        if side.eof:
            client.transport.write_eof()
        else:
            side.transport.resume_reading()
        if client.eof:
            side.transport.write_eof()
        else:
            client.transport.resume_reading()

    def side_lost(self, side: Side) -> None:
        if side.client and self._task is not None and not self._task.done():
            self._task.cancel()
        backend = self.backend
        if self.client.lost and (backend is None or backend.lost or backend.peer is None):
            self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self.backends.active -= 1
        self.backends.counters.closed += 1
        self.config.active.discard(self)

    def abort(self) -> None:
        """Drop both connections at once (the proxy is stopping)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for side in (self.client, self.backend):
            if side is not None and side.transport is not None and not side.lost:
                side.transport.abort()
