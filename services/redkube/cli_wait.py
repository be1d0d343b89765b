"""Waiting for what was applied to come up: pods Running and ready, deployments available.

Shared by ``apply --wait`` and ``rollout status``. It polls (every half second) rather
than watching: a CLI waits for a handful of objects, and polling survives an API
server restart without relisting logic. Progress is printed whenever it changes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from services.redkube.cli_client import Client, CliError, by_manifest, display_name

INTERVAL = 0.5


class RolloutFailed(CliError):
    pass


def deployment_progress(dep: dict[str, Any]) -> tuple[str, bool]:
    """kubectl's rollout status for a Deployment: (message, done); RolloutFailed past its deadline."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    name = meta.get("name", "")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise RolloutFailed(f'error: deployment "{name}" exceeded its progress deadline')
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas '
            "have been updated...",
            False,
        )
    if total > updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are pending '
            "termination...",
            False,
        )
    if available < updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas '
            "are available...",
            False,
        )
    return f'deployment "{name}" successfully rolled out', True


def pod_progress(pod: dict[str, Any]) -> tuple[str, bool]:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    name, phase = meta.get("name", ""), status.get("phase") or "Pending"
    if phase == "Succeeded":
        return f'pod "{name}" completed', True
    if phase == "Failed":
        raise RolloutFailed(f'error: pod "{name}" failed: {status.get("reason") or status.get("message") or ""}')
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if phase == "Running" and ready:
        return f'pod "{name}" is running', True
    waiting = [
        (c.get("state") or {}).get("waiting", {}).get("reason")
        for c in status.get("containerStatuses") or []
        if (c.get("state") or {}).get("waiting")
    ]
    detail = f" ({', '.join(w for w in waiting if w)})" if any(waiting) else ""
    return f'Waiting for pod "{name}": {phase}{detail}...', False


PROGRESS: dict[str, Callable[[dict[str, Any]], tuple[str, bool]]] = {
    "Deployment": deployment_progress,
    "Pod": pod_progress,
}


def wait_until(
    fetch: Callable[[], dict[str, Any]],
    progress: Callable[[dict[str, Any]], tuple[str, bool]],
    *,
    timeout: float,
    label: str,
) -> None:
    """Poll ``fetch`` until ``progress`` says done; print each new message."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        message, done = progress(fetch())
        if message != last:
            print(message, flush=True)
            last = message
        if done:
            return
        if time.monotonic() >= deadline:
            raise CliError(f"error: timed out waiting for the condition on {label}")
        time.sleep(min(INTERVAL, max(deadline - time.monotonic(), 0.01)))


def wait_for_all(client: Client, docs: list[dict[str, Any]], *, default_namespace: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    for doc in docs:
        progress = PROGRESS.get(str(doc.get("kind")))
        if progress is None:
            continue
        resource = by_manifest(doc)
        meta = doc.get("metadata") or {}
        namespace = meta.get("namespace") or default_namespace
        name = meta["name"]
        label = f"{display_name(resource)}/{name}"

        def fetch(resource: Any = resource, namespace: str = namespace, name: str = name) -> dict[str, Any]:
            return client.get(resource, namespace, name)

        wait_until(fetch, progress, timeout=max(deadline - time.monotonic(), 0.0), label=label)
    sys.stdout.flush()
    return 0
