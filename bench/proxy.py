"""Proxy benchmark: requests/s, latency and bulk throughput through a Service's ClusterIP
next to a direct connection to the same backends, measured in one run, printed as ratios.

    python bench/proxy.py [--seconds 6] [--rounds 6] [--concurrency 16] [--bulk-mb 200]

Starts its own redis-server, API server and ``redkube proxy`` (real processes, as the
tests do), three backends in a subprocess (asyncio, one loop), creates a Service and its
Endpoints, then measures from this process:

- ``serial``: one request at a time on one kept-alive connection (the added latency);
- ``keepalive``: ``--concurrency`` kept-alive connections, request/response ping-pong;
- ``connect``: a new connection per request (how most Service traffic arrives);
- ``bulk``: one connection downloading ``--bulk-mb`` MB (throughput in MB/s).

The machine's cores are shared by the load generator, the proxy and the backends, so
the absolute figures are low; the ratio is what says what the proxy costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
CHUNK = b"x" * (256 * 1024)


# --- the backends (run in a subprocess: ``bench/proxy.py --serve IP:PORT ...``) -------------


class BackendProtocol(asyncio.Protocol):
    """Answers each request (ending in a blank line) with a tiny response; ``BULK n`` streams n bytes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.remaining = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            request, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if request.startswith(b"BULK "):
                self.remaining = int(request.split()[1])
                self._stream()
            else:
                self.transport.write(RESPONSE)

    def _stream(self) -> None:
        assert self.transport is not None
        while self.remaining > 0 and self.transport.get_write_buffer_size() < 4 * len(CHUNK):
            piece = CHUNK if self.remaining >= len(CHUNK) else CHUNK[: self.remaining]
            self.transport.write(piece)
            self.remaining -= len(piece)
        if self.remaining <= 0:
            # Not close() here: called from resume_writing with the buffer empty, Python 3.11's
            # transport would report connection_lost twice.
            asyncio.get_running_loop().call_soon(self.transport.close)

    def resume_writing(self) -> None:
        if self.remaining > 0:
            self._stream()

    def pause_writing(self) -> None:
        pass


