"""The Endpoints controller: readiness, named ports, terminating pods, Service deletion."""

from __future__ import annotations

from typing import Any

from tests.harness import Cluster, wait_for
from tests.support_controllers import FakeNodeAgent, start_controller_manager

NS = "/api/v1/namespaces/default"


def pod(name: str, *, ports: list[dict[str, Any]] | None = None, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"terminationGracePeriodSeconds": 30,
                 "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "100"],
                                 "ports": ports or []}]},
    }


def service(name: str, selector: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"tier": "front"}},
            "spec": {"selector": selector, "ports": ports}}


def addresses(ep: dict[str, Any], field: str = "addresses") -> dict[tuple[int, ...], set[str]]:
    """port numbers -> pod names listed under ``field`` for those ports."""
    out: dict[tuple[int, ...], set[str]] = {}
    for subset in ep.get("subsets") or []:
        ports = tuple(sorted(p["port"] for p in subset.get("ports") or []))
        names = {a["targetRef"]["name"] for a in subset.get(field) or []}
        if names:
            out.setdefault(ports, set()).update(names)
    return out


def test_endpoints_follow_readiness_and_named_ports(api: Cluster) -> None:
    not_ready = {"b"}
    agent = FakeNodeAgent(api, policy=lambda p, age: "NotReady" if p["metadata"]["name"] in not_ready else "Running",
                          confirm_deletions=False)
    agent.create_node()
    start_controller_manager(api, controllers="endpoints")
    http_port = [{"name": "http", "containerPort": 8080}]
    with agent, api.http() as http:
        http.post(f"{NS}/pods", json=pod("a", ports=http_port))
        http.post(f"{NS}/pods", json=pod("b", ports=[{"name": "http", "containerPort": 9090}]))
        http.post(f"{NS}/pods", json=pod("c"))  # no port named http
        http.post(f"{NS}/pods", json=pod("other", ports=http_port, app="db"))
        created = http.post(f"{NS}/services", json=service("web", {"app": "web"}, [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9100, "targetPort": 9100},
        ]))
        assert created.status_code == 201, created.text

        def settled() -> dict[str, Any] | None:
            response = http.get(f"{NS}/endpoints/web")
            if response.status_code != 200:
                return None
            ep = response.json()
            return ep if addresses(ep) == {(8080, 9100): {"a"}, (9100,): {"c"}} and addresses(
                ep, "notReadyAddresses") == {(9090, 9100): {"b"}} else None

        ep = wait_for(settled, message="endpoints of web")
        assert ep["metadata"]["labels"] == {"tier": "front"}
        by_pod = {a["targetRef"]["name"]: a for s in ep["subsets"] for a in s.get("addresses", [])}
        assert by_pod["a"]["nodeName"] == "n1" and by_pod["a"]["targetRef"]["kind"] == "Pod"
        assert by_pod["a"]["ip"] == http.get(f"{NS}/pods/a").json()["status"]["podIP"]
        # Port numbers follow the named port, pod by pod: a serves 8080, b 9090, c only 9100.
        port_sets = sorted(tuple(sorted(p["port"] for p in s["ports"])) for s in ep["subsets"])
        assert port_sets == [(8080, 9100), (9090, 9100), (9100,)]
        version = ep["metadata"]["resourceVersion"]

        # b becomes ready; a is deleted gracefully (terminating: no longer ready).
        not_ready.clear()
        http.delete(f"{NS}/pods/a")
        wait_for(lambda: addresses(http.get(f"{NS}/endpoints/web").json()) == {(9090, 9100): {"b"}, (9100,): {"c"}}
                 and addresses(http.get(f"{NS}/endpoints/web").json(), "notReadyAddresses")
                 == {(8080, 9100): {"a"}}, message="b ready, a terminating")

        # A pod that loses the selector's label leaves.
        http.patch(f"{NS}/pods/c", json={"metadata": {"labels": {"app": "gone"}}},
                   headers={"Content-Type": "application/merge-patch+json"})
        wait_for(lambda: (9100,) not in addresses(http.get(f"{NS}/endpoints/web").json()), message="c removed")
        assert int(http.get(f"{NS}/endpoints/web").json()["metadata"]["resourceVersion"]) > int(version)

        # Nothing changes, nothing is written.
        settled_version = http.get(f"{NS}/endpoints/web").json()["metadata"]["resourceVersion"]
        http.patch(f"{NS}/pods/other", json={"metadata": {"labels": {"x": "1"}}},
                   headers={"Content-Type": "application/merge-patch+json"})
        http.post(f"{NS}/services", json=service("marker", {"app": "db"}, [{"port": 1}]))
        wait_for(lambda: http.get(f"{NS}/endpoints/marker").status_code == 200, message="marker endpoints")
        assert http.get(f"{NS}/endpoints/web").json()["metadata"]["resourceVersion"] == settled_version

        shown = api.kubectl("get", "endpoints", "web").stdout
        assert "web" in shown

        http.delete(f"{NS}/services/web")
        wait_for(lambda: http.get(f"{NS}/endpoints/web").status_code == 404, message="endpoints deleted")


def test_pods_without_ip_and_selectorless_services(api: Cluster) -> None:
    start_controller_manager(api, controllers="endpoints")
    with api.http() as http:
        http.post(f"{NS}/pods", json=pod("pending"))  # never scheduled: no IP
        http.post(f"{NS}/services", json=service("web", {"app": "web"}, [{"port": 80}]))
        manual = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
                  "spec": {"ports": [{"port": 5432}]}}
        http.post(f"{NS}/services", json=manual)
        http.post(f"{NS}/endpoints", json={"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external"},
                                           "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"port": 5432}]}]})
        ep = wait_for(lambda: http.get(f"{NS}/endpoints/web").json() if http.get(
            f"{NS}/endpoints/web").status_code == 200 else None, message="empty endpoints")
        assert not ep.get("subsets")
        # A Service without a selector keeps the Endpoints someone else wrote.
        external = http.get(f"{NS}/endpoints/external").json()
        assert external["subsets"][0]["addresses"][0]["ip"] == "192.0.2.7"
