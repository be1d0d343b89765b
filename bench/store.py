"""Store benchmark: compare-and-swap writes per second and write→watcher latency,
next to a raw Redis baseline (pipelined HSET+XADD, no Lua, no API) measured in the
same run on the same server, printed as ratios.

    python bench/store.py [--writes 5000] [--concurrency 16]

Starts its own redis-server on a free port and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from shared import codec, redis_conn, redis_server
from shared.keys import Keys
from shared.store import Store

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "labels": {"app": "x"}},
       "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]},
       "status": {"phase": "Pending"}}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def watch_times(url: str, stream: str, expected: int, seen_at: dict[int, float]) -> None:
    """Record when each revision (the entry's ``rv``) reaches a watcher."""
    conn = redis_conn.blocking(url)
    last = "0-0"
    try:
        while len(seen_at) < expected:
            reply = await conn.xread({stream: last}, block=1000, count=1000)
            now = time.perf_counter()
            for _s, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    seen_at[int(fields[b"rv"])] = now
    finally:
        await conn.aclose()


def latencies(sent_at: dict[int, float], seen_at: dict[int, float]) -> list[float]:
    return [seen_at[rv] - t for rv, t in sent_at.items() if rv in seen_at]


async def run_cas(url: str, writes: int, concurrency: int) -> tuple[float, list[float]]:
    redis = redis_conn.pool(url)
    keys = Keys(f"bench{uuid.uuid4().hex[:6]}")
    store = Store(redis, keys)
    names = [f"default/p{i}" for i in range(concurrency)]
    for name in names:
        await store.create("pods", name, POD)
    sent_at: dict[int, float] = {}
    seen_at: dict[int, float] = {}
    per_worker = writes // concurrency
    watcher = asyncio.create_task(watch_times(url, keys.kind("pods").watch, per_worker * concurrency + concurrency,
                                              seen_at))

    async def worker(name: str) -> None:
        current = await store.get("pods", name)
        assert current is not None
        for n in range(per_worker):
            obj = {**POD, "metadata": {**POD["metadata"], "labels": {"n": str(n)}}}
            started = time.perf_counter()
            result = await store.update("pods", name, obj, expected=current["metadata"]["resourceVersion"])
            sent_at[result.revision] = started
            current = result.object

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in names))
    elapsed = time.perf_counter() - start
    await asyncio.wait_for(watcher, 30)
    await redis.aclose()
    return per_worker * concurrency / elapsed, latencies(sent_at, seen_at)


async def run_raw(url: str, writes: int, concurrency: int) -> tuple[float, list[float]]:
    redis = redis_conn.pool(url)
    prefix = f"raw{uuid.uuid4().hex[:6]}"
    stream = f"{prefix}:watch"
    sent_at: dict[int, float] = {}
    seen_at: dict[int, float] = {}
    per_worker = writes // concurrency
    watcher = asyncio.create_task(watch_times(url, stream, per_worker * concurrency, seen_at))
    counter = 0

    async def worker(name: str) -> None:
        nonlocal counter
        for n in range(per_worker):
            obj = {**POD, "metadata": {**POD["metadata"], "labels": {"n": str(n)}}}
            data = codec.pack(obj)
            counter += 1
            sent_at[counter] = time.perf_counter()
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(f"{prefix}:obj", name, data)
                pipe.xadd(stream, {"type": "MODIFIED", "key": name, "rv": counter, "obj": data})
                await pipe.execute()

    start = time.perf_counter()
    await asyncio.gather(*(worker(f"default/p{i}") for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    await asyncio.wait_for(watcher, 30)
    await redis.aclose()
    return per_worker * concurrency / elapsed, latencies(sent_at, seen_at)


def report(label: str, rate: float, seen: list[float]) -> None:
    print(f"{label:<28} {rate:>10.0f} writes/s   watch latency p50 {pct(seen, .5) * 1000:6.2f} ms"
          f"   p99 {pct(seen, .99) * 1000:6.2f} ms   (n={len(seen)})")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    port = redis_server.free_port()
    proc = redis_server.start(port=port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        probe = aioredis.Redis.from_url(url)
        print(f"redis-server {(await probe.info('server'))['redis_version']} on {url}; "
              f"{args.writes} writes, concurrency {args.concurrency}")
        await probe.aclose()
        for concurrency in (1, args.concurrency):
            raw_rate, raw_seen = await run_raw(url, args.writes, concurrency)
            cas_rate, cas_seen = await run_cas(url, args.writes, concurrency)
            report(f"raw HSET+XADD  (c={concurrency})", raw_rate, raw_seen)
            report(f"store CAS      (c={concurrency})", cas_rate, cas_seen)
            print(f"{'ratio store/raw':<28} {cas_rate / raw_rate:>10.2f} x throughput   p50 latency "
                  f"{statistics.median(cas_seen) / statistics.median(raw_seen):.2f} x")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
