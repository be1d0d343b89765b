"""``redkube nodes``: a top-like summary of each node's pods and requested resources.

Requests are summed from the pods bound to each node that have not finished, the
way the scheduler counts them (init containers count at their maximum), against the
node's allocatable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services.redkube.cli_client import Client, resolve
from services.redkube.cli_printers import layout
from shared import quantity

FINISHED = ("Succeeded", "Failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-l", "--selector", help="only nodes with these labels")


def pod_requests(spec: dict[str, Any]) -> tuple[int, int]:
    """(cpu milli, memory bytes) a pod asks for."""

    def one(container: dict[str, Any]) -> tuple[int, int]:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return (
            quantity.milli(asked["cpu"]) if "cpu" in asked else 0,
            quantity.whole(asked["memory"]) if "memory" in asked else 0,
        )

    pairs = [one(c) for c in spec.get("containers") or []]
    cpu, mem = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    for init in spec.get("initContainers") or []:
        icpu, imem = one(init)
        cpu, mem = max(cpu, icpu), max(mem, imem)
    return cpu, mem


def _memory(value: int) -> str:
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            return f"{value / size:.0f}{unit}" if value % size == 0 else f"{value / size:.1f}{unit}"
    return str(value)


def _percent(used: int, total: int) -> str:
    return f"{used * 100 // total}%" if total else "-"


def _status(node: dict[str, Any]) -> str:
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    text = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def summary(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> str:
    usage: dict[str, list[int]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in FINISHED:
            continue
        cpu, mem = pod_requests(pod.get("spec") or {})
        entry = usage.setdefault(node, [0, 0, 0])
        entry[0] += 1
        entry[1] += cpu
        entry[2] += mem
    rows = [
        ["NODE", "STATUS", "PODS", "CPU(requested/allocatable)", "CPU%", "MEMORY(requested/allocatable)", "MEMORY%"]
    ]
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        status = node.get("status") or {}
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        count, cpu, mem = usage.get(name, [0, 0, 0])
        cpu_total = quantity.milli(allocatable.get("cpu", 0))
        mem_total = quantity.whole(allocatable.get("memory", 0))
        rows.append(
            [
                name,
                _status(node),
                f"{count}/{allocatable.get('pods', '-')}",
                f"{cpu}m/{cpu_total}m",
                _percent(cpu, cpu_total),
                f"{_memory(mem)}/{_memory(mem_total)}",
                _percent(mem, mem_total),
            ]
        )
    return layout(rows)


def run(args: argparse.Namespace, client: Client) -> int:
    params = {"labelSelector": args.selector} if args.selector else None
    nodes = client.list(resolve("nodes"), None, params=params)
    if not nodes:
        print("No resources found.", file=sys.stderr)
        return 0
    pods = client.list(resolve("pods"), None)
    sys.stdout.write(summary(nodes, pods))
    return 0
