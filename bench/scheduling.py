"""Scheduler benchmark: pods bound per second and create→bound latency on many nodes.

    python bench/scheduling.py [--pods 5000] [--nodes 500] [--schedulers 1] [--apiservers 1] [--real-pods 100]

Starts its own redis-server, an API server and the scheduler(s) with the test harness's
helpers, prints figures, and stops everything. Nodes are plain Node objects (allocatable
and Ready, no kubelet), or hollow nodes when ``--hollow`` is given and
``redkube hollow-nodes`` exists. Three measurements:

- backlog: all pods created first, then the scheduler started: pure binding throughput;
- streaming: pods created as fast as the client can while the scheduler runs:
  throughput and create→bound latency (client send time to the watch showing nodeName);
- real: ``--real-pods`` ``sleep`` pods on two real kubelet nodes, create→Running latency
  (skipped when ``services/kubelet/main.py`` is absent or with ``--real-pods 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil

from shared import pki, redis_conn, redis_server
from shared.bus import BusClient
from shared.keys import Keys
from shared.store import Store
from tests.harness import Cluster, Process, wait_for

ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def plain_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "bench": "plain"}},
        "status": {
            "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def bench_pod(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
            **spec,
        },
    }


class Watcher:
    """Reads the pods watch stream; remembers when each pod was first seen meeting a condition."""

    def __init__(self, store: Store, url: str, *, namespace: str, done: Callable[[dict[str, Any]], bool]) -> None:
        self.store, self.url, self.namespace, self.done = store, url, namespace, done
        self.seen: dict[str, float] = {}

    async def run(self, after: int, expected: int, *, limit: float) -> None:
        conn = redis_conn.blocking(self.url)
        deadline = time.perf_counter() + limit
        try:
            while len(self.seen) < expected and time.perf_counter() < deadline:
                events = await self.store.read_events("pods", after, conn=conn, block_ms=500, count=2000)
                now = time.perf_counter()
                for event in events:
                    after = event.revision
                    meta = event.object["metadata"]
                    if meta.get("namespace") == self.namespace and meta["name"] not in self.seen:
                        if event.type != "DELETED" and self.done(event.object):
                            self.seen[meta["name"]] = now
        finally:
            await conn.aclose()


def bound(obj: dict[str, Any]) -> bool:
    return bool(obj["spec"].get("nodeName"))


def running(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("phase") == "Running"


async def create_all(client: BusClient, items: list[dict[str, Any]], plural: str, *, concurrency: int = 64,
                     sent: dict[str, float] | None = None) -> None:
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            item = queue.pop()
            if sent is not None:
                sent[item["metadata"]["name"]] = time.perf_counter()
            await client.create(plural, item, namespace=item["metadata"].get("namespace"))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def start_schedulers(cluster: Cluster, count: int) -> list[Process]:
    made = []
    for index in range(count):
        port = redis_server.free_port()
        process = cluster.start("scheduler", "--metrics-port", str(port), "--log-level", "warning",
                                token="scheduler", name=f"scheduler-{index}")
        process.port = port
        made.append(process)
    for process in made:
        wait_for(lambda p=process: httpx.get(f"http://127.0.0.1:{p.port}/readyz", timeout=2).status_code == 200,
                 timeout=120, message=f"{process.name} ready")
    return made


def report(title: str, figures: dict[str, str]) -> None:
    print(f"\n{title}")
    for name, value in figures.items():
        print(f"  {name:<34} {value}")


async def measure(cluster: Cluster, args: argparse.Namespace) -> None:
    keys = Keys(cluster.prefix)
    redis = redis_conn.pool(cluster.redis_url)
    store = Store(redis, keys)
    client = BusClient(redis, keys, redis_url=cluster.redis_url, token=cluster.token("admin"), timeout=60)
    try:
        for namespace in ("bench-a", "bench-b", "bench-r"):
            await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        started = time.perf_counter()
        if args.hollow:
            cluster.start("hollow-nodes", "--count", str(args.nodes), token="admin", name="hollow")
            wait_for(lambda: len(cluster.redis.hkeys(keys.kind("pods").node_capacity)) >= args.nodes, timeout=300,
                     message="hollow nodes")
        else:
            await create_all(client, [plain_node(f"node-{i:04d}") for i in range(args.nodes)], "nodes")
        report("setup", {"nodes": f"{args.nodes} ({'hollow' if args.hollow else 'plain Node objects'}) "
                                  f"in {time.perf_counter() - started:.1f}s"})

        # 1. Backlog: every pod exists before the scheduler starts.
        pods = [bench_pod(f"a-{i:05d}", "bench-a") for i in range(args.pods)]
        started = time.perf_counter()
        await create_all(client, pods, "pods")
        created_in = time.perf_counter() - started
        after = await store.revision("pods")
        watcher = Watcher(store, cluster.redis_url, namespace="bench-a", done=bound)
        watching = asyncio.create_task(watcher.run(after, args.pods, limit=args.timeout))
        started = time.perf_counter()
        schedulers = await asyncio.to_thread(start_schedulers, cluster, args.schedulers)
        ready_in = time.perf_counter() - started
        await watching
        times = sorted(watcher.seen.values())
        span = times[-1] - times[0] if len(times) > 1 else float("nan")
        report(f"backlog: {args.pods} pending pods, {args.nodes} nodes, {args.schedulers} scheduler(s)", {
            "pods created (64 concurrent) in": f"{created_in:.1f}s ({args.pods / created_in:.0f}/s)",
            "scheduler start → ready": f"{ready_in:.1f}s",
            "pods bound": f"{len(times)}/{args.pods}",
            "first → last bind": f"{span:.2f}s",
            "pods bound per second": f"{(len(times) - 1) / span:.0f}" if len(times) > 1 else "n/a",
            "scheduler start → all bound": f"{times[-1] - started:.2f}s" if times else "n/a",
        })

        # 2. Streaming: created while the scheduler runs; latency from send to seen bound.
        pods = [bench_pod(f"b-{i:05d}", "bench-b") for i in range(args.pods)]
        sent: dict[str, float] = {}
        after = await store.revision("pods")
        watcher = Watcher(store, cluster.redis_url, namespace="bench-b", done=bound)
        watching = asyncio.create_task(watcher.run(after, args.pods, limit=args.timeout))
        started = time.perf_counter()
        await create_all(client, pods, "pods", sent=sent, concurrency=args.create_concurrency)
        created_in = time.perf_counter() - started
        await watching
        latencies = [watcher.seen[n] - sent[n] for n in watcher.seen]
        last = max(watcher.seen.values()) if watcher.seen else started
        report(f"streaming: {args.pods} pods created ({args.create_concurrency} at a time) while "
               f"{args.schedulers} scheduler(s) run", {
            "pods created in": f"{created_in:.1f}s ({args.pods / created_in:.0f}/s)",
            "pods bound": f"{len(watcher.seen)}/{args.pods}",
            "first create → last bound": f"{last - started:.2f}s",
            "pods bound per second": f"{len(watcher.seen) / (last - started):.0f}",
            "create→bound p50": f"{pct(latencies, 0.50) * 1000:.0f} ms",
            "create→bound p99": f"{pct(latencies, 0.99) * 1000:.0f} ms",
        })
        for process in schedulers:
            metrics = (await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{process.port}/metrics", timeout=5)).text
            binds = [line for line in metrics.splitlines() if line.startswith("redkube_scheduler_binds_total")]
            report(f"{process.name} bindings", {line.split("{")[1].split("}")[0]: line.rsplit(" ", 1)[1]
                                                for line in binds})

        cpu = {}
        for process in cluster.processes:
            if process.alive():
                times = psutil.Process(process.popen.pid).cpu_times()
                cpu[process.name] = f"{times.user + times.system:.1f}s"
        report("CPU used so far, per process", cpu)

        # 3. Real pods on real kubelets.
        if args.real_pods and args.kubelets:
            await real_pods(cluster, store, client, args)
        elif args.real_pods:
            print("\nreal: skipped (services/kubelet/main.py not found)")
    finally:
        await client.close()
        await redis.aclose()


async def real_pods(cluster: Cluster, store: Store, client: BusClient, args: argparse.Namespace) -> None:
    names = ["kubelet-1", "kubelet-2"]
    for index, name in enumerate(names, start=1):
        cluster.start("kubelet", "--node", name, "--node-ip", f"127.10.{index}.1", "--pod-cidr",
                      f"127.11.{index}.0/24", "--log-level", "warning", token=f"node-{name}", name=name)

    def nodes_ready() -> bool:
        for name in names:
            obj = cluster.http().get(f"/api/v1/nodes/{name}")
            if obj.status_code != 200:
                return False
            conditions = (obj.json().get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return False
        return True

    await asyncio.to_thread(wait_for, nodes_ready, timeout=60, message="kubelet nodes Ready")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": names}]}]}}}
    pods = [bench_pod(f"r-{i:03d}", "bench-r", affinity=affinity, terminationGracePeriodSeconds=1)
            for i in range(args.real_pods)]
    for item in pods:
        item["spec"]["containers"][0]["resources"]["requests"] = {"cpu": "10m", "memory": "8Mi"}
    sent: dict[str, float] = {}
    after = await store.revision("pods")
    watcher = Watcher(store, cluster.redis_url, namespace="bench-r", done=running)
    binds = Watcher(store, cluster.redis_url, namespace="bench-r", done=bound)
    watching = asyncio.gather(watcher.run(after, args.real_pods, limit=args.timeout),
                              binds.run(after, args.real_pods, limit=args.timeout))
    await create_all(client, pods, "pods", concurrency=16, sent=sent)
    await watching
    latencies = [watcher.seen[n] - sent[n] for n in watcher.seen]
    bind_latencies = [binds.seen[n] - sent[n] for n in binds.seen]
    report(f"real: {args.real_pods} sleep pods on 2 kubelet nodes", {
        "pods Running": f"{len(watcher.seen)}/{args.real_pods}",
        "create→bound p50": f"{pct(bind_latencies, 0.50) * 1000:.0f} ms",
        "create→bound p99": f"{pct(bind_latencies, 0.99) * 1000:.0f} ms",
        "create→Running p50": f"{pct(latencies, 0.50) * 1000:.0f} ms",
        "create→Running p99": f"{pct(latencies, 0.99) * 1000:.0f} ms",
    })
    # Containers outlive their kubelet (as with containerd's shims): stop them through the API.
    await asyncio.gather(*(client.delete("pods", item["metadata"]["name"], namespace="bench-r") for item in pods))
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        left, _ = await store.list("pods", namespace="bench-r")
        if not left:
            break
        await asyncio.sleep(0.5)
    else:
        print(f"  warning: {len(left)} real pods still not gone; their processes may outlive the benchmark")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--schedulers", type=int, default=1)
    parser.add_argument("--apiservers", type=int, default=1)
    parser.add_argument("--real-pods", type=int, default=100)
    parser.add_argument("--hollow", action="store_true", help="use `redkube hollow-nodes` instead of plain Nodes")
    parser.add_argument("--create-concurrency", type=int, default=64, help="concurrent creates while streaming")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()
    args.kubelets = (ROOT / "services" / "kubelet" / "main.py").exists()
    if args.hollow and importlib.util.find_spec("services.kubelet.hollow") is None:
        print("--hollow: services/kubelet/hollow.py not found; using plain Node objects")
        args.hollow = False
    tmp = Path(tempfile.mkdtemp(prefix="redkube-bench-"))
    port = redis_server.free_port()
    redis_proc = redis_server.start(port=port, log_file=tmp / "redis.log")
    cluster = Cluster(f"redis://127.0.0.1:{port}/0", tmp / "home")
    try:
        for name in ("kubelet-1", "kubelet-2"):
            pki.ensure_node_token(cluster.identity, name)
        for _ in range(args.apiservers):
            cluster.start_apiserver("--log-level", "warning", "--watch-cap", "100000")
        asyncio.run(measure(cluster, args))
    finally:
        cluster.stop()
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        if args.keep:
            print(f"\nlogs kept in {tmp / 'home' / 'logs'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
