"""A container's environment and command line, as the kubelet builds them.

Service links (``<NAME>_SERVICE_HOST`` ...) for Services existing when the pod starts,
then the container's ``env`` in order (``value`` with ``$(VAR)`` expansion, or
``valueFrom.fieldRef``), and ``POD_IP``; ``command``/``args`` are expanded with the
result. ``$$`` is a literal ``$`` and an unknown ``$(VAR)`` is left as written, as in
Kubernetes.
"""

from __future__ import annotations

import re
from typing import Any

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(replace, text)


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """The docker-link style variables Kubernetes sets for each Service with a ClusterIP."""
    env: dict[str, str] = {}
    for service in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = service.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port.get("port"))
        first = ports[0]
        env[f"{name}_PORT"] = f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first.get('port')}"
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            prefix = f"{name}_PORT_{port.get('port')}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{ip}:{port.get('port')}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(port.get("port"))
            env[f"{prefix}_ADDR"] = ip
    return env


def field_ref(pod: dict[str, Any], path: str, *, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip,
        "status.hostIP": host_ip,
        "status.podIPs": pod_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    return ""


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    services: list[dict[str, Any]],
    pod_ip: str,
    host_ip: str,
    base: dict[str, str],
) -> dict[str, str]:
    env = dict(base)
    env["HOSTNAME"] = (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"]
    if (pod.get("spec") or {}).get("enableServiceLinks", True) is not False:
        env.update(service_env(services))
    env["POD_IP"] = pod_ip
    for var in container.get("env") or []:
        name = var.get("name")
        if not name:
            continue
        source = (var.get("valueFrom") or {}).get("fieldRef")
        if source:
            env[name] = field_ref(pod, source.get("fieldPath", ""), pod_ip=pod_ip, host_ip=host_ip)
        elif var.get("valueFrom"):
            env[name] = ""  # configMap/secret/resource references: not served by redkube
        else:
            env[name] = expand(str(var.get("value") or ""), env)
    return env


def container_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """``command`` + ``args`` expanded; with no command the args run as the program."""
    command = [expand(str(part), env) for part in container.get("command") or []]
    args = [expand(str(part), env) for part in container.get("args") or []]
    return command + args
