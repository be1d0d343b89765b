"""Controller benchmark: a 1,000-replica Deployment on hollow nodes, from create to
1,000 available, and the controller manager's reconciles per second.

    python bench/controllers.py [--replicas 1000] [--nodes 50]

Starts its own redis-server, an API server, a scheduler, the controller manager and
``redkube hollow-nodes`` (simulated kubelets), prints figures, stops everything.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from shared import redis_server
from tests.harness import Cluster, wait_for


def reconciles(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(r'^redkube_reconcile_total\{[^}]*\} (\S+)$', text, re.M))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="redkube-bench-"))
    port = redis_server.free_port()
    redis_proc = redis_server.start(port=port)
    cluster = Cluster(f"redis://127.0.0.1:{port}/0", work / "home")
    try:
        cluster.start_apiserver("--max-requests-per-second", "0")
        cluster.start("scheduler", token="scheduler")
        cm_port = redis_server.free_port()
        cluster.start("controller-manager", token="controller-manager", env={"REDKUBE_METRICS_PORT": str(cm_port)})
        cluster.start("hollow-nodes", "--count", str(args.nodes), token="admin")
        with cluster.http() as http:
            wait_for(lambda: len(http.get("/api/v1/nodes").json()["items"]) == args.nodes, timeout=120,
                     message="hollow nodes registered")
            wait_for(lambda: reconciles(cm_port) >= 0, timeout=60, message="controller manager metrics")
            before = reconciles(cm_port)
            deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
                          "spec": {"replicas": args.replicas, "selector": {"matchLabels": {"app": "big"}},
                                   "template": {"metadata": {"labels": {"app": "big"}},
                                                "spec": {"containers": [{"name": "c", "image": "busybox",
                                                                         "command": ["sleep", "3600"]}]}}}}
            started = time.perf_counter()
            assert http.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).status_code == 201
            marks: dict[int, float] = {}

            def available() -> bool:
                status = http.get("/apis/apps/v1/namespaces/default/deployments/big").json().get("status") or {}
                count = status.get("availableReplicas") or 0
                for mark in (100, 500):
                    if count >= mark and mark not in marks:
                        marks[mark] = time.perf_counter() - started
                return count >= args.replicas

            wait_for(available, timeout=900, interval=0.2, message="all replicas available")
            elapsed = time.perf_counter() - started
            done = reconciles(cm_port) - before
        print(f"Deployment of {args.replicas} replicas on {args.nodes} hollow nodes "
              f"(1 API server, 1 scheduler, 1 controller manager)")
        for mark, at in sorted(marks.items()):
            print(f"  {mark:>5} available after {at:6.2f} s")
        print(f"  {args.replicas:>5} available after {elapsed:6.2f} s  ({args.replicas / elapsed:.0f} pods/s end to end)")
        print(f"  reconciles: {done:.0f} in {elapsed:.1f} s = {done / elapsed:.0f}/s")
    finally:
        cluster.stop()
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
