"""Server-side printing checked against what kubectl shows for a real cluster."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.apiserver import tables

NOW = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pod(status: dict[str, Any], *, init: int = 0, containers: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": NOW, **meta},
        "spec": {
            "containers": [{"name": f"c{i}"} for i in range(containers)],
            "initContainers": [{"name": f"i{i}"} for i in range(init)],
        },
        "status": status,
    }


def running(ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": ready, "restartCount": restarts, "state": {"running": {}}, **extra}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod({"phase": "Pending"}), "Pending"),
        (pod({"phase": "Running", "containerStatuses": [running()]}), "Running"),
        (
            pod(
                {
                    "phase": "Running",
                    "containerStatuses": [
                        {"name": "c0", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                    ],
                }
            ),
            "CrashLoopBackOff",
        ),
        (
            pod(
                {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                    ],
                }
            ),
            "Completed",
        ),
        (
            pod({"phase": "Failed", "containerStatuses": [{"name": "c0", "state": {"terminated": {"exitCode": 3}}}]}),
            "ExitCode:3",
        ),
        (pod({"phase": "Running", "containerStatuses": [running()]}, deletionTimestamp=NOW), "Terminating"),
        (pod({"phase": "Succeeded"}, deletionTimestamp=NOW), "Succeeded"),
        (
            pod({"phase": "Pending", "initContainerStatuses": [{"name": "i0", "state": {"running": {}}}]}, init=1),
            "Init:0/1",
        ),
        (
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i0", "state": {"terminated": {"exitCode": 0}}},
                        {"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    ],
                },
                init=2,
            ),
            "Init:CrashLoopBackOff",
        ),
        (
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [{"name": "i0", "state": {"terminated": {"exitCode": 2}}}],
                },
                init=1,
            ),
            "Init:ExitCode:2",
        ),
        (
            pod(
                {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        running(),
                        {"name": "c1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    ],
                },
                containers=2,
            ),
            "NotReady",
        ),
    ],
)
def test_pod_status(obj: dict[str, Any], expected: str) -> None:
    assert tables.pod_status(obj) == expected


def test_pod_row_ready_restarts_and_wide_cells() -> None:
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    obj = pod(
        {
            "phase": "Running",
            "podIP": "127.1.0.4",
            "containerStatuses": [
                running(restarts=3, lastState={"terminated": {"exitCode": 1, "finishedAt": finished}}),
                {"name": "c1", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
        },
        containers=2,
    )
    obj["spec"]["nodeName"] = "n1"
    name, ready, status, restarts, _age, ip, node, nominated, gates = tables._pod_row(obj)
    assert (name, ready, status) == ("p", "1/2", "ContainerCreating")
    assert restarts in ("3 (5m ago)", "3 (5m1s ago)", "3 (5m2s ago)")
    assert (ip, node, nominated, gates) == ("127.1.0.4", "n1", "<none>", "<none>")


def test_human_duration_matches_kubectl() -> None:
    cases = {0: "0s", 119: "119s", 125: "2m5s", 600: "10m", 3 * 3600: "3h", 3 * 3600 + 60: "3h1m", 47 * 3600: "47h"}
    cases |= {2 * 86400 + 3600: "2d1h", 30 * 86400: "30d", 800 * 86400: "2y70d", 3000 * 86400: "8y"}
    for seconds, text in cases.items():
        assert tables.human_duration(seconds) == text


def test_node_row() -> None:
    node = {
        "metadata": {"name": "n1", "creationTimestamp": NOW, "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0-redkube"},
        },
    }
    row = tables._node_row(node)
    assert row[:3] == ["n1", "Ready,SchedulingDisabled", "control-plane"]
    assert row[4:7] == ["v1.32.0-redkube", "127.0.0.1", "<none>"]
    assert tables._node_row({"metadata": {"name": "x"}})[1:3] == ["Unknown", "<none>"]


def test_service_endpoints_job_event_rbac_rows() -> None:
    svc = {
        "metadata": {"name": "s"},
        "spec": {"type": "NodePort", "clusterIP": "127.96.0.9", "ports": [{"port": 80, "nodePort": 30080}]},
    }
    assert tables._service_row(svc)[1:5] == ["NodePort", "127.96.0.9", "<none>", "80:30080/TCP"]
    balancer = {"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    assert tables._service_row(balancer)[3] == "<pending>"
    endpoints = {
        "metadata": {"name": "e"},
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
        ],
    }
    assert tables._endpoints_row(endpoints)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    job = {
        "metadata": {"name": "j"},
        "spec": {"completions": 3},
        "status": {
            "succeeded": 3,
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:01:05Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert tables._job_row(job)[1:4] == ["Complete", "3/3", "65s"]
    event = {
        "metadata": {"name": "web.1"},
        "involvedObject": {"kind": "Pod", "name": "web"},
        "reason": "Pulled",
        "type": "Normal",
        "message": " done ",
        "source": {"component": "kubelet", "host": "n1"},
        "count": 4,
        "lastTimestamp": NOW,
    }
    row = tables._event_row(event)
    assert (
        row[1:4] == ["Normal", "Pulled", "pod/web"] and row[5:7] == ["kubelet, n1", "done"] and row[8:] == [4, "web.1"]
    )
    assert [c["name"] for c in tables.columns("events") if c["priority"] == 0] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    binding = {
        "metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "ann"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
    }
    assert tables._binding_row(binding)[1] == "ClusterRole/view"
    assert tables._binding_row(binding)[3:] == ["ann", "", "ns/sa"]
    assert [c["name"] for c in tables.columns("roles")] == ["Name", "Created At"]
