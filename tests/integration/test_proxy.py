"""The Service proxy: a real API server, real ``redkube proxy`` processes, real backend sockets."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.harness import Cluster, wait_for
from tests.support_proxy import (
    Backend,
    Conversation,
    ask,
    create_service,
    eventually_serves,
    free_port,
    metric,
    names,
    random_block,
    refused,
    service_port,
    set_endpoints,
    start_proxy,
)


@pytest.fixture
def block() -> str:
    return random_block()


@pytest.fixture
def backends(block: str) -> Iterator[list[Backend]]:
    """Four backends on one port: web-1..web-4 at <block>.1-4."""
    port = free_port(f"{block}.1")
    made = [Backend(f"web-{i}", f"{block}.{i}", port) for i in range(1, 5)]
    yield made
    for backend in made:
        backend.close()


def test_cluster_ip_and_node_port_reach_ready_backends(api: Cluster, block: str, backends: list[Backend]) -> None:
    node_ip = f"{block}.200"
    _proxy, metrics_port = start_proxy(api, "n1", node_ip)
    port = service_port()
    with api.http() as http:
        service = create_service(http, "web", port=port, kind="NodePort")
        cluster_ip, node_port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["nodePort"]
        assert cluster_ip.startswith("127.96.") and 30000 <= node_port <= 32767
        set_endpoints(http, "web", ready=backends[:3], not_ready=[backends[3]], port=backends[0].port)

    eventually_serves(cluster_ip, port)
    through_cluster_ip = Counter(names(cluster_ip, port, 30))
    through_node_port = Counter(names(node_ip, node_port, 30))
    assert set(through_cluster_ip) == {"web-1", "web-2", "web-3"}, through_cluster_ip
    assert set(through_node_port) == {"web-1", "web-2", "web-3"}, through_node_port
    assert min(through_cluster_ip.values()) >= 5, f"round robin is uneven: {through_cluster_ip}"
    assert backends[3].accepted == 0, "a notReady address got traffic"

    labels = {"service": "default/web", "port": ""}
    wait_for(lambda: metric(metrics_port, "proxy_connections_total", **labels) >= 61, timeout=5,
             message="connection metrics")
    wait_for(lambda: metric(metrics_port, "proxy_bytes_total", direction="to_client", **labels) > 0, timeout=5,
             message="byte metrics")


def test_endpoint_changes_spare_established_connections(api: Cluster, block: str, backends: list[Backend]) -> None:
    _proxy, _ = start_proxy(api, "n1", f"{block}.200")
    port = service_port()
    with api.http() as http:
        cluster_ip = create_service(http, "web", port=port)["spec"]["clusterIP"]
        set_endpoints(http, "web", ready=backends[:3], port=backends[0].port)
        eventually_serves(cluster_ip, port)

        # An established connection to web-3, which is about to leave the Endpoints.
        conversation = None
        for _ in range(10):
            candidate = Conversation(cluster_ip, port)
            if candidate.ask("first") == "web-3":
                conversation = candidate
                break
            candidate.close()
        assert conversation is not None, "round robin never reached web-3"

        set_endpoints(http, "web", ready=backends[:2], port=backends[0].port)
        changed = time.monotonic()

        def web3_gone() -> bool:
            return "web-3" not in names(cluster_ip, port, 6)

        wait_for(web3_gone, timeout=2.0, interval=0.02, message="web-3 to get no new connections")
        took = time.monotonic() - changed
        assert set(names(cluster_ip, port, 20)) == {"web-1", "web-2"}
        assert conversation.ask("still there?") == "web-3", "the established connection was dropped"
        conversation.close()
        print(f"endpoint removal took effect in {took:.3f}s")

        # Adding an endpoint back brings it traffic again; nothing at all refuses connections quickly.
        set_endpoints(http, "web", ready=backends[:3], port=backends[0].port)
        wait_for(lambda: "web-3" in names(cluster_ip, port, 6), timeout=2.0, message="web-3 back")
        set_endpoints(http, "web", ready=[], port=backends[0].port)
        wait_for(lambda: refused(cluster_ip, port), timeout=2.0, message="connections refused without endpoints")


def test_refused_or_silent_endpoint_is_retried(api: Cluster, block: str, backends: list[Backend]) -> None:
    proxy, metrics_port = start_proxy(api, "n1", f"{block}.200")
    port = service_port()
    hanging = Backend("hang", f"{block}.9", backends[0].port, hang=True)
    # A silent endpoint: its accept queue (backlog 0) is full, so further connects get no answer at all.
    silent = socket.socket()
    silent.bind((f"{block}.10", backends[0].port))
    silent.listen(0)
    filler = socket.create_connection((f"{block}.10", backends[0].port), timeout=1)
    try:
        with api.http() as http:
            cluster_ip = create_service(http, "web", port=port)["spec"]["clusterIP"]
            # <block>.50 has nothing listening: connections to it are refused.
            set_endpoints(http, "web", ready=[backends[0], f"{block}.50", hanging, f"{block}.10"],
                          port=backends[0].port)
        eventually_serves(cluster_ip, port)

        # All at once: the hanging endpoint's clients wait, nobody else does; the refused and the
        # silent endpoints are skipped (after the 0.5 s connect timeout for the silent one).
        clients = [socket.create_connection((cluster_ip, port), timeout=3) for _ in range(12)]
        for sock in clients:
            sock.sendall(b"hello\n")
        deadline = time.monotonic() + 2.5
        stuck, answered = [], []
        for sock in clients:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                answered.append(sock.makefile("rb").readline().decode().split(" ")[0])
            except TimeoutError:
                stuck.append(sock)
        assert stuck, "no connection reached the hanging endpoint"
        assert answered and set(answered) == {"web-1"}, answered
        assert hanging.accepted == len(stuck) and len(answered) + len(stuck) == 12
        wait_for(lambda: metric(metrics_port, "proxy_endpoint_retries_total", service="default/web") > 0,
                 timeout=5, message="retries counted")
        assert metric(metrics_port, "proxy_connections_failed_total", service="default/web") == 0
        log = proxy.log()
        assert f'"endpoint": "{block}.10:' in log and f'"endpoint": "{block}.50:' in log, "both skipped"
        for sock in clients:
            sock.close()
    finally:
        hanging.close()
        filler.close()
        silent.close()


def test_session_affinity_client_ip(api: Cluster, block: str, backends: list[Backend]) -> None:
    _proxy, _ = start_proxy(api, "n1", f"{block}.200")
    port = service_port()
    with api.http() as http:
        cluster_ip = create_service(http, "sticky", port=port, affinity=True)["spec"]["clusterIP"]
        set_endpoints(http, "sticky", ready=backends[:3], port=backends[0].port)
    eventually_serves(cluster_ip, port)
    chosen = {}
    for client in (f"{block}.101", f"{block}.102", f"{block}.103", f"{block}.104"):
        seen = set(names(cluster_ip, port, 8, source=client))
        assert len(seen) == 1, f"client {client} was spread over {seen}"
        chosen[client] = seen.pop()
    assert len(set(chosen.values())) > 1, f"every client went to one backend: {chosen}"


def test_two_proxies_on_one_machine_both_serve(api: Cluster, block: str, backends: list[Backend]) -> None:
    first, first_metrics = start_proxy(api, "node-a", f"{block}.201")
    _second, second_metrics = start_proxy(api, "node-b", f"{block}.202")
    port = service_port()
    with api.http() as http:
        service = create_service(http, "web", port=port, kind="NodePort")
        set_endpoints(http, "web", ready=backends[:3], port=backends[0].port)
    cluster_ip, node_port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["nodePort"]
    eventually_serves(f"{block}.201", node_port)
    eventually_serves(f"{block}.202", node_port)
    assert set(names(f"{block}.201", node_port, 9)) == {"web-1", "web-2", "web-3"}
    assert set(names(f"{block}.202", node_port, 9)) == {"web-1", "web-2", "web-3"}

    # Both listen on the one ClusterIP:port; the kernel spreads connections between them.
    def both_accepted() -> bool:
        names(cluster_ip, port, 10)
        return all(metric(m, "proxy_connections_total", service="default/web") > 9 for m in (first_metrics,
                                                                                              second_metrics))

    wait_for(both_accepted, timeout=10, message="both proxies to accept ClusterIP connections")
    # One proxy going away leaves the other serving the ClusterIP.
    assert first.stop() == 0
    assert set(names(cluster_ip, port, 9)) == {"web-1", "web-2", "web-3"}
    assert refused(f"{block}.201", node_port)


def test_deleted_service_and_changed_port(api: Cluster, block: str, backends: list[Backend]) -> None:
    node_ip = f"{block}.200"
    _proxy, _ = start_proxy(api, "n1", node_ip)
    port, new_port = service_port(), service_port() + 1000
    with api.http() as http:
        service = create_service(http, "web", port=port, kind="NodePort")
        set_endpoints(http, "web", ready=backends[:2], port=backends[0].port)
        cluster_ip, node_port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["nodePort"]
        eventually_serves(cluster_ip, port)
        eventually_serves(node_ip, node_port)

        established = Conversation(cluster_ip, port)
        established.ask()
        service = http.get("/api/v1/namespaces/default/services/web").json()
        service["spec"]["ports"][0]["port"] = new_port
        response = http.put("/api/v1/namespaces/default/services/web", json=service)
        assert response.status_code == 200, response.text
        eventually_serves(cluster_ip, new_port, timeout=3)
        wait_for(lambda: refused(cluster_ip, port), timeout=3, message="the old port to close")
        assert established.ask() in {"web-1", "web-2"}, "re-listening dropped an established connection"

        assert http.delete("/api/v1/namespaces/default/services/web").status_code == 200
        wait_for(lambda: refused(cluster_ip, new_port), timeout=3, message="the ClusterIP listener to close")
        wait_for(lambda: refused(node_ip, node_port), timeout=3, message="the NodePort listener to close")
        assert established.ask() in {"web-1", "web-2"}
        established.close()


def test_port_in_use_does_not_stop_other_services(api: Cluster, block: str, backends: list[Backend]) -> None:
    node_ip = f"{block}.200"
    taken_port = 30000 + free_port(node_ip) % 2700
    squatter = socket.socket()
    squatter.bind((node_ip, taken_port))
    squatter.listen()
    try:
        proxy, _ = start_proxy(api, "n1", node_ip)
        with api.http() as http:
            blocked = create_service(http, "blocked", port=service_port(), node_port=taken_port, kind="NodePort")
            fine = create_service(http, "fine", port=service_port(), kind="NodePort")
            for name in ("blocked", "fine"):
                set_endpoints(http, name, ready=backends[:2], port=backends[0].port)
            fine_node_port = fine["spec"]["ports"][0]["nodePort"]
            eventually_serves(node_ip, fine_node_port)
            eventually_serves(fine["spec"]["clusterIP"], fine["spec"]["ports"][0]["port"])
            # The blocked Service's ClusterIP still works; only its NodePort is taken.
            eventually_serves(blocked["spec"]["clusterIP"], blocked["spec"]["ports"][0]["port"])

            def warning() -> list[dict]:
                events = http.get("/api/v1/namespaces/default/events",
                                  params={"fieldSelector": "involvedObject.name=blocked"}).json()["items"]
                return [e for e in events if e["reason"] == "FailedToListen" and e["type"] == "Warning"]

            found = wait_for(warning, timeout=10, message="a FailedToListen event")
            assert f"{node_ip}:{taken_port}" in found[0]["message"] and "EADDRINUSE" in found[0]["message"]
            assert "cannot listen" in proxy.log()
            described = api.kubectl("describe", "service", "blocked").stdout
            assert "FailedToListen" in described
        # Freed, the port is picked up by the retry.
        squatter.close()
        eventually_serves(node_ip, taken_port, timeout=5)
        assert proxy.alive()
    finally:
        squatter.close()


def test_service_without_endpoints_refuses_quickly(api: Cluster, block: str) -> None:
    _proxy, metrics_port = start_proxy(api, "n1", f"{block}.200")
    port = service_port()
    with api.http() as http:
        cluster_ip = create_service(http, "empty", port=port)["spec"]["clusterIP"]

    def listening_and_refusing() -> bool:
        started = time.monotonic()
        try:
            with socket.create_connection((cluster_ip, port), timeout=1) as sock:
                sock.sendall(b"hello\n")
                return sock.recv(10) == b"" and time.monotonic() - started < 1
        except ConnectionResetError:
            return time.monotonic() - started < 1
        except OSError:
            return False

    wait_for(listening_and_refusing, timeout=5, message="a quick refusal")
    wait_for(lambda: metric(metrics_port, "proxy_connections_failed_total", reason="no_endpoints") > 0,
             timeout=5, message="refusals counted")
    # A healthy answer on the very same listener once endpoints appear.
    backend = Backend("late", f"{random_block()}.1", free_port("127.0.0.1"))
    try:
        with api.http() as http:
            set_endpoints(http, "empty", ready=[backend], port=backend.port)
        assert eventually_serves(cluster_ip, port, timeout=3) == "late"
        assert ask(cluster_ip, port) == "late"
    finally:
        backend.close()


def test_server_first_protocols_and_half_close(api: Cluster, block: str) -> None:
    """A backend that speaks first is heard; a client's half-close reaches the backend, the answer comes back."""
    _proxy, _ = start_proxy(api, "n1", f"{block}.200")
    greeter = Backend("greeter", f"{block}.7", free_port(f"{block}.7"), greet=True)
    port = service_port()
    try:
        with api.http() as http:
            cluster_ip = create_service(http, "greet", port=port)["spec"]["clusterIP"]
            set_endpoints(http, "greet", ready=[greeter], port=greeter.port)

        def greeted() -> bool:
            with socket.create_connection((cluster_ip, port), timeout=2) as sock:
                return sock.makefile("rb").readline() == b"greeter welcome\n"

        wait_for(greeted, timeout=10, message="the greeting through the proxy")
        with socket.create_connection((cluster_ip, port), timeout=3) as sock:
            sock.sendall(b"one\ntwo\n")
            sock.shutdown(socket.SHUT_WR)  # the backend sees EOF after the two lines and closes
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
        assert received == b"greeter welcome\ngreeter one\ngreeter two\n"
    finally:
        greeter.close()
