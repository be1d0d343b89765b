"""Fixtures shared by every test: the suite's Redis and per-test clusters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster, start_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, proc = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of its own key prefix with no processes started yet."""
    made = Cluster(redis_url, tmp_path / "home")
    yield made
    made.stop()


@pytest.fixture
def api(cluster: Cluster) -> Cluster:
    """A cluster with one API server running."""
    cluster.start_apiserver()
    return cluster
