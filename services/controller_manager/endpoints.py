"""The Endpoints controller: for each Service with a selector, the addresses behind it.

As kube-controller-manager's endpoints controller: an Endpoints object of the
Service's name lists the matching pods that have an IP, ready ones in ``addresses``
and the others in ``notReadyAddresses`` (``publishNotReadyAddresses`` puts all in
``addresses``). Each service port is resolved per pod, by number or by the name of a
container port; a pod lacking a named port is left out of that port's subset, so
addresses are grouped by the set of ports they serve (Kubernetes' RepackSubsets).
Pods being deleted are listed as not ready (Kubernetes' Endpoints controller drops
them; listing them not-ready keeps them out of traffic just the same and shows what
is draining). Finished pods are left out. The object is written only when it
changes, and deleted when the Service goes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import structlog

from services.controller_manager.context import Context, Controller
from shared import selectors
from shared.bus import ApiClientError, BusClient
from shared.informer import Informer, key_of
from shared.workqueue import WorkQueue

Obj = dict[str, Any]


def log() -> structlog.typing.FilteringBoundLogger:
    """This controller's logger, bound when used (logging is configured after import)."""
    return structlog.get_logger().bind(component="controller-manager", controller="endpoints")  # type: ignore[no-any-return]


@dataclass
class Caches:
    services: Informer
    pods: Informer
    endpoints: Informer


def _ready(pod: Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


def _serves(pod: Obj) -> bool:
    """Whether a pod belongs in Endpoints at all (Kubernetes' ShouldPodBeInEndpoints)."""
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    if not status.get("podIP"):
        return False
    phase = status.get("phase")
    policy = spec.get("restartPolicy", "Always")
    if phase == "Failed" and policy == "Never":
        return False
    return not (phase == "Succeeded" and policy in ("Never", "OnFailure"))


def resolve_port(pod: Obj, port: Obj) -> int | None:
    """The pod's port for a service port: targetPort by number, or by container port name."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str):
        if target.isdigit():
            return int(target)
        protocol = port.get("protocol", "TCP")
        for container in (pod.get("spec") or {}).get("containers") or []:
            for cport in container.get("ports") or []:
                if cport.get("name") == target and cport.get("protocol", "TCP") == protocol:
                    return int(cport["containerPort"])
    return None


def _address(pod: Obj) -> Obj:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    address: Obj = {
        "ip": pod["status"]["podIP"],
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")},
    }
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    return address


def desired_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The subsets for ``service`` given the pods its selector matches, in a stable order."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    ports = spec.get("ports") or []
    # address (ip, ready) -> the endpoint ports it serves; grouped by port set afterwards.
    served: dict[tuple[str, str], tuple[Obj, bool, set[tuple[str, int, str]]]] = {}
    for pod in pods:
        if not _serves(pod):
            continue
        ready = publish or _ready(pod)
        address = _address(pod)
        entry = served.setdefault((address["ip"], pod["metadata"]["name"]), (address, ready, set()))
        for port in ports:
            number = resolve_port(pod, port)
            if number is not None:
                entry[2].add((port.get("name") or "", number, port.get("protocol", "TCP")))
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for address, ready, port_set in served.values():
        if ports and not port_set:
            continue
        ready_list, not_ready = groups.setdefault(tuple(sorted(port_set)), ([], []))
        (ready_list if ready else not_ready).append(address)
    subsets = []
    for port_tuple, (ready_list, not_ready) in sorted(groups.items()):
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = sorted(ready_list, key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if port_tuple:
            subset["ports"] = [
                {**({"name": name} if name else {}), "port": number, "protocol": protocol}
                for name, number, protocol in port_tuple
            ]
        subsets.append(subset)
    return subsets


def _same(current: Obj, subsets: list[Obj], labels: dict[str, str]) -> bool:
    def norm(items: list[Obj] | None) -> list[Obj]:
        out = []
        for subset in items or []:
            ports = sorted(
                ({"protocol": "TCP", **p} for p in subset.get("ports") or []),
                key=lambda p: (p.get("name", ""), p["port"], p["protocol"]),
            )
            out.append({**subset, "ports": ports} if ports else {k: v for k, v in subset.items() if k != "ports"})
        return out

    meta = current.get("metadata") or {}
    return norm(current.get("subsets")) == norm(subsets) and (meta.get("labels") or {}) == labels


async def reconcile(key: str, *, cache: Caches, client: BusClient) -> None:
    namespace, _, name = key.partition("/")
    service = cache.services.get(key)
    current = cache.endpoints.get(key)
    if service is None or service["metadata"].get("deletionTimestamp"):
        if current is not None and service is None:
            try:
                await client.delete("endpoints", name, namespace=namespace)
            except ApiClientError as exc:
                if exc.code != 404:
                    raise
        return
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return  # a Service without a selector has its Endpoints managed by someone else
    matcher = selectors.from_label_selector({"matchLabels": selector})
    pods = cache.pods.list(namespace=namespace, selector=matcher)
    subsets = desired_subsets(service, pods)
    labels = dict(service["metadata"].get("labels") or {})
    if current is not None and _same(current, subsets, labels):
        return
    body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
                 "subsets": subsets}
    if labels:
        body["metadata"]["labels"] = labels
    if current is None:
        try:
            await client.create("endpoints", body, namespace=namespace)
        except ApiClientError as exc:
            if exc.code != 409:
                raise
            # Made meanwhile (or the cache lags): the next run sees it and updates.
            raise RuntimeError(f"endpoints {key} already exist; retrying as an update") from exc
        return
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    for keep in ("annotations", "ownerReferences"):
        if current["metadata"].get(keep):
            body["metadata"][keep] = current["metadata"][keep]
    await client.update("endpoints", body)


def setup(ctx: Context) -> Controller:
    queue = WorkQueue()
    services, pods, endpoints = ctx.informer("services"), ctx.informer("pods"), ctx.informer("endpoints")

    def on_service(kind: str, obj: Obj, old: Obj | None) -> None:
        queue.add(key_of(obj))

    def on_endpoints(kind: str, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        # Leftovers of Services deleted while no controller ran are found in the first list.
        if kind == "DELETED" or services.get(key) is not None or not endpoints.synced.is_set():
            queue.add(key)

    def on_pod(kind: str, pod: Obj, old: Obj | None) -> None:
        namespace = (pod.get("metadata") or {}).get("namespace")
        label_sets = [(pod.get("metadata") or {}).get("labels") or {}]
        if old is not None:
            label_sets.append((old.get("metadata") or {}).get("labels") or {})
        for service in services.list(namespace=namespace):
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue
            if any(all(labels.get(k) == v for k, v in selector.items()) for labels in label_sets):
                queue.add(key_of(service))

    services.add_handler(on_service)
    endpoints.add_handler(on_endpoints)
    pods.add_handler(on_pod)
    bound = functools.partial(reconcile, cache=Caches(services, pods, endpoints), client=ctx.client)
    return Controller(name="endpoints", reconcile=bound, queue=queue, primary="services",
                      workers=getattr(ctx.settings, "workers", 4))
