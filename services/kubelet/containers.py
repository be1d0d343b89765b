"""The process runtime: container runs as shim processes, found again after a restart.

Each run of a container has a directory ``pods/UID/CONTAINER/ATTEMPT/`` under the
node's state dir holding ``spec.json`` (what to run), ``shim.json`` (shim pid, the
program's pid = its process group, start time), ``log`` and ``exit.json``.
Those files and the live shim processes are the truth: a kubelet that starts finds
the live shims by scanning processes (``adopt``), so it never starts a program
twice and never leaves one behind.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

SHIM = str(Path(__file__).resolve().with_name("shim.py"))


def shim_directory(cmdline: list[str]) -> str | None:
    """The run directory of a shim process, from its command line (None if not a shim)."""
    for index, word in enumerate(cmdline[:-1]):
        if word.endswith("shim.py") and Path(word).name == "shim.py":
            return cmdline[index + 1]
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Run:
    """One run (attempt) of a container."""

    dir: Path
    attempt: int
    popen: subprocess.Popen[bytes] | None = None
    shim: psutil.Process | None = None
    started_mono: float = field(default_factory=time.monotonic)
    lost: dict[str, Any] | None = None
    _id: str = ""
    _info: dict[str, Any] | None = None
    _exit: dict[str, Any] | None = None

    @property
    def container_id(self) -> str:
        if not self._id:
            self._id = str((read_json(self.dir / "spec.json") or {}).get("id", ""))
        return f"redkube-process://{self._id}"

    def info(self) -> dict[str, Any]:
        """What the shim wrote when it started the program (cached once complete)."""
        if self._info is None:
            data = read_json(self.dir / "shim.json")
            if data is None:
                return {}
            self._info = data
        return self._info

    def exit(self) -> dict[str, Any] | None:
        """The run's end (exitCode, reason, finishedAt...) once it has ended, else None."""
        if self._exit is not None:
            return self._exit
        done = read_json(self.dir / "exit.json")
        if done is not None:
            self._reap()
            if (self.dir / "oom").exists():
                done = {**done, "reason": "OOMKilled"}
            self._exit = done
            return done
        if self.lost is not None:
            return self.lost
        if self._shim_alive():
            return None
        done = read_json(self.dir / "exit.json")  # written just before the shim exited?
        if done is not None:
            return done
        # The shim died without recording an exit (killed): stop what it left and say so.
        program = int(self.info().get("program") or 0)
        if program and _same_process(program, self.info().get("startedAt")):
            _killpg(program, signal.SIGKILL)
        self.lost = {
            "exitCode": 137,
            "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
            "startedAt": self.info().get("startedAt"),
            "finishedAt": _now(),
        }
        return self.lost

    def _reap(self) -> None:
        if self.popen is not None:
            self.popen.poll()

    def _shim_alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        if self.shim is not None:
            try:
                return self.shim.is_running() and self.shim.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False
        return False

    def memory(self) -> int:
        """Resident bytes of the program and everything it started."""
        program = int(self.info().get("program") or 0)
        if not program:
            return 0
        try:
            root = psutil.Process(program)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def oom_kill(self) -> None:
        """Over its memory limit: killed, and reported as OOMKilled as a runtime would."""
        (self.dir / "oom").touch()
        self.signal(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        """Signal the container's process group (the program and whatever it started)."""
        program = int(self.info().get("program") or 0)
        if program:
            _killpg(program, sig)


def _same_process(pid: int, started_at: str | None) -> bool:
    """Is ``pid`` still the program started at ``started_at`` (not a reused pid)?"""
    if not started_at:
        return False
    try:
        started = calendar.timegm(time.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S"))
        return abs(psutil.Process(pid).create_time() - started) < 5
    except (psutil.Error, ValueError):
        return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ProcessRuntime:
    """Starts, finds and stops container runs under ``state_dir/pods``."""

    def __init__(self, state_dir: Path, *, log_cap: int = 10 * 1024 * 1024) -> None:
        self.pods_dir = state_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.log_cap = log_cap
        self._adopted: dict[Path, psutil.Process] = {}
        self._children: dict[Path, subprocess.Popen[bytes]] = {}  # shims this process started

    def scan(self) -> None:
        """Find the live shims of this node (by command line), whoever started them."""
        found: dict[Path, psutil.Process] = {}
        root = str(self.pods_dir)
        for proc in psutil.process_iter(["cmdline"]):
            directory = shim_directory(proc.info.get("cmdline") or [])
            if directory is not None and directory.startswith(root + os.sep):
                found[Path(directory)] = proc
        self._adopted = found

    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    def known_pods(self) -> dict[str, dict[str, Any]]:
        """uid -> the pod.json written when its first container started."""
        out = {}
        for entry in self.pods_dir.iterdir() if self.pods_dir.exists() else []:
            out[entry.name] = read_json(entry / "pod.json") or {}
        return out

    def remember_pod(self, uid: str, meta: dict[str, Any]) -> None:
        directory = self.pod_dir(uid)
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / "pod.json").exists():
            (directory / "pod.json").write_text(json.dumps(meta))

    def runs(self, uid: str, container: str) -> list[Run]:
        """Every run of a container so far, oldest first; live ones adopted."""
        base = self.pod_dir(uid) / container
        attempts = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.exists() else []
        runs = []
        for attempt in attempts:
            directory = base / str(attempt)
            runs.append(Run(directory, attempt, popen=self._children.get(directory), shim=self._adopted.get(directory)))
        return runs

    def start(
        self, uid: str, container: str, attempt: int, *, argv: list[str], env: dict[str, str], cwd: str | None
    ) -> Run:
        directory = self.pod_dir(uid) / container / str(attempt)
        directory.mkdir(parents=True, exist_ok=True)
        spec = {"id": uuid.uuid4().hex, "argv": argv, "env": env, "cwd": cwd, "log_cap": self.log_cap}
        tmp = directory / "spec.json.tmp"
        tmp.write_text(json.dumps(spec))
        os.replace(tmp, directory / "spec.json")
        popen = subprocess.Popen(
            # -I -S: no site-packages, no user paths: the shim needs only the standard
            # library, and skipping site setup cuts its start-up, paid once per container.
            [sys.executable, "-I", "-S", SHIM, str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(directory / "shim.err").open("ab"),
            start_new_session=True,
            close_fds=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        self._children[directory] = popen
        return Run(directory, attempt, popen=popen)

    def discard(self, uid: str) -> None:
        """Stop whatever still runs for a pod and forget it."""
        self.kill_all(uid)
        base = self.pod_dir(uid)
        for directory in [d for d in self._children if base in d.parents]:
            self._children.pop(directory).poll()
        for directory in [d for d in self._adopted if base in d.parents]:
            del self._adopted[directory]
        shutil.rmtree(base, ignore_errors=True)

    async def stop_everything(self, *, grace: float) -> None:
        """SIGTERM every live run of this node, SIGKILL what is left after ``grace``."""
        live = [run for uid in self.known_pods() for run in self._all_runs(uid) if run.exit() is None]
        for run in live:
            run.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if all(run.exit() is not None for run in live):
                break
            await asyncio.sleep(0.05)
        for run in live:
            if run.exit() is None:
                run.signal(signal.SIGKILL)

    def _all_runs(self, uid: str) -> list[Run]:
        base = self.pod_dir(uid)
        if not base.exists():
            return []
        return [run for c in base.iterdir() if c.is_dir() for run in self.runs(uid, c.name)]

    def kill_all(self, uid: str) -> None:
        for run in self._all_runs(uid):
            if run.exit() is None:
                run.signal(signal.SIGKILL)
