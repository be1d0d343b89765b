"""One worker per pod: run its containers, probe them, report status, finish deletion.

A worker is level-triggered: on every wake-up (an informer change, a probe result,
a tick) it reads the latest pod and the runs on disk, takes the next step (start an
init container, restart one after its back-off, stop them all for a deletion), and
patches the pod's status when what it would report has changed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.exceptions
import structlog

from services.kubelet import environment, probes
from services.kubelet.containers import Run
from services.kubelet.logstream import LogTailer
from services.kubelet.status import ContainerView, pod_status
from shared import quantity
from shared.bus import ApiClientError

if TYPE_CHECKING:
    from services.kubelet.main import Kubelet

TICK_S = 0.5
MEMORY_CHECK_S = 1.0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _revision(obj: dict[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class Container:
    """What the worker knows of one container beyond the files of its runs."""

    spec: dict[str, Any]
    init: bool
    run: Run | None = None
    previous_exit: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    tailer: asyncio.Task[None] | None = None
    probes: list[asyncio.Task[None]] = field(default_factory=list)
    backoff_level: int = 0
    backoff_until: float | None = None
    backoff_delay: float = 0.0
    ready: bool = False
    started: bool = False
    started_event: bool = False
    stopping: asyncio.Task[None] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def restart_count(self) -> int:
        return self.run.attempt if self.run else 0

    def probe(self, kind: str) -> dict[str, Any] | None:
        return self.spec.get(f"{kind}Probe") if not self.init else None


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.k = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.uid = str(meta.get("uid") or "")
        self.namespace = meta.get("namespace") or "default"
        self.name = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.removed = False
        self.wake = asyncio.Event()
        self.pod_ip = ""
        self.start_time = (pod.get("status") or {}).get("startTime") or _now()
        self.last_sent: dict[str, Any] | None = None
        self.sent_echo: dict[str, Any] | None = None  # the status the API stored for our last write...
        self.sent_rv = 0  # ...and the pod's resourceVersion then
        self.init_done = False
        self.containers: list[Container] = []
        self.terminating_since: float | None = None
        self.next_memory_check = 0.0
        self.log = structlog.get_logger().bind(key=self.key, uid=self.uid)

    # --- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        try:
            self._load()
            while True:
                if self.removed:
                    self.log.info("pod no longer bound here (deleted or replaced); stopping its containers")
                    await self._stop_all(grace=self._grace(), reason=None)
                    await self._forget()
                    return
                if self.pod["metadata"].get("deletionTimestamp"):
                    if await self._terminate():
                        return
                else:
                    try:
                        await self._step()
                    except Exception:
                        self.log.exception("pod step failed")
                await self._sync_status()
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=TICK_S)
                except TimeoutError:
                    pass
        finally:
            for container in self.containers:
                for task in container.probes:
                    task.cancel()
                if container.tailer is not None:
                    container.tailer.cancel()

    def _load(self) -> None:
        """Rebuild the containers' state from their runs on disk (after a restart, too)."""
        runtime = self.k.runtime
        runtime.remember_pod(self.uid, {"namespace": self.namespace, "name": self.name})
        self.pod_ip = self.k.ipam.allocate(self.uid)
        spec = self.pod.get("spec") or {}
        for init, items in ((True, spec.get("initContainers") or []), (False, spec.get("containers") or [])):
            for item in items:
                container = Container(item, init)
                runs = runtime.runs(self.uid, container.name)
                if runs:
                    container.run = runs[-1]
                    container.finished = container.run.exit()
                    container.previous_exit = runs[-2].exit() if len(runs) > 1 else None
                    container.started_event = True
                    container.env = self._env(container)
                    container.tailer = asyncio.create_task(self._tail(container, container.run))
                    if container.finished is None:
                        container.started = container.probe("startup") is None
                        container.ready = container.probe("readiness") is None
                        self._start_probes(container, container.run)
                self.containers.append(container)
        self.init_done = all(c.finished is not None and c.finished.get("exitCode") == 0
                             for c in self.containers if c.init)

    # --- steps ---------------------------------------------------------------------

    async def _step(self) -> None:
        self._enforce_memory()
        await self._check_exits()
        if self._terminal():
            return
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if not self.init_done:
            for container in (c for c in self.containers if c.init):
                if container.finished is not None and container.finished.get("exitCode") == 0:
                    continue
                if container.run is None:
                    await self._start(container)
                elif container.finished is not None and policy != "Never":
                    await self._maybe_restart(container)
                return
            self.init_done = True
        for container in (c for c in self.containers if not c.init):
            if container.run is None:
                await self._start(container)
            elif container.finished is not None and self._should_restart(container, policy):
                await self._maybe_restart(container)

    def _enforce_memory(self) -> None:
        """No cgroups here: a container over ``limits.memory`` is killed by the kubelet (OOMKilled)."""
        now = time.monotonic()
        if now < self.next_memory_check:
            return
        self.next_memory_check = now + MEMORY_CHECK_S
        for container in self.containers:
            limit = ((container.spec.get("resources") or {}).get("limits") or {}).get("memory")
            if not limit or container.run is None or container.finished is not None:
                continue
            try:
                cap = quantity.whole(limit)
            except ValueError:
                continue
            used = container.run.memory()
            if used > cap:
                self.log.info("container over its memory limit; killing", container=container.name, used=used,
                              limit=cap)
                container.run.oom_kill()

    def _should_restart(self, container: Container, policy: str) -> bool:
        if policy == "Always":
            return True
        return policy == "OnFailure" and (container.finished or {}).get("exitCode") != 0

    def _terminal(self) -> bool:
        return self._phase() in ("Succeeded", "Failed")

    async def _check_exits(self) -> None:
        for container in self.containers:
            run = container.run
            if run is None or container.finished is not None:
                continue
            if not container.started_event and run.info().get("program"):
                container.started_event = True
                await self._event("Started", f"Started container {container.name}")
            done = run.exit()
            if done is None:
                continue
            container.finished = done
            container.ready = False
            for task in container.probes:
                task.cancel()
            container.probes = []
            if done.get("reason") == "StartError":
                await self._event("Failed", f"Error: failed to start container {container.name!r}: "
                                  f"{done.get('message', '')}", type="Warning")
            ran = time.monotonic() - run.started_mono
            if ran > 2 * self.k.settings.backoff_max_seconds:
                container.backoff_level = 0

    async def _maybe_restart(self, container: Container) -> None:
        now = time.monotonic()
        if container.backoff_until is None:
            level = container.backoff_level
            base, cap = self.k.settings.backoff_seconds, self.k.settings.backoff_max_seconds
            container.backoff_delay = 0.0 if level == 0 else min(base * 2 ** (level - 1), cap)
            container.backoff_until = now + container.backoff_delay
            if container.backoff_delay > 0:
                await self._event(
                    "BackOff",
                    f"Back-off restarting failed container {container.name} in pod {self.name}_{self.namespace}"
                    f"({self.uid})",
                    type="Warning",
                )
        if now < container.backoff_until:
            return
        container.backoff_until = None
        container.backoff_level += 1
        await self._start(container)

    async def _start(self, container: Container) -> None:
        if container.tailer is not None:
            await container.tailer  # the last run's log is complete (with its eof) first
            container.tailer = None
        attempt = container.run.attempt + 1 if container.run else 0
        tailer = self._tailer(container, attempt)
        if attempt > 0:
            await tailer.rotate_previous()
        container.env = self._env(container)
        argv = environment.container_argv(container.spec, container.env)
        image = container.spec.get("image") or ""
        await self._event("Pulled", f'Container image "{image}" already present on machine')
        container.previous_exit = container.finished
        if not argv:
            argv = ["/nonexistent/no-command-given"]  # no image entrypoint to fall back on: a StartError
        run = self.k.runtime.start(self.uid, container.name, attempt, argv=argv, env=container.env,
                                   cwd=container.spec.get("workingDir"))
        container.run, container.finished = run, None
        container.started_event = False
        container.started = container.probe("startup") is None
        container.ready = container.probe("readiness") is None
        await self._event("Created", f"Created container {container.name}")
        container.tailer = asyncio.create_task(self._tail(container, run, tailer))
        self._start_probes(container, run)
        self.k.metrics.inc("kubelet_container_starts_total", help="container runs started")
        self.log.info("container started", container=container.name, attempt=attempt, argv=argv[:8])

    def _env(self, container: Container) -> dict[str, str]:
        services = self.k.services.list(namespace=self.namespace) if self.k.services else []
        if self.namespace != "default" and self.k.services:
            kube = self.k.services.get("default/kubernetes")
            services = [*services, kube] if kube else services
        return environment.container_env(
            self.pod, container.spec, services=services, pod_ip=self.pod_ip, host_ip=self.k.settings.node_ip,
            base=self.k.base_env,
        )

    # --- logs ----------------------------------------------------------------------

    def _tailer(self, container: Container, attempt: int) -> LogTailer:
        run_dir = self.k.runtime.pod_dir(self.uid) / container.name / str(attempt)
        return LogTailer(self.k.redis, self.k.keys, namespace=self.namespace, pod=self.name,
                         container=container.name, run_dir=run_dir, attempt=attempt)

    async def _tail(self, container: Container, run: Run, tailer: LogTailer | None = None) -> None:
        """Copy a run's log into Redis until the run has ended, then mark its end."""
        tailer = tailer or self._tailer(container, run.attempt)
        backoff = 0.2
        while True:
            try:
                ended = container.run is not run or container.finished is not None or run.exit() is not None
                if ended:
                    await tailer.finish()
                    return
                copied = await tailer.pump()
                backoff = 0.2
                await asyncio.sleep(0.05 if copied else 0.25)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("log copy failed; retrying", container=container.name, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # --- probes --------------------------------------------------------------------

    def _start_probes(self, container: Container, run: Run) -> None:
        for kind in ("startup", "liveness", "readiness"):
            probe = container.probe(kind)
            if probe:
                container.probes.append(asyncio.create_task(self._probe_loop(container, run, kind, probe)))

    async def _probe_loop(self, container: Container, run: Run, kind: str, probe: dict[str, Any]) -> None:
        period = max(float(probe.get("periodSeconds") or 10), 0.1)
        success_needed = int(probe.get("successThreshold") or 1)
        failures_allowed = int(probe.get("failureThreshold") or 3)
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        successes = failures = 0
        label = kind.capitalize()
        while container.run is run and container.finished is None:
            if kind != "startup" and not container.started:
                await asyncio.sleep(min(period, 0.2))
                continue
            if kind == "startup" and container.started:
                return
            ok, message = await probes.run_probe(probe, container=container.spec, pod_ip=self.pod_ip,
                                                 env=container.env, cwd=container.spec.get("workingDir"))
            if container.run is not run or container.finished is not None:
                return
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not ok:
                self.k.metrics.inc("kubelet_probe_failures_total", help="failed probes", probe=kind)
                await self._event("Unhealthy", f"{label} probe failed: {message}", type="Warning")
            if kind == "readiness":
                if ok and successes >= success_needed and not container.ready:
                    container.ready = True
                    self.wake.set()
                elif not ok and failures >= failures_allowed and container.ready:
                    container.ready = False
                    self.wake.set()
            elif ok and kind == "startup":
                container.started = True
                self.wake.set()
                return
            elif not ok and failures >= failures_allowed:
                verb = "liveness" if kind == "liveness" else "startup"
                await self._event("Killing", f"Container {container.name} failed {verb} probe, will be restarted")
                grace = probe.get("terminationGracePeriodSeconds") or self._pod_grace()
                await self._stop(container, grace=float(grace), reason=None)
                self.wake.set()
                return
            await asyncio.sleep(period)

    # --- stopping ------------------------------------------------------------------

    def _pod_grace(self) -> float:
        return float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    def _grace(self) -> float:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        return float(grace) if grace is not None else self._pod_grace()

    async def _stop(self, container: Container, *, grace: float, reason: str | None = "Stopping") -> None:
        """SIGTERM the container's process group, SIGKILL once the grace period is over."""
        run = container.run
        if run is None or run.exit() is not None:
            return
        if reason:
            await self._event("Killing", f"Stopping container {container.name}")
        deadline = time.monotonic() + grace
        sent_term = False
        while run.exit() is None:
            if not sent_term and run.info().get("program"):
                run.signal(signal.SIGTERM)
                sent_term = True
            if time.monotonic() >= deadline or (self.terminating_since is not None
                                                and time.monotonic() >= self.terminating_since + self._grace()):
                run.signal(signal.SIGKILL)
            await asyncio.sleep(0.05)

    async def _stop_all(self, *, grace: float, reason: str | None) -> None:
        await asyncio.gather(*(self._stop(c, grace=grace, reason=reason) for c in self.containers))
        await self._check_exits()
        for container in self.containers:
            if container.tailer is not None:
                try:
                    await asyncio.wait_for(container.tailer, timeout=5)
                except (TimeoutError, Exception):
                    pass
                container.tailer = None

    async def _terminate(self) -> bool:
        """Graceful deletion: stop every container, then confirm with a 0-second delete."""
        if self.terminating_since is None:
            self.terminating_since = time.monotonic()
        await self._stop_all(grace=self._grace(), reason="Stopping")
        await self._sync_status()
        try:
            await self.k.client.delete("pods", self.name, namespace=self.namespace,
                                       params={"gracePeriodSeconds": "0"})
        except ApiClientError as exc:
            if exc.code not in (404, 409):
                self.log.warning("could not confirm deletion", error=str(exc))
                await asyncio.sleep(1)
                return False
        except (OSError, ConnectionError, TimeoutError, redis.exceptions.RedisError) as exc:
            self.log.warning("could not confirm deletion; API unreachable", error=str(exc))
            await asyncio.sleep(1)
            return False
        self.log.info("pod deleted")
        await self._forget()
        return True

    async def _forget(self) -> None:
        self.k.runtime.discard(self.uid)
        self.k.ipam.release(self.uid)
        await self.k.forget_logs(self.namespace, self.name, [c.name for c in self.containers])

    # --- status --------------------------------------------------------------------

    def _views(self) -> list[ContainerView]:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        deleting = bool(self.pod["metadata"].get("deletionTimestamp"))
        views = []
        for container in self.containers:
            restarting = (
                container.finished is not None and not deleting and container.backoff_until is not None
                and container.backoff_delay > 0 and (container.init or self._should_restart(container, policy))
            )
            info = container.run.info() if container.run else {}
            views.append(ContainerView(
                name=container.name,
                image=container.spec.get("image") or "",
                init=container.init,
                created=container.run is not None and (bool(info) or container.finished is not None),
                started_at=info.get("startedAt"),
                finished=container.finished,
                previous=container.previous_exit,
                restart_count=container.restart_count,
                ready=container.ready and container.started and container.finished is None
                and bool(info.get("program")),
                started=container.started and container.finished is None and bool(info.get("program")),
                container_id=container.run.container_id if container.run else None,
                backoff=(
                    f"back-off {container.backoff_delay:g}s restarting failed container={container.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})"
                ) if restarting else None,
            ))
        return views

    def _phase(self) -> str:
        return pod_status(self.pod, self._views(), pod_ip=self.pod_ip, host_ip=self.k.settings.node_ip,
                          start_time=self.start_time)["phase"]

    async def _sync_status(self) -> None:
        overwritten = self._overwritten()  # then the stored conditions, not ours, date the transitions
        status = pod_status(self.pod, self._views(), pod_ip=self.pod_ip, host_ip=self.k.settings.node_ip,
                            start_time=self.start_time, previous=None if overwritten else self.last_sent)
        if status == self.last_sent and not overwritten:
            return
        current = self.pod.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            self._sent(status, self.pod)
            return
        try:
            written = await self.k.client.patch(
                "pods", self.name, {"status": status}, namespace=self.namespace, subresource="status",
                content_type="application/merge-patch+json",
            )
            self._sent(status, written if isinstance(written, dict) else None)
            self.k.metrics.inc("kubelet_status_updates_total", help="pod status patches sent")
        except ApiClientError as exc:
            if exc.code == 404:
                self.removed = True
            else:
                self.log.warning("status update failed", error=str(exc))
        except (OSError, ConnectionError, TimeoutError, redis.exceptions.RedisError) as exc:
            self.log.warning("status update failed; API unreachable", error=str(exc))

    def _sent(self, status: dict[str, Any], stored: dict[str, Any] | None) -> None:
        self.last_sent = status
        self.sent_echo = (stored or {}).get("status")
        self.sent_rv = _revision(stored)

    def _overwritten(self) -> bool:
        """Someone else wrote the status after our last write (the node lifecycle controller marks the
        pods of a silent node NotReady): unless written again, it would stay wrong after the node is back."""
        if self.sent_echo is None or _revision(self.pod) <= self.sent_rv:
            return False  # nothing known, or our own write not seen back yet
        return (self.pod.get("status") or {}) != self.sent_echo

    async def _event(self, reason: str, message: str, *, type: str = "Normal") -> None:
        # In the background: starting a container must not wait for three Event writes.
        self.k.recorder.emit(self.pod, reason=reason, message=message, type=type)
