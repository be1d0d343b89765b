"""Endpoints subsets from pods: readiness, port resolution, grouping by port set."""

from __future__ import annotations

from typing import Any

from services.controller_manager.endpoints import desired_subsets, resolve_port


def pod(name: str, ip: str | None, *, ready: bool = True, ports: dict[str, int] | None = None,
        deleting: bool = False, phase: str = "Running", policy: str = "Always") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "spec": {"nodeName": "n1", "restartPolicy": policy, "containers": [
        {"name": "c", "ports": [{"name": k, "containerPort": v} for k, v in (ports or {}).items()]}]},
            "status": status}


def service(*ports: dict[str, Any], publish: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "default"},
            "spec": {"selector": {"app": "x"}, "ports": list(ports), "publishNotReadyAddresses": publish}}


def test_resolve_port_by_number_name_and_default() -> None:
    p = pod("a", "10.0.0.1", ports={"http": 8080})
    assert resolve_port(p, {"port": 80, "targetPort": 9000}) == 9000
    assert resolve_port(p, {"port": 80, "targetPort": "http"}) == 8080
    assert resolve_port(p, {"port": 80, "targetPort": "8081"}) == 8081
    assert resolve_port(p, {"port": 80}) == 80
    assert resolve_port(p, {"port": 80, "targetPort": "grpc"}) is None
    assert resolve_port(p, {"port": 80, "targetPort": "http", "protocol": "UDP"}) is None


def test_subsets_group_addresses_by_the_ports_they_serve() -> None:
    pods = [pod("a", "10.0.0.1", ports={"http": 8080}), pod("b", "10.0.0.2", ports={"http": 8080}),
            pod("c", "10.0.0.3"), pod("d", "10.0.0.4", ports={"http": 9090}, ready=False),
            pod("e", None, ports={"http": 8080}), pod("f", "10.0.0.6", ports={"http": 8080}, deleting=True)]
    subsets = desired_subsets(service({"name": "web", "port": 80, "targetPort": "http"},
                                      {"name": "m", "port": 9100}), pods)
    shape = [([a["ip"] for a in s.get("addresses", [])], [a["ip"] for a in s.get("notReadyAddresses", [])],
              [(p.get("name"), p["port"]) for p in s["ports"]]) for s in subsets]
    assert (["10.0.0.1", "10.0.0.2"], ["10.0.0.6"], [("m", 9100), ("web", 8080)]) in shape
    assert ([], ["10.0.0.4"], [("m", 9100), ("web", 9090)]) in shape
    assert (["10.0.0.3"], [], [("m", 9100)]) in shape
    assert len(shape) == 3  # e has no IP
    address = subsets[0].get("addresses", subsets[0].get("notReadyAddresses"))[0]
    assert address["nodeName"] == "n1" and address["targetRef"]["kind"] == "Pod"


def test_pod_without_the_only_port_is_left_out_and_finished_pods_too() -> None:
    pods = [pod("a", "10.0.0.1"), pod("done", "10.0.0.2", phase="Succeeded", policy="Never"),
            pod("crashed", "10.0.0.3", phase="Failed", policy="Always", ready=False)]
    subsets = desired_subsets(service({"port": 80, "targetPort": "http"}), pods)
    assert subsets == []
    subsets = desired_subsets(service({"port": 80}), pods)
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.1"]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.0.0.3"]


def test_publish_not_ready_and_headless_without_ports() -> None:
    pods = [pod("a", "10.0.0.1", ready=False)]
    assert [a["ip"] for a in desired_subsets(service({"port": 80}, publish=True), pods)[0]["addresses"]] == [
        "10.0.0.1"]
    headless = desired_subsets(service(), pods)
    assert headless == [{"notReadyAddresses": headless[0]["notReadyAddresses"]}]
