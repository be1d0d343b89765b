"""The container shim: one small process per container run, in a session of its own.

The kubelet starts ``python shim.py RUN_DIR``; the shim reads ``spec.json`` (argv,
env, cwd, log cap), starts the program in a new session (so the program's process
group is the container's), copies its stdout/stderr line by line into ``log`` in the
CRI format (``TIME STREAM F LINE``; rotated to ``log.1`` past the cap), and writes
the exit code to ``exit.json``. Because the shim outlives the kubelet, a kubelet that
restarts (even after kill -9) finds the run here and adopts it instead of starting
the program again. Imports nothing from redkube so it starts fast and stays small.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LINE_LIMIT = 16 * 1024
DRAIN_AFTER_EXIT_S = 1.0


def now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader sees the whole file or none of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class LogWriter:
    """Appends CRI-format lines to ``log``; past ``cap`` bytes the file becomes ``log.1``."""

    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.handle = path.open("ab")

    def write(self, stream: str, line: bytes) -> None:
        for start in range(0, max(len(line), 1), LINE_LIMIT):
            part = line[start : start + LINE_LIMIT]
            self.handle.write(f"{now()} {stream} F ".encode() + part.replace(b"\n", b"") + b"\n")
        self.handle.flush()
        if self.handle.tell() > self.cap:
            self.handle.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.handle = self.path.open("ab")


def pump(program: subprocess.Popen[bytes], writer: LogWriter) -> None:
    """Copy the program's output until both pipes close (or shortly after it exits)."""
    sel = selectors.DefaultSelector()
    buffers: dict[str, bytes] = {}
    assert program.stdout is not None and program.stderr is not None
    sel.register(program.stdout, selectors.EVENT_READ, "stdout")
    sel.register(program.stderr, selectors.EVENT_READ, "stderr")
    exited_at: float | None = None
    while sel.get_map():
        if exited_at is None and program.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > DRAIN_AFTER_EXIT_S:
            break  # a background child holds the pipe open; the container has ended
        for key, _ in sel.select(timeout=0.5):
            stream = key.data
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                if buffers.get(stream):
                    writer.write(stream, buffers.pop(stream))
                continue
            data = buffers.get(stream, b"") + chunk
            *lines, rest = data.split(b"\n")
            for line in lines:
                writer.write(stream, line)
            if len(rest) > LINE_LIMIT:
                writer.write(stream, rest)
                rest = b""
            buffers[stream] = rest
    for stream, rest in buffers.items():
        if rest:
            writer.write(stream, rest)


def main(run_dir: Path) -> int:
    spec = json.loads((run_dir / "spec.json").read_text())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # Signals are for the program's group, not the shim. A handler (not SIG_IGN, which
        # exec would pass on to the program) keeps the shim alive to record the exit.
        signal.signal(sig, lambda *_: None)
    started = now()
    try:
        program = subprocess.Popen(
            spec["argv"],
            env=spec["env"],
            cwd=spec.get("cwd") or None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            restore_signals=True,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        message = f"exec: {spec['argv'][0] if spec.get('argv') else ''!r}: {getattr(exc, 'strerror', None) or exc}"
        write_json(run_dir / "shim.json", {"pid": os.getpid(), "program": 0})
        write_json(
            run_dir / "exit.json",
            {"exitCode": 128, "reason": "StartError", "message": message, "startedAt": started, "finishedAt": now()},
        )
        return 0
    write_json(
        run_dir / "shim.json",
        {"pid": os.getpid(), "program": program.pid, "startedAt": started},
    )
    writer = LogWriter(run_dir / "log", int(spec.get("log_cap", 10 * 1024 * 1024)))
    pump(program, writer)
    code = program.wait()
    exit_code = 128 - code if code < 0 else code  # killed by signal N: 128+N, as runtimes report
    write_json(run_dir / "exit.json", {"exitCode": exit_code, "startedAt": started, "finishedAt": now()})
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
