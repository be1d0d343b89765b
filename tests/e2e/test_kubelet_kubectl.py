"""The real kubectl against pods a real kubelet runs: get, describe, logs, logs -f, --previous."""

from __future__ import annotations

import subprocess

from tests.harness import Cluster, wait_for
from tests.support_kubelet import PY

COUNTER = f"""
apiVersion: v1
kind: Pod
metadata:
  name: counter
spec:
  nodeName: n1
  restartPolicy: Never
  containers:
  - name: count
    image: busybox
    command: ["{PY}", "-u", "-c", "import time\\nfor i in range(12):\\n print('line', i)\\n time.sleep(0.25)\\n"]
"""

RESTARTER = f"""
apiVersion: v1
kind: Pod
metadata:
  name: restarter
spec:
  nodeName: n1
  containers:
  - name: app
    image: busybox:1.36
    command: ["{PY}", "-u", "-c", "import os, time\\nprint('run at', time.time()); time.sleep(1); raise SystemExit(1)"]
"""


def test_logs_follow_until_the_container_ends(node: Cluster) -> None:
    node.kubectl("apply", "-f", "-", input=COUNTER)
    wait_for(lambda: "line 0" in node.kubectl("logs", "counter", check=False).stdout, message="first line")
    follow = subprocess.run(
        ["kubectl", "--kubeconfig", str(node.identity.kubeconfig), "--cache-dir", str(node.cache_dir),
         "logs", "-f", "counter"],
        capture_output=True, text=True, timeout=30,
    )
    assert follow.returncode == 0, follow.stderr
    assert [line for line in follow.stdout.splitlines()] == [f"line {i}" for i in range(12)]
    wait_for(lambda: "Completed" in node.kubectl("get", "pod", "counter").stdout, message="Completed")
    assert node.kubectl("logs", "counter", "--tail", "2").stdout.splitlines() == ["line 10", "line 11"]


def test_get_describe_and_previous_logs(node: Cluster) -> None:
    node.kubectl("apply", "-f", "-", input=RESTARTER)

    def restarted() -> bool:
        row = node.kubectl("get", "pod", "restarter", "--no-headers").stdout.split()
        return len(row) >= 4 and row[3].isdigit() and int(row[3]) >= 1

    wait_for(restarted, timeout=30, message="RESTARTS >= 1")
    previous = wait_for(lambda: node.kubectl("logs", "restarter", "--previous", check=False).stdout,
                        message="--previous")
    assert previous.startswith("run at")
    current = wait_for(lambda: node.kubectl("logs", "restarter", check=False).stdout, message="current log")
    assert current.startswith("run at") and current != previous
    described = node.kubectl("describe", "pod", "restarter").stdout
    for expected in ("Node:", "n1/127.10.201.1", "IP:", "127.11.201.", "Last State:", "Terminated",
                     "Exit Code:", "Restart Count:", "Started", "Created", "Pulled"):
        assert expected in described, expected
    wide = node.kubectl("get", "pods", "-o", "wide").stdout
    assert "127.11.201." in wide and "n1" in wide
    missing = node.kubectl("logs", "restarter", "-c", "nope", check=False)
    assert missing.returncode != 0
