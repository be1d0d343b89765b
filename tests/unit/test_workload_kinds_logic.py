"""Pure rules of the new workload controllers: cron schedules, StatefulSet ordering,
DaemonSet node eligibility."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.controller_manager import daemonset, statefulset
from shared import cron

T0 = datetime(2026, 12, 4, 23, 59, 30, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("* * * * *", datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
        ("7-9/2 * * * *", datetime(2026, 12, 5, 0, 7, tzinfo=UTC)),
        ("30 1,13 * * *", datetime(2026, 12, 5, 1, 30, tzinfo=UTC)),
        ("@hourly", datetime(2026, 12, 5, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime(2026, 12, 6, 0, 0, tzinfo=UTC)),
        ("@monthly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("0 9 * * mon-fri", datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),
        ("0 0 * jan sun", datetime(2027, 1, 3, 0, 0, tzinfo=UTC)),
        ("0 0 13 * 5", datetime(2026, 12, 11, 0, 0, tzinfo=UTC)),  # either day field: Friday the 11th first
        ("0 0 * * 7", datetime(2026, 12, 6, 0, 0, tzinfo=UTC)),  # 7 is Sunday too
    ],
)
def test_next_scheduled_time(schedule: str, expected: datetime) -> None:
    assert cron.parse(schedule).next_after(T0) == expected


def test_time_zone_and_impossible_dates() -> None:
    paris = cron.zone("Europe/Paris")
    assert cron.parse("0 9 * * *").next_after(T0, paris) == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    # Across the spring DST change, 02:30 does not exist in Paris; 03:00 is an hour after 01:00.
    spring = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    hourly = cron.parse("0 * * * *")
    first = hourly.next_after(spring, paris)
    assert first is not None and hourly.next_after(first, paris) == datetime(2027, 3, 28, 2, 0, tzinfo=UTC)
    assert cron.parse("30 2 31 2 *").next_after(T0) is None
    assert cron.zone(None) is UTC


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "*/0 * * * *", "@every 5m", "a * * * *", "5-1 * * * *",
                                 "* * 0 * *", "* * * 13 *", ""])
def test_invalid_schedules(bad: str) -> None:
    with pytest.raises(ValueError):
        cron.parse(bad)
    with pytest.raises(ValueError):
        cron.zone("Mars/Olympus")


def pod(name: str, *, ready: bool = True, deleting: bool = False, revision: str = "web-1",
        phase: str = "Running") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {statefulset.REVISION_LABEL: revision}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase,
                                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def sts(replicas: int, policy: str = "OrderedReady", partition: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "spec": {"replicas": replicas, "podManagementPolicy": policy,
                                                  "updateStrategy": {"type": "RollingUpdate",
                                                                     "rollingUpdate": {"partition": partition}}}}


def test_statefulset_ordered_ready_waits_for_each_pod() -> None:
    assert statefulset.plan(sts(3), {}, revision="web-1").create == [0]
    assert statefulset.plan(sts(3), {0: pod("web-0", ready=False)}, revision="web-1").create == []
    assert statefulset.plan(sts(3), {0: pod("web-0")}, revision="web-1").create == [1]
    assert statefulset.plan(sts(3, "Parallel"), {1: pod("web-1", ready=False)}, revision="web-1").create == [0, 2]


def test_statefulset_scales_down_from_the_top_one_at_a_time() -> None:
    pods = {i: pod(f"web-{i}") for i in range(4)}
    victims = statefulset.plan(sts(1), pods, revision="web-1").delete
    assert [p["metadata"]["name"] for p in victims] == ["web-3"]
    pods[3] = pod("web-3", deleting=True)
    assert statefulset.plan(sts(1), pods, revision="web-1").delete == []  # wait for web-3 to go
    victims = statefulset.plan(sts(1, "Parallel"), pods, revision="web-1").delete
    assert [p["metadata"]["name"] for p in victims] == ["web-2", "web-1"]


def test_statefulset_rolling_update_from_the_highest_ordinal_above_partition() -> None:
    pods = {i: pod(f"web-{i}") for i in range(3)}
    victims = statefulset.plan(sts(3), pods, revision="web-2").delete
    assert [p["metadata"]["name"] for p in victims] == ["web-2"]
    pods[2] = pod("web-2", revision="web-2")
    pods[1] = pod("web-1", revision="web-2")
    assert statefulset.plan(sts(3, partition=1), pods, revision="web-2").delete == []
    pods[1] = pod("web-1", revision="web-2", ready=False)
    assert statefulset.plan(sts(3), pods, revision="web-2").delete == []  # not while a pod is unready
    failed = {0: pod("web-0", phase="Failed")}
    assert [p["metadata"]["name"] for p in statefulset.plan(sts(1), failed, revision="web-1").delete] == ["web-0"]


def node(name: str, *, ready: str = "True", taints: list[dict[str, str]] | None = None,
         labels: dict[str, str] | None = None, unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_daemonset_eligibility() -> None:
    ds = {"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": []}}}}
    spec = daemonset.daemon_pod_spec(ds)
    assert daemonset.should_run(spec, node("a", labels={"disk": "ssd"}))
    assert daemonset.should_run(spec, node("a", labels={"disk": "ssd"}, ready="False"))  # Ready or not
    assert daemonset.should_run(spec, node("a", labels={"disk": "ssd"}, ready="Unknown", unschedulable=True))
    assert not daemonset.should_run(spec, node("a"))
    tainted = node("a", labels={"disk": "ssd"}, taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}])
    assert not daemonset.should_run(spec, tainted)
    spec["tolerations"].append({"key": "gpu", "operator": "Exists"})
    assert daemonset.should_run(spec, tainted)
    assert daemonset.max_unavailable({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "50%"}}}},
                                     5) == 3
