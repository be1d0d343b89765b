"""Scaling benchmark: API server throughput with 1, 2 and 4 replicas, in one run.

    python bench/scaling.py [--requests 3000] [--concurrency 64]

For each replica count it starts that many API server processes on one request
stream (and one HTTPS address, SO_REUSEPORT), then measures creates per second over
the bus and over HTTPS, and prints a table with the speed-up over one replica and
where the time went (CPU of the API servers vs Redis). On a 2-core machine the curve
flattens past 2 replicas: the API servers and Redis share the same two cores.

The scheduler's scaling is measured by ``bench/scheduling.py --schedulers N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil

from shared import redis_conn, redis_server
from shared.bus import BusClient
from tests.harness import Cluster


def pod(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def bus_rate(cluster: Cluster, requests: int, concurrency: int) -> float:
    redis = redis_conn.pool(cluster.redis_url)
    client = BusClient(redis, cluster.keys, redis_url=cluster.redis_url, token=cluster.token(), timeout=60)
    await client.start()
    semaphore = asyncio.Semaphore(concurrency)
    run = uuid.uuid4().hex[:6]

    async def one(n: int) -> None:
        async with semaphore:
            await client.create("pods", pod(f"b{run}-{n}"), namespace="default")

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(requests)))
    elapsed = time.perf_counter() - start
    await client.close()
    await redis.aclose()
    return requests / elapsed


async def http_rate(cluster: Cluster, requests: int, concurrency: int) -> float:
    run = uuid.uuid4().hex[:6]
    clients = [httpx.AsyncClient(base_url=cluster.server, verify=cluster.ssl_context(), timeout=60,
                                 headers={"Authorization": f"Bearer {cluster.token('scheduler')}"})
               for _ in range(concurrency)]
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for n in counter:
            response = await client.post("/api/v1/namespaces/default/pods", content=json.dumps(pod(f"h{run}-{n}")),
                                         headers={"Content-Type": "application/json"})
            assert response.status_code == 201, response.text

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - start
    for client in clients:
        await client.aclose()
    return requests / elapsed


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--replicas", default="1,2,4")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="redkube-bench-"))
    port = redis_server.free_port()
    redis_proc = redis_server.start(port=port)
    url = f"redis://127.0.0.1:{port}/0"
    rows = []
    try:
        for replicas in (int(r) for r in args.replicas.split(",")):
            cluster = Cluster(url, work / f"r{replicas}")
            api_port = redis_server.free_port()
            for index in range(replicas):
                cluster.start_apiserver("--max-requests-per-second", "0", port=api_port,
                                        consumer=f"api-{index}")
            pids = [p.popen.pid for p in cluster.processes] + [redis_proc.pid]
            before = [cpu_seconds(pids[:-1]), cpu_seconds(pids[-1:])]
            started = time.perf_counter()
            bus = asyncio.run(bus_rate(cluster, args.requests, args.concurrency))
            https = asyncio.run(http_rate(cluster, args.requests, args.concurrency))
            wall = time.perf_counter() - started
            api_cpu = (cpu_seconds(pids[:-1]) - before[0]) / wall
            redis_cpu = (cpu_seconds(pids[-1:]) - before[1]) / wall
            rows.append((replicas, bus, https, api_cpu, redis_cpu))
            cluster.stop()
    finally:
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    base_bus, base_http = rows[0][1], rows[0][2]
    print(f"API server scaling: {args.requests} creates per transport, concurrency {args.concurrency}, "
          f"{psutil.cpu_count()} cores")
    print(f"{'replicas':>8} {'bus req/s':>10} {'speed-up':>9} {'https req/s':>12} {'speed-up':>9} "
          f"{'API CPU (cores)':>16} {'Redis CPU (cores)':>18}")
    for replicas, bus, https, api_cpu, redis_cpu in rows:
        print(f"{replicas:>8} {bus:>10.0f} {bus / base_bus:>8.2f}x {https:>12.0f} {https / base_http:>8.2f}x "
              f"{api_cpu:>16.2f} {redis_cpu:>18.2f}")


if __name__ == "__main__":
    main()
