"""``kubectl exec`` on the node: commands started in a running container's context, on request
of the API server through Redis (see ``shared/exec_session.py`` for the streams).

The command gets the container's environment (``POD_IP``, its ``env``) and working directory
(the program's current directory, else ``workingDir``), runs in a session (process group) of
its own, and is killed with that group when the client's heartbeat lapses, when the container
stops or the pod goes, when ``kill`` arrives, or when the kubelet stops (and, if the kubelet is
killed, by the parent-death signal). Anything unexpected on the streams is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import structlog

from shared import exec_session, redis_conn
from shared.exec_session import field
from shared.process import Runtime

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL = 1.0  # seconds between checks of the heartbeat, the pod and the container
BEAT_EVERY = 3  # WATCH_INTERVALs between the kubelet's own heartbeats on the output stream


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the kubelet dies (a killed kubelet leaves no command)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ExecAgent:
    """Reads the node's exec requests and runs one ``ExecSession`` per request."""

    def __init__(self, kubelet: Any, *, redis_url: str) -> None:
        self.k = kubelet
        self.redis = kubelet.redis
        self.redis_url = redis_url
        self.node = kubelet.settings.node
        self.requests = kubelet.keys.exec_requests(self.node)
        self.sessions: dict[str, asyncio.Task[None]] = {}
        self.log = structlog.get_logger().bind(node=self.node, part="exec")

    async def run(self, runtime: Runtime) -> None:
        runtime.metrics.gauge("kubelet_exec_sessions", lambda: float(len(self.sessions)), help="exec sessions running")
        conn = None
        last: str | None = None
        backoff = 0.5
        try:
            while not runtime.stop.is_set():
                try:
                    if conn is None:
                        conn = redis_conn.blocking(self.redis_url)
                    if last is None:  # requests made while no kubelet listened were given up by now
                        newest: Any = await conn.xrevrange(self.requests, count=1)
                        last = newest[0][0].decode() if newest else "0-0"
                    reply: Any = await conn.xread({self.requests: last}, block=1000, count=50)
                    backoff = 0.5
                except Exception as exc:
                    self.log.warning("reading exec requests failed; retrying", error=str(exc), backoff=backoff)
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.aclose()
                    conn = None
                    if await runtime.sleep(backoff):
                        return
                    backoff = min(backoff * 2, 5.0)
                    continue
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                        self._start(fields, runtime)
        finally:
            sessions = list(self.sessions.values())
            for task in sessions:
                task.cancel()  # each kills its command; bounded, as a cancellation may be swallowed
            if sessions:
                await asyncio.wait(sessions, timeout=5)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.aclose()

    def _start(self, fields: dict[Any, Any], runtime: Runtime) -> None:
        session = field(fields, "session").decode(errors="replace")
        if not exec_session.valid_session(session) or session in self.sessions:
            self.log.warning("exec request ignored: bad or repeated session id", session=session[:64])
            return
        worker = ExecSession(self, session, fields)
        task = asyncio.create_task(worker.run(runtime), name=f"exec-{session}")
        self.sessions[session] = task
        task.add_done_callback(lambda _t: self.sessions.pop(session, None))


