"""Fixtures for the integration tests."""

from __future__ import annotations

import pytest

from tests.harness import Cluster
from tests.support_kubelet import node_cluster


@pytest.fixture
def node(cluster: Cluster) -> Cluster:
    """A cluster with an API server and a node token for n1 (the harness stops processes
    and kills any containers when the test ends)."""
    node_cluster(cluster, "n1")
    return cluster
