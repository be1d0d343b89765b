"""The Job controller against a real API server, with a fake node agent running the pods."""

from __future__ import annotations

import time
from typing import Any

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, active, owned_by, replay_pods, start_controller_manager

JOBS = "/apis/batch/v1/namespaces/default/jobs"
CONTROLLERS = "job,garbage_collector"


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "busybox", "command": ["true"]}],
                }
            },
            **spec,
        },
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            return cond
    return None


def events_for(api: Cluster, name: str) -> list[dict[str, Any]]:
    with api.http() as http:
        items = http.get("/api/v1/namespaces/default/events",
                         params={"fieldSelector": f"involvedObject.name={name}"}).json()["items"]
    return items


def test_job_completes_with_bounded_parallelism(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running" if age < 0.3 else "Succeeded")
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        created = http.post(JOBS, json=job("pi", completions=5, parallelism=2))
        assert created.status_code == 201, created.text
        uid = created.json()["metadata"]["uid"]
        api.kubectl("wait", "--for=condition=complete", "job/pi", "--timeout=40s", timeout=60)
        done = http.get(f"{JOBS}/pi").json()
    status = done["status"]
    assert status["succeeded"] == 5 and status.get("active", 0) == 0 and status.get("failed", 0) == 0
    assert status["startTime"] and status["completionTime"]
    assert condition(done, "Complete")["reason"] == "CompletionsReached"

    most, created_pods = 0, set()
    for kind, obj, pods in replay_pods(api):
        if owned_by(obj, uid) and kind == "ADDED":
            created_pods.add(obj["metadata"]["name"])
        most = max(most, sum(1 for p in pods.values() if owned_by(p, uid) and active(p)))
    print(f"job pi: {len(created_pods)} pods created, at most {most} active at once")
    assert most == 2  # parallelism 2 reached, never passed
    assert len(created_pods) == 5  # exactly the completions, nothing created twice
    for name in created_pods:
        assert name.startswith("pi-")

    reasons = [e["reason"] for e in events_for(api, "pi")]
    assert reasons.count("SuccessfulCreate") == 5 and "Completed" in reasons
    table = api.kubectl("get", "jobs").stdout
    assert "pi" in table


def test_job_stops_at_backoff_limit(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running" if age < 0.1 else "Failed")
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        created = http.post(JOBS, json=job("flaky", backoffLimit=2))
        uid = created.json()["metadata"]["uid"]
        failed = wait_for(lambda: condition(http.get(f"{JOBS}/flaky").json(), "Failed"), timeout=30,
                          message="job failed")
        assert failed["reason"] == "BackoffLimitExceeded"
        status = http.get(f"{JOBS}/flaky").json()["status"]
        assert status["failed"] == 3 and status.get("active", 0) == 0 and not status.get("succeeded")
        pods = [p for p in http.get("/api/v1/namespaces/default/pods").json()["items"] if owned_by(p, uid)]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)  # no fourth attempt
    assert "BackoffLimitExceeded" in [e["reason"] for e in events_for(api, "flaky")]


def test_job_deadline_then_ttl_deletes_job_and_pods(api: Cluster) -> None:
    agent = FakeNodeAgent(api)  # pods run for ever
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        http.post(JOBS, json=job("slow", parallelism=2, completions=4, activeDeadlineSeconds=2,
                                 ttlSecondsAfterFinished=2))
        wait_for(lambda: http.get(f"{JOBS}/slow").json()["status"].get("active") == 2, message="2 active")
        failed = wait_for(lambda: condition(http.get(f"{JOBS}/slow").json(), "Failed"), timeout=20,
                          message="deadline exceeded")
        assert failed["reason"] == "DeadlineExceeded"
        # Its running pods were deleted when it failed; then the TTL removes the Job itself.
        wait_for(lambda: http.get(f"{JOBS}/slow").status_code == 404, timeout=20, message="job deleted by TTL")
        wait_for(lambda: not http.get("/api/v1/namespaces/default/pods").json()["items"], message="pods gone")


def test_job_suspend_and_resume(api: Cluster) -> None:
    agent = FakeNodeAgent(api)
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        http.post(JOBS, json=job("later", parallelism=3, completions=3, suspend=True))
        wait_for(lambda: condition(http.get(f"{JOBS}/later").json(), "Suspended"), message="suspended")
        assert not http.get("/api/v1/namespaces/default/pods").json()["items"]
        api.kubectl("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
        wait_for(lambda: http.get(f"{JOBS}/later").json()["status"].get("ready") == 3, message="3 ready pods")
        api.kubectl("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":true}}')
        wait_for(lambda: not http.get("/api/v1/namespaces/default/pods").json()["items"], message="pods removed")
        assert http.get(f"{JOBS}/later").json()["status"].get("active", 0) == 0


def test_larger_job_creates_exactly_its_completions(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running" if age < 0.1 else "Succeeded")
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        started = time.monotonic()
        uid = http.post(JOBS, json=job("many", completions=30, parallelism=6)).json()["metadata"]["uid"]
        wait_for(lambda: condition(http.get(f"{JOBS}/many").json(), "Complete"), timeout=60, message="complete")
        took = time.monotonic() - started
    created: set[str] = set()
    most = 0
    for kind, obj, pods in replay_pods(api):
        if kind == "ADDED" and owned_by(obj, uid):
            created.add(obj["metadata"]["name"])
        most = max(most, sum(1 for p in pods.values() if owned_by(p, uid) and active(p)))
    print(f"job of 30 completions, parallelism 6: {took:.1f} s, {len(created)} pods, at most {most} active")
    assert len(created) == 30 and most <= 6


def test_indexed_job_runs_each_index_to_success(api: Cluster) -> None:
    failed_once: set[str] = set()

    def policy(pod: dict[str, Any], age: float) -> str:
        if age < 0.2:
            return "Running"
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        if index == "2" and not failed_once:
            failed_once.add(pod["metadata"]["name"])
            return "Failed"
        return "Succeeded"

    agent = FakeNodeAgent(api, policy=policy)
    agent.create_node()
    start_controller_manager(api, controllers=CONTROLLERS)
    with agent, api.http() as http:
        uid = http.post(JOBS, json=job("ix", completions=4, parallelism=2, completionMode="Indexed")).json()[
            "metadata"]["uid"]
        wait_for(lambda: condition(http.get(f"{JOBS}/ix").json(), "Complete"), timeout=30, message="complete")
        status = http.get(f"{JOBS}/ix").json()["status"]
        pods = [p for p in http.get("/api/v1/namespaces/default/pods").json()["items"] if owned_by(p, uid)]
    assert status["completedIndexes"] == "0-3" and status["succeeded"] == 4 and status["failed"] == 1
    by_index: dict[str, list[str]] = {}
    for pod in pods:
        index = pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
        by_index.setdefault(index, []).append(pod["status"]["phase"])
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["JOB_COMPLETION_INDEX"] == index and pod["metadata"]["name"].startswith(f"ix-{index}-")
    assert sorted(by_index) == ["0", "1", "2", "3"]
    assert sorted(by_index["2"]) == ["Failed", "Succeeded"]  # the failed index was retried
    assert all(phases == ["Succeeded"] for i, phases in by_index.items() if i != "2")