class ExecSession:
    def __init__(self, agent: ExecAgent, session: str, fields: dict[Any, Any]) -> None:
        self.agent = agent
        self.redis = agent.redis
        keys, node = agent.k.keys, agent.node
        self.input = keys.exec_input(node, session)
        self.output = keys.exec_output(node, session)
        self.alive = keys.exec_alive(node, session)
        self.fields = fields
        self.process: asyncio.subprocess.Process | None = None
        self.helpers: list[asyncio.Task[None]] = []
        self.pod_uid = ""
        self.run_dir: Path | None = None
        self.ended = False
        self.log = agent.log.bind(session=session)

    async def _put(self, kind: str, data: bytes | str = b"") -> None:
        await exec_session.append(self.redis, self.output, {"t": kind, "d": data})

    async def run(self, runtime: Runtime) -> None:
        try:
            problem = await self._start()
            if problem is not None:
                self.log.info("exec refused", reason=problem)
                await self._put("error", problem)
                return
            await self._put("started")
            code = await self._supervise(runtime)
            await self._put("exit", str(code))
        except asyncio.CancelledError:
            self._kill()
            raise
        except Exception as exc:
            self.log.exception("exec session failed")
            self._kill()
            with contextlib.suppress(Exception):
                await self._put("error", f"exec failed on node {self.agent.node}: {exc}")
        finally:
            self.ended = True
            self._kill()
            if self.helpers:
                await asyncio.wait(self.helpers, timeout=3)
            if self.process is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.process.wait(), timeout=5)
            with contextlib.suppress(Exception):
                await self.redis.delete(self.input)
                if not await self.redis.exists(self.alive):  # nobody will read the end: leave nothing
                    await self.redis.delete(self.output)

    # --- start ---------------------------------------------------------------------

    def _container(self) -> tuple[dict[str, Any] | None, Any, str | None]:
        """(pod, the container's live run, None) or (.., .., why exec is not possible)."""
        k = self.agent.k
        namespace = field(self.fields, "namespace").decode(errors="replace")
        name = field(self.fields, "pod").decode(errors="replace")
        container = field(self.fields, "container").decode(errors="replace")
        uid = field(self.fields, "uid").decode(errors="replace")
        pod = k.pods.get(f"{namespace}/{name}")
        if pod is None or (uid and str(pod["metadata"].get("uid")) != uid):
            return None, None, f'pod "{name}" not found on node {self.agent.node}'
        if k.settings.runtime != "process":
            return pod, None, f"exec is not supported by the {k.settings.runtime} runtime of node {self.agent.node}"
        runs = k.runtime.runs(str(pod["metadata"]["uid"]), container) if container else []
        run = runs[-1] if runs else None
        if run is None or run.exit() is not None or not int(run.info().get("program") or 0):
            return pod, None, f'container not found ("{container}"): it is not running'
        return pod, run, None

    async def _start(self) -> str | None:
        pod, run, problem = self._container()
        if problem is not None:
            return problem
        self.pod_uid = str(pod["metadata"]["uid"]) if pod else ""
        self.run_dir = run.dir
        if field(self.fields, "tty") in (b"1", b"true"):
            return "a TTY is not supported by redkube's process runtime: run kubectl exec without -t"
        try:
            command = json.loads(field(self.fields, "command") or b"[]")
        except ValueError:
            command = None
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            return "the exec request carries no valid command"
        spec = json.loads((run.dir / "spec.json").read_text())
        env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
        cwd = spec.get("cwd") or None
        with contextlib.suppress(psutil.Error, ValueError):
            cwd = psutil.Process(int(run.info().get("program") or 0)).cwd()  # where the container runs now
        stdin = field(self.fields, "stdin") in (b"1", b"true")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, env=env, cwd=cwd,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            return f'exec failed: unable to start process: exec: "{command[0]}": executable file not found in $PATH'
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return f'exec failed: unable to start process: exec: "{command[0]}": {reason}'
        self.log.info("exec started", command=command, pid=self.process.pid, container=run.dir.parent.name)
        return None

    # --- while it runs -------------------------------------------------------------

    async def _supervise(self, runtime: Runtime) -> int:
        process = self.process
        assert process is not None
        pumps = [asyncio.create_task(self._pump(process.stdout, "stdout")),
                 asyncio.create_task(self._pump(process.stderr, "stderr"))]
        helpers = [asyncio.create_task(self._input(process)), asyncio.create_task(self._watch(runtime))]
        try:
            code = await process.wait()
            # The command's output ends when every holder of its pipes has exited; a background
            # child keeps them open, so give the pumps a moment, then stop reading.
            await asyncio.wait(pumps, timeout=2)
        finally:
            # Not awaited: redis-py may swallow a cancellation that lands while it connects, so
            # the helpers also stop on ``ended`` (within a BLOCK) and ``run`` waits for them last.
            self.ended = True
            for task in pumps + helpers:
                task.cancel()
            self.helpers = pumps + helpers
        return 128 - code if code < 0 else code

    async def _pump(self, reader: asyncio.StreamReader | None, kind: str) -> None:
        if reader is None:
            return
        while True:
            data = await reader.read(exec_session.CHUNK)
            if not data:
                return
            await exec_session.wait_for_room(self.redis, self.output, gone=lambda: self.ended)
            await self._put(kind, data)

    async def _input(self, process: asyncio.subprocess.Process) -> None:
        """Input stream -> the command's stdin (or a kill), trimming what was read."""
        conn = redis_conn.blocking(self.agent.redis_url)
        last = "0-0"
        try:
            while not self.ended:
                try:
                    reply: Any = await conn.xread({self.input: last}, block=1000, count=100)
                except Exception as exc:
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    self.log.warning("reading exec input failed; retrying", error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                        await self._apply(process, field(fields, "t"), field(fields, "d"))
                    with contextlib.suppress(Exception):
                        await exec_session.trim_read(self.redis, self.input, last)
        finally:
            await conn.aclose()

    async def _apply(self, process: asyncio.subprocess.Process, kind: bytes, data: bytes) -> None:
        stdin = process.stdin
        if kind == b"stdin" and stdin is not None and not stdin.is_closing():
            try:
                stdin.write(data)
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                stdin.close()
        elif kind == b"close" and stdin is not None:
            stdin.close()
        elif kind == b"kill":
            self.log.info("exec killed: the client went away")
            self._kill()
        elif kind != b"resize":
            self.log.warning("unknown exec input ignored", kind=kind[:32].decode(errors="replace"))

    async def _watch(self, runtime: Runtime) -> None:
        """Kill the command when nobody listens any more or its container is gone."""
        k = self.agent.k
        ticks = 0
        while not self.ended:
            if await runtime.sleep(WATCH_INTERVAL):
                self._kill()
                return
            ticks += 1
            if ticks % BEAT_EVERY == 0:  # the API server gives up on a kubelet it no longer hears
                with contextlib.suppress(Exception):
                    await self._put("beat")
            why = None
            try:
                if not await self.redis.exists(self.alive):
                    why = "the client's heartbeat lapsed"
            except Exception as exc:
                self.log.warning("exec heartbeat check failed", error=str(exc))
            namespace = field(self.fields, "namespace").decode(errors="replace")
            pod = k.pods.get(f"{namespace}/{field(self.fields, 'pod').decode(errors='replace')}")
            if pod is None or str(pod["metadata"].get("uid")) != self.pod_uid:
                why = "the pod is gone"
            else:
                container = self.run_dir.parent.name if self.run_dir is not None else ""
                runs = k.runtime.runs(self.pod_uid, container)
                if not runs or runs[-1].dir != self.run_dir or runs[-1].exit() is not None:  # restarted or ended
                    why = "the container stopped"
            if why is not None:
                self.log.info("killing the exec'd command", reason=why)
                self._kill()
                return

    def _kill(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
