"""How every redkube process starts and stops.

``run`` sets up logging, installs SIGTERM/SIGINT handlers that set one stop event
(a second signal exits at once), and runs the process's named tasks in a TaskGroup
next to a small ``/healthz`` + ``/metrics`` server. A task that crashes is logged by
name and takes the process down (the supervisor restarts it); a clean stop exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from shared.metrics import Metrics

HealthCheck = Callable[[], Awaitable[bool]]


@dataclass
class Runtime:
    """What a process's tasks share: the stop event, metrics and health checks."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)
    ready_checks: list[HealthCheck] = field(default_factory=list)

    async def ready(self) -> bool:
        for check in self.ready_checks:
            try:
                if not await check():
                    return False
            except Exception:
                return False
        return True

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless told to stop; True when stopping."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


Task = Callable[[Runtime], Awaitable[Any]]


def install_signals(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    log = structlog.get_logger()

    def on_signal(signum: int) -> None:
        if runtime.stop.is_set():
            log.warning("second signal, exiting now", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("stopping", signal=signal.Signals(signum).name)
        runtime.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def guarded(name: str, task: Task, runtime: Runtime) -> None:
    """Run one named task; log how it ended. Ending before stop is an error."""
    log = structlog.get_logger().bind(task=name)
    try:
        await task(runtime)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("task crashed")
        runtime.stop.set()
        raise
    if not runtime.stop.is_set():
        log.error("task exited unexpectedly")
        runtime.stop.set()


async def serve_health(runtime: Runtime, *, host: str, port: int) -> None:
    """A minimal HTTP/1.0 server for /healthz, /readyz and /metrics."""
    if not port:
        await runtime.stop.wait()
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)).strip():
                pass
            path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
            path = path.split("?", 1)[0]
            if path == "/healthz":
                status, body, ctype = 200, "ok", "text/plain"
            elif path == "/readyz":
                ok = await runtime.ready()
                status, body, ctype = (200, "ok", "text/plain") if ok else (503, "not ready", "text/plain")
            elif path == "/metrics":
                status, body, ctype = 200, runtime.metrics.render(), "text/plain; version=0.0.4"
            else:
                status, body, ctype = 404, "not found", "text/plain"
            data = body.encode()
            writer.write(
                f"HTTP/1.0 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    structlog.get_logger().info("health server listening", host=host, port=port)
    async with server:
        await runtime.stop.wait()


async def run_tasks(tasks: Mapping[str, Task], runtime: Runtime, *, health_host: str, health_port: int) -> None:
    install_signals(runtime)
    all_tasks: dict[str, Task] = {
        "health": lambda rt: serve_health(rt, host=health_host, port=health_port),
        **tasks,
    }
    async with asyncio.TaskGroup() as group:
        for name, task in all_tasks.items():
            group.create_task(guarded(name, task, runtime), name=name)


def run(main: Callable[[Runtime], Coroutine[Any, Any, None]]) -> int:
    """Entry point helper: run ``main`` and turn its outcome into an exit code."""
    runtime = Runtime()
    try:
        asyncio.run(main(runtime))
    except KeyboardInterrupt:
        return 0
    except BaseExceptionGroup as group:
        structlog.get_logger().error("exiting after a task failed", errors=[repr(e) for e in group.exceptions])
        return 1
    except Exception as exc:
        structlog.get_logger().error("exiting after an error", error=repr(exc))
        return 1
    sys.stdout.flush()
    return 0
