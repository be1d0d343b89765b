"""Test support for network partitions: a TCP fault proxy in front of Redis.

``FaultProxy`` listens on a free loopback port and forwards every connection to its
target. ``partition()`` turns it into a blackhole, as a real partition (dropped
packets) is: open connections stay open but pass no byte in either direction, and new
connections are accepted but never forwarded, so nobody gets an error, only silence.
That silence is the point: a client whose reads have no deadline hangs for ever.

``heal(stale=...)`` restores service for new connections; what becomes of the
connections that lived through the partition is chosen by the test:

- ``"blackhole"`` (default, the strictest): they stay silent for ever, as when a NAT or
  conntrack entry was lost, or the server dropped them while its answers were lost.
  Only a client with bounded reads (socket timeout) notices and reconnects.
- ``"close"``: they are reset (RST) at heal time, as a middlebox restart would.
- ``"resume"``: bytes held during the partition are delivered, as TCP retransmission
  delivers them once the route is back.

The proxy runs its own asyncio loop in a daemon thread; every method is thread-safe
and returns once the change has taken effect inside the loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

Stale = Literal["blackhole", "close", "resume"]
CHUNK = 65536


@dataclass(eq=False)
class Link:
    """One client connection and its upstream; ``gate`` open means bytes pass."""

    client: asyncio.StreamWriter
    gate: asyncio.Event
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    handler: asyncio.Task[Any] | None = None  # the accept handler, perhaps waiting at the gate

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()  # RST, as a middlebox that forgot the flow answers
        for task in self.tasks:
            task.cancel()


@dataclass
class Counters:
    accepted: int = 0
    forwarded: int = 0
    held_new: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class FaultProxy:
    """A loopback TCP proxy that can be partitioned and healed (see the module docstring)."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.partitioned = False
        self.counters = Counters()
        self._links: set[Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen)
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening, reset every connection, stop the loop and join its thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def url(self, *, db: int = 0, scheme: str = "redis") -> str:
        return f"{scheme}://{self.host}:{self.port}/{db}"

    # --- faults ------------------------------------------------------------------------

    def partition(self) -> None:
        """From now on no byte passes, on open connections or new ones (none is closed)."""
        self._call(self._partition)

    def heal(self, *, stale: Stale = "blackhole") -> None:
        """New connections pass again; ``stale`` says what happens to those of the partition."""
        if stale not in ("blackhole", "close", "resume"):
            raise ValueError(f"stale must be blackhole, close or resume, not {stale!r}")
        self._call(lambda: self._heal(stale))

    def open_connections(self) -> int:
        return len(self._links)

    # --- inside the loop ---------------------------------------------------------------

    def _call(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        self._links.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _partition(self) -> None:
        self.partitioned = True
        for link in self._links:
            link.gate.clear()

    async def _heal(self, stale: Stale) -> None:
        self.partitioned = False
        for link in list(self._links):
            if stale == "resume":
                link.gate.set()
            elif stale == "close":
                link.abort()
                self._links.discard(link)
                if link.handler is not None:
                    link.handler.cancel()  # one accepted during the partition waits at its gate
            # "blackhole": the gate stays shut for ever; the sockets stay open until close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.accepted += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(client=writer, gate=asyncio.Event(), handler=asyncio.current_task())
        if not self.partitioned:
            link.gate.set()
        else:
            self.counters.held_new += 1
        self._links.add(link)
        try:
            await link.gate.wait()  # accepted during a partition: not forwarded until (unless) it heals
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            link.upstream = up_writer
            self.counters.forwarded += 1
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, link, up=True)),
                asyncio.create_task(self._pump(up_reader, writer, link, up=False)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, *, up: bool) -> None:
        """Copy bytes one way while the gate is open; bytes read as it shuts wait behind it."""
        while True:
            await link.gate.wait()
            data = await reader.read(CHUNK)
            await link.gate.wait()  # what was read (or the EOF) as the partition began waits for the heal
            if not data:
                break
            writer.write(data)
            await writer.drain()
            if up:
                self.counters.bytes_up += len(data)
            else:
                self.counters.bytes_down += len(data)
        link.abort()  # one side closed: close both (FIN or RST alike to a Redis client)
