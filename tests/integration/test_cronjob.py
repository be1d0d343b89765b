"""The CronJob controller with the Job controller, driven with the real kubectl.

The controller manager runs the CronJob clock 30 times faster (``--cronjob-clock-scale``),
so ``* * * * *`` comes every two seconds; a fake node agent runs the Jobs' pods.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, start_controller_manager

CONTROLLERS = "cronjob,job,garbage_collector"
JOBS = "/apis/batch/v1/namespaces/default/jobs"

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "{schedule}"
  concurrencyPolicy: {policy}
  successfulJobsHistoryLimit: 2
  jobTemplate:
    metadata:
      labels: {{app: hello}}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: hello
            image: busybox:1.36
            command: ["echo", "hi"]
"""


def jobs(http: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = http.get(JOBS).json()["items"]
    return items


def complete(job: dict[str, Any]) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True" for c in (job.get("status") or {}).get("conditions")
               or [])


def test_cronjob_runs_on_schedule_keeps_history_and_cascades(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running" if age < 0.2 else "Succeeded", interval=0.1)
    agent.create_node()
    start_controller_manager(api, "--cronjob-clock-scale", "30", controllers=CONTROLLERS)
    with agent, api.http() as http:
        applied = api.kubectl("apply", "-f", "-", input=CRONJOB.format(schedule="*/1 * * * *", policy="Allow"))
        assert "cronjob.batch/hello created" in applied.stdout
        seen: set[str] = set()

        def enough() -> bool:
            seen.update(j["metadata"]["name"] for j in jobs(http))
            return len(seen) >= 4

        wait_for(enough, timeout=30, message="four scheduled jobs")
        minutes = sorted(int(re.fullmatch(r"hello-(\d+)", name).group(1)) for name in seen)  # type: ignore[union-attr]
        assert minutes == list(range(minutes[0], minutes[0] + len(minutes)))  # one per minute, none twice
        job = next(j for j in jobs(http))
        owner = job["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "CronJob" and owner["name"] == "hello" and owner["controller"] is True
        assert job["metadata"]["labels"]["app"] == "hello"
        # History: at most two finished Jobs are kept.
        wait_for(lambda: len([j for j in jobs(http) if complete(j)]) == 2, timeout=20, message="history limit")
        cj = api.kubectl_json("get", "cj", "hello")
        assert cj["status"]["lastScheduleTime"] and cj["status"].get("lastSuccessfulTime")

        table = api.kubectl("get", "cronjobs").stdout.splitlines()
        assert table[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
        row = table[1].split()
        assert row[:8] == ["hello", "*/1", "*", "*", "*", "*", "<none>", "False"] and row[8] in ("0", "1")

        # kubectl create job --from=cronjob/... makes a Job from the template, owned by the CronJob.
        created = api.kubectl("create", "job", "manual", "--from=cronjob/hello")
        assert "job.batch/manual created" in created.stdout
        manual = wait_for(lambda: next((j for j in jobs(http) if j["metadata"]["name"] == "manual" and complete(j)),
                                       None), timeout=20, message="the manual job completes")
        assert manual["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]

        api.kubectl("patch", "cj", "hello", "-p", '{"spec":{"suspend":true}}')
        assert "True" in api.kubectl("get", "cj", "hello").stdout.splitlines()[1]

        api.kubectl("delete", "cronjob", "hello", "--timeout=30s", timeout=40)
        wait_for(lambda: not jobs(http) and not http.get("/api/v1/namespaces/default/pods").json()["items"],
                 timeout=20, message="jobs and pods deleted with their CronJob")


def test_cronjob_replace_policy(api: Cluster) -> None:
    agent = FakeNodeAgent(api, policy=lambda pod, age: "Running", interval=0.1)  # jobs never finish
    agent.create_node()
    start_controller_manager(api, "--cronjob-clock-scale", "30", controllers=CONTROLLERS)
    with agent, api.http() as http:
        api.kubectl("apply", "-f", "-", input=CRONJOB.format(schedule="* * * * *", policy="Replace"))
        first = wait_for(lambda: [j["metadata"]["name"] for j in jobs(http)], timeout=20, message="a first job")[0]
        # The next run replaces the first one rather than running beside it.
        wait_for(lambda: (names := [j["metadata"]["name"] for j in jobs(http)
                                    if not j["metadata"].get("deletionTimestamp")]) and first not in names,
                 timeout=20, message="the first job replaced")
        active = wait_for(lambda: (api.kubectl_json("get", "cj", "hello").get("status") or {}).get("active"),
                          timeout=10)
        assert len(active) == 1 and active[0]["name"] != first
