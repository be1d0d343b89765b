"""The proxy's pure parts: which endpoints serve a port, how one is picked, what to listen on."""

from __future__ import annotations

from typing import Any

from services.proxy.balancing import Backends, affinity_seconds, ready_endpoints
from services.proxy.listening import Target, wanted_addresses


def endpoints(*subsets: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"}, "subsets": list(subsets)}


def test_ready_endpoints_match_port_names_and_skip_not_ready() -> None:
    obj = endpoints(
        {"addresses": [{"ip": "127.11.0.2"}, {"ip": "127.11.0.1"}], "notReadyAddresses": [{"ip": "127.11.0.3"}],
         "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]},
        {"addresses": [{"ip": "127.11.0.4"}], "ports": [{"name": "http", "port": 8081}]},
    )
    assert ready_endpoints(obj, "http") == [("127.11.0.1", 8080), ("127.11.0.2", 8080), ("127.11.0.4", 8081)]
    assert ready_endpoints(obj, "metrics") == [("127.11.0.1", 9090), ("127.11.0.2", 9090)]
    assert ready_endpoints(obj, "") == []
    unnamed = endpoints({"addresses": [{"ip": "127.11.0.1"}], "ports": [{"port": 80}]})
    assert ready_endpoints(unnamed, "") == [("127.11.0.1", 80)]
    assert ready_endpoints(None, "") == []
    assert ready_endpoints({"subsets": [None, {"addresses": [{"ip": 5}], "ports": [{"port": "x"}]}]}, "") == []


def test_round_robin_exclusion_and_client_ip_affinity() -> None:
    backends = Backends("default/web", "")
    a, b, c = ("127.0.0.1", 1), ("127.0.0.2", 1), ("127.0.0.3", 1)
    backends.update([a, b, c], affinity_seconds=None)
    assert [backends.pick("x") for _ in range(6)] == [a, b, c, a, b, c]
    assert backends.pick("x", exclude={a, b}) == c
    assert backends.pick("x", exclude={a, b, c}) is None

    backends.update([a, b, c], affinity_seconds=100)
    first = backends.pick("10.0.0.1")
    assert all(backends.pick("10.0.0.1") == first for _ in range(5))
    assert backends.pick("10.0.0.2") != first
    # The remembered endpoint failing (excluded) moves the client; leaving the endpoints forgets it.
    moved = backends.pick("10.0.0.1", exclude={first})
    assert moved != first and backends.pick("10.0.0.1") == moved
    backends.update([e for e in (a, b, c) if e != moved], affinity_seconds=100)
    assert backends.pick("10.0.0.1") != moved
    assert Backends("default/none", "").pick("x") is None


def test_affinity_timeout_from_the_service() -> None:
    assert affinity_seconds({"spec": {}}) is None
    assert affinity_seconds({"spec": {"sessionAffinity": "ClientIP"}}) == 10800
    config = {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}
    assert affinity_seconds({"spec": config}) == 30
    config["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": "junk"}}
    assert affinity_seconds({"spec": config}) == 10800


def test_wanted_addresses() -> None:
    def service(**spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}

    ports = [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]
    assert wanted_addresses(service(type="NodePort", clusterIP="127.96.0.9", ports=ports), node_ip="127.10.1.1") == {
        ("127.96.0.9", 80): Target("default/web", "http", "ClusterIP"),
        ("127.10.1.1", 30080): Target("default/web", "http", "NodePort"),
    }
    assert wanted_addresses(service(clusterIP="None", ports=ports), node_ip="127.10.1.1") == {}
    assert wanted_addresses(service(type="ExternalName", externalName="example.com"), node_ip="x") == {}
    assert list(wanted_addresses(service(clusterIP="127.96.0.9", ports=[{"port": 80, "nodePort": 30001}]),
                                 node_ip="127.10.1.1")) == [("127.96.0.9", 80)]
    assert wanted_addresses(service(clusterIP="127.96.0.9", ports="junk"), node_ip="127.10.1.1") == {}


def test_affinity_expires() -> None:
    backends = Backends("default/web", "")
    a, b = ("127.0.0.1", 1), ("127.0.0.2", 1)
    backends.update([a, b], affinity_seconds=30)
    first = backends.pick("10.0.0.1")
    endpoint, last_used = backends._affinity["10.0.0.1"]
    backends._affinity["10.0.0.1"] = (endpoint, last_used - 31)  # last used 31 s ago
    assert backends.pick("10.0.0.1") != first  # round robin again, then sticky to the new choice
    assert backends.pick("10.0.0.1") == backends.pick("10.0.0.1") != first
