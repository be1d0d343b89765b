"""What Redis over TLS and ACL users cost the store: compare-and-swap writes per second
and write→watcher latency over plain TCP (the baseline), over TLS, and over TLS as an
ACL user with key patterns (as the API server runs under ``redkube up --redis-tls`` on
Redis 7), all against one redis-server in the same run, printed as ratios.

    REDKUBE_REDIS_SERVER=/usr/bin/redis-server python bench/redis_security.py [--writes 5000]

Needs a redis-server 7+ built with TLS (``REDKUBE_REDIS_SERVER`` or the one on PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store import pct, run_cas
from shared import pki, redis_acl, redis_server


def start_server(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """One server listening twice: plain TCP and TLS (certificate from a throwaway CA)."""
    pki.make_ca(directory)
    pki.make_serving_cert(directory, hosts=["127.0.0.1"], stem="redis", common_name="bench-redis")
    plain, tls = redis_server.free_port(), redis_server.free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(plain), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--tls-port", str(tls), "--tls-cert-file", str(directory / "redis.crt"), "--tls-key-file",
         str(directory / "redis.key"), "--tls-ca-cert-file", str(directory / "ca.crt"), "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    redis_server.wait_ready(plain, proc=proc)
    return proc, plain, tls


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    binary = redis_server.find_binary()
    if redis_acl.server_version(binary) < redis_acl.MIN_VERSION:
        raise SystemExit(f"{binary} is older than Redis 7: set REDKUBE_REDIS_SERVER to a Redis 7+ with TLS")
    with tempfile.TemporaryDirectory() as tmp:
        proc, plain_port, tls_port = start_server(binary, Path(tmp))
        try:
            password = "bench-password"
            user = redis_acl.User("apiserver", ("~bench*",), "+@all -@admin")
            import redis

            admin = redis.Redis(port=plain_port)
            admin.execute_command("ACL", "SETUSER", *redis_acl.acl_line(user, password).split()[1:])
            ca = Path(tmp) / "ca.crt"
            urls = {
                "plain TCP": f"redis://127.0.0.1:{plain_port}/0",
                "TLS": f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}",
                "TLS + ACL user": f"rediss://apiserver:{password}@127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}",
            }
            print(f"{binary} ({'.'.join(map(str, redis_acl.server_version(binary)))}); {args.writes} CAS writes")
            for concurrency in (1, args.concurrency):
                results = {label: await run_cas(url, args.writes, concurrency) for label, url in urls.items()}
                base_rate, base_seen = results["plain TCP"]
                for label, (rate, seen) in results.items():
                    print(f"c={concurrency:<3} {label:<16} {rate:>8.0f} writes/s ({rate / base_rate:.2f} x)   "
                          f"watch p50 {pct(seen, .5) * 1000:6.2f} ms ({statistics.median(seen) / statistics.median(base_seen):.2f} x)"
                          f"   p99 {pct(seen, .99) * 1000:6.2f} ms")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
