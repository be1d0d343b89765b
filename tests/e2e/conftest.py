"""Fixtures for the end-to-end tests."""

from __future__ import annotations

import pytest

from tests.harness import Cluster
from tests.support_kubelet import node_cluster, start_kubelet


@pytest.fixture
def node(cluster: Cluster) -> Cluster:
    """A cluster with an API server and a real kubelet for node n1 (the harness stops the
    processes and kills any containers when the test ends)."""
    node_cluster(cluster, "n1")
    start_kubelet(cluster, "n1")
    return cluster