async def serve(addresses: list[str]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for address in addresses:
        ip, port = address.rsplit(":", 1)
        servers.append(await loop.create_server(BackendProtocol, ip, int(port), backlog=4096))
    print("ready", flush=True)
    await asyncio.Event().wait()


# --- the load generator --------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def read_response(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(6)


async def keepalive(targets: list[tuple[str, int]], *, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        reader, writer = await asyncio.open_connection(*targets[index % len(targets)])
        try:
            while (now := time.perf_counter()) < deadline:
                writer.write(REQUEST)
                await read_response(reader)
                latencies.append(time.perf_counter() - now)
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return summary(latencies, time.perf_counter() - started)


async def per_connection(targets: list[tuple[str, int]], *, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        n = index
        while (now := time.perf_counter()) < deadline:
            n += 1
            try:
                reader, writer = await asyncio.open_connection(*targets[n % len(targets)])
                writer.write(REQUEST)
                await read_response(reader)
                latencies.append(time.perf_counter() - now)
                writer.close()
                await writer.wait_closed()
            except (OSError, asyncio.IncompleteReadError):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result = summary(latencies, time.perf_counter() - started)
    result["errors"] = errors
    return result


async def bulk(target: tuple[str, int], *, megabytes: int) -> dict[str, Any]:
    size = megabytes * 1024 * 1024
    reader, writer = await asyncio.open_connection(*target, limit=1 << 20)
    started = time.perf_counter()
    writer.write(f"BULK {size}\r\n\r\n".encode())
    received = 0
    while chunk := await reader.read(1 << 20):
        received += len(chunk)
    elapsed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    return {"MB/s": round(received / elapsed / 1e6, 1), "bytes": received}


def summary(latencies: list[float], elapsed: float) -> dict[str, Any]:
    return {
        "req/s": round(len(latencies) / elapsed),
        "p50_ms": round(pct(latencies, 0.5) * 1000, 3),
        "p99_ms": round(pct(latencies, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else float("nan"),
        "requests": len(latencies),
    }


# --- setting up the cluster ------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="per mode and side, split over the rounds")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bulk-mb", type=int, default=200)
    parser.add_argument("--serve", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0

    from tests.harness import Cluster, start_redis, wait_for  # the tests' process harness, reused
    from tests.support_proxy import create_service, set_endpoints, start_proxy

    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        redis_url, redis_proc = start_redis(Path(tmp))
        cluster = Cluster(redis_url, Path(tmp) / "home")
        block = f"127.{random.randrange(140, 250)}.{random.randrange(1, 250)}"
        port = random.randrange(20000, 29000)
        addresses = [f"{block}.{i}:8080" for i in (1, 2, 3)]
        backend = subprocess.Popen([sys.executable, __file__, "--serve", *addresses], stdout=subprocess.PIPE,
                                   cwd=ROOT)
        try:
            assert backend.stdout is not None and backend.stdout.readline().strip() == b"ready"
            cluster.start_apiserver()
            proxy, _ = start_proxy(cluster, "bench", f"{block}.200")
            proxy_cpu = psutil.Process(proxy.popen.pid)
            with cluster.http() as http:
                service = create_service(http, "web", port=port)
                set_endpoints(http, "web", ready=[a.split(":")[0] for a in addresses], port=8080)
            cluster_ip = service["spec"]["clusterIP"]

            def serving() -> bool:
                return asyncio.run(keepalive([(cluster_ip, port)], seconds=0.05, concurrency=1))["requests"] > 0

            wait_for(serving, timeout=20, message="the service to answer")
            direct = [(a.split(":")[0], 8080) for a in addresses]
            proxied = [(cluster_ip, port)]
            results: dict[str, dict[str, Any]] = {}
            share = args.seconds / args.rounds
            for mode, run in (
                ("serial", lambda t: keepalive(t, seconds=share, concurrency=1)),
                ("keepalive", lambda t: keepalive(t, seconds=share, concurrency=args.concurrency)),
                ("connect", lambda t: per_connection(t, seconds=share, concurrency=args.concurrency)),
                ("bulk", lambda t: bulk(t[0], megabytes=max(1, args.bulk_mb // args.rounds))),
            ):
                # Direct and proxied runs alternate in short rounds, so a change in the machine's
                # load (it is shared) weighs on both; each figure is the median over the rounds.
                rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "proxy": []}
                for _ in range(args.rounds):
                    rounds["direct"].append(asyncio.run(run(direct)))
                    before = sum(proxy_cpu.cpu_times()[:2])
                    figures = asyncio.run(run(proxied))
                    used = sum(proxy_cpu.cpu_times()[:2]) - before
                    if "requests" in figures:
                        figures["proxy_cpu_us_per_req"] = used / max(figures["requests"], 1) * 1e6
                    else:
                        figures["proxy_cpu_s_per_GB"] = used / max(figures["bytes"], 1) * 1e9
                    rounds["proxy"].append(figures)
                for side, runs in rounds.items():
                    results[f"{mode} {side}"] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
            report(results, cpus=os.cpu_count() or 0, rounds=args.rounds)
        finally:
            cluster.stop()
            backend.terminate()
            backend.wait(timeout=10)
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(timeout=10)
    return 0


def report(results: dict[str, dict[str, Any]], *, cpus: int, rounds: int) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"proxy benchmark ({cpus} CPUs shared by client, proxy and backends; load {load}; "
          f"medians of {rounds} alternating rounds)")
    for name, figures in results.items():
        print(f"  {name:<18} {json.dumps(figures)}")
    print("ratios (proxy / direct):")
    for mode in ("serial", "keepalive", "connect"):
        d, p = results[f"{mode} direct"], results[f"{mode} proxy"]
        print(f"  {mode:<10} req/s {p['req/s'] / max(d['req/s'], 1):.2f}   "
              f"p50 +{p['p50_ms'] - d['p50_ms']:.3f} ms   p99 +{p['p99_ms'] - d['p99_ms']:.3f} ms")
    d, p = results["bulk direct"], results["bulk proxy"]
    print(f"  {'bulk':<10} MB/s  {p['MB/s'] / max(d['MB/s'], 0.001):.2f}")


if __name__ == "__main__":
    sys.exit(main())
