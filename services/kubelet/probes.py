"""Container probes: exec, httpGet and tcpSocket, each bounded by its timeout.

A probe that hangs is a failure (its process group is killed), never a stuck
kubelet. Results are ``(ok, message)`` with messages shaped like Kubernetes' own.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not a number nor a named port of the container")


async def run_exec(command: list[str], *, env: dict[str, str], cwd: str | None, limit: float) -> tuple[bool, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=cwd or None, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        return False, f"exec {command!r} failed: {exc}"
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=limit)
    except TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        await proc.wait()
        return False, f"command {' '.join(command)!r} timed out"
    if proc.returncode == 0:
        return True, ""
    text = output.decode(errors="replace").strip()[-1024:]
    return False, text or f"command {' '.join(command)!r} exited with {proc.returncode}"


async def run_http(action: dict[str, Any], *, host: str, port: int, limit: float) -> tuple[bool, str]:
    scheme = str(action.get("scheme") or "HTTP").lower()
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{action.get('host') or host}:{port}{path}"
    headers = {"User-Agent": "kube-probe/1.32"}
    for header in action.get("httpHeaders") or []:
        headers[header.get("name", "")] = header.get("value", "")
    try:
        async with httpx.AsyncClient(timeout=limit, verify=False, follow_redirects=False) as client:
            response = await client.get(url, headers=headers)
    except httpx.TimeoutException:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except (httpx.HTTPError, OSError) as exc:
        return False, f'Get "{url}": {exc or type(exc).__name__}'
    if 200 <= response.status_code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {response.status_code}"


async def run_tcp(host: str, port: int, *, limit: float) -> tuple[bool, str]:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=limit)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: connect: {exc.strerror or exc}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, ""


async def run_probe(
    probe: dict[str, Any], *, container: dict[str, Any], pod_ip: str, env: dict[str, str], cwd: str | None
) -> tuple[bool, str]:
    limit = float(probe.get("timeoutSeconds") or 1)
    try:
        if probe.get("exec"):
            return await run_exec(list(probe["exec"].get("command") or []), env=env, cwd=cwd, limit=limit)
        if probe.get("httpGet"):
            action = probe["httpGet"]
            port = resolve_port(action.get("port"), container)
            return await run_http(action, host=pod_ip, port=port, limit=limit)
        if probe.get("tcpSocket"):
            action = probe["tcpSocket"]
            port = resolve_port(action.get("port"), container)
            return await run_tcp(action.get("host") or pod_ip, port, limit=limit)
    except ValueError as exc:
        return False, str(exc)
    return True, ""  # a probe with no handler (e.g. grpc) is not run
