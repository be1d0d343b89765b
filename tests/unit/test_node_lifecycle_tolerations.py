"""Which pods tolerate the unreachable taint, and for how long."""

from __future__ import annotations

from typing import Any

from services.controller_manager.node_lifecycle import UNREACHABLE, _unknown_conditions, tolerates

TAINT = {"key": UNREACHABLE, "effect": "NoExecute"}


def pod(*tolerations: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"tolerations": list(tolerations)}}


def test_tolerations() -> None:
    assert tolerates(pod(), TAINT) == (False, None)
    assert tolerates(pod({"operator": "Exists"}), TAINT) == (True, None)
    assert tolerates(pod({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": 30}), TAINT) == (True, 30.0)
    assert tolerates(pod({"key": UNREACHABLE, "effect": "NoExecute"}), TAINT) == (True, None)  # Equal, empty value
    assert tolerates(pod({"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}), TAINT) == (False, None)
    assert tolerates(pod({"key": "other", "operator": "Exists"}), TAINT) == (False, None)
    assert tolerates(pod({"key": UNREACHABLE, "value": "x", "effect": "NoExecute"}), TAINT) == (False, None)
    both = pod({"operator": "Exists", "tolerationSeconds": 50}, {"key": UNREACHABLE, "operator": "Exists",
                                                                 "tolerationSeconds": 20})
    assert tolerates(both, TAINT) == (True, 20.0)


def test_unknown_conditions_keep_heartbeat_and_add_missing_ready() -> None:
    node = {"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "t0", "lastTransitionTime": "t0"},
        {"type": "MemoryPressure", "status": "False"}, {"type": "Custom", "status": "True"}]}}
    out = {c["type"]: c for c in _unknown_conditions(node, "t1")}
    assert out["Ready"]["status"] == "Unknown" and out["Ready"]["reason"] == "NodeStatusUnknown"
    assert out["Ready"]["lastHeartbeatTime"] == "t0" and out["Ready"]["lastTransitionTime"] == "t1"
    assert out["MemoryPressure"]["status"] == "Unknown" and out["Custom"]["status"] == "True"
    never = _unknown_conditions({"status": {}}, "t1")
    assert never[0]["reason"] == "NodeStatusNeverUpdated"


def test_only_the_kubelet_signs_of_life_count() -> None:
    from services.controller_manager.node_lifecycle import Health, _observe

    health: dict[str, Health] = {}
    node = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t0"}]}}
    first = _observe(health, "n", node, {"spec": {"renewTime": "r0"}}).seen_at
    assert _observe(health, "n", node, {"spec": {"renewTime": "r0"}}).seen_at == first
    # This controller's own Ready=Unknown write is no sign of life.
    unknown = {"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                                          "lastHeartbeatTime": "t0"}]}}
    assert _observe(health, "n", unknown, {"spec": {"renewTime": "r0"}}).seen_at == first
    assert _observe(health, "n", unknown, {"spec": {"renewTime": "r1"}}).seen_at > first
    later = _observe(health, "n", unknown, {"spec": {"renewTime": "r1"}}).seen_at
    node["status"]["conditions"][0]["lastHeartbeatTime"] = "t1"
    assert _observe(health, "n", node, {"spec": {"renewTime": "r1"}}).seen_at > later
