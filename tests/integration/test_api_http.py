"""The API server over HTTPS: CRUD, patches, watches, subresources and bad input."""

from __future__ import annotations

import ipaddress
import json
import threading
from typing import Any

import httpx

from tests.harness import Cluster, wait_for

PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "100"]}]},
    }


def test_create_get_list_update_delete(api: Cluster) -> None:
    with api.http() as http:
        created = http.post(PODS, json=pod("a", app="web"))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["metadata"]["uid"] and body["metadata"]["resourceVersion"]
        assert body["status"]["phase"] == "Pending"
        assert body["spec"]["restartPolicy"] == "Always"
        http.post(PODS, json=pod("b", app="db"))

        got = http.get(f"{PODS}/a").json()
        assert got["metadata"]["name"] == "a"

        listed = http.get(PODS, params={"labelSelector": "app in (web)"}).json()
        assert listed["kind"] == "PodList" and [p["metadata"]["name"] for p in listed["items"]] == ["a"]
        assert int(listed["metadata"]["resourceVersion"]) >= 2
        by_name = http.get("/api/v1/pods", params={"fieldSelector": "metadata.name=b"}).json()
        assert [p["metadata"]["name"] for p in by_name["items"]] == ["b"]

        got["metadata"]["labels"]["tier"] = "front"
        updated = http.put(f"{PODS}/a", json=got)
        assert updated.status_code == 200
        assert updated.json()["metadata"]["labels"]["tier"] == "front"

        stale = http.put(f"{PODS}/a", json=got)  # still carries the old resourceVersion
        assert stale.status_code == 409
        assert stale.json()["reason"] == "Conflict"

        deleted = http.delete(f"{PODS}/a")
        assert deleted.status_code == 200
        missing = http.get(f"{PODS}/a")
        assert missing.status_code == 404
        assert missing.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'pods "a" not found',
            "reason": "NotFound",
            "code": 404,
            "details": {"kind": "pods", "name": "a"},
        }


def test_patch_types(api: Cluster) -> None:
    with api.http() as http:
        http.post(PODS, json=pod("p"))
        merge = http.patch(
            f"{PODS}/p",
            content=json.dumps({"metadata": {"labels": {"x": "1"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert merge.status_code == 200 and merge.json()["metadata"]["labels"] == {"app": "web", "x": "1"}
        jpatch = http.patch(
            f"{PODS}/p",
            content=json.dumps([{"op": "remove", "path": "/metadata/labels/x"}]),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert jpatch.json()["metadata"]["labels"] == {"app": "web"}
        strategic = http.patch(
            f"{PODS}/p",
            headers={"Content-Type": "application/strategic-merge-patch+json"},
            content=json.dumps({"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}),
        )
        assert strategic.status_code == 200, strategic.text
        containers = strategic.json()["spec"]["containers"]
        assert containers[0]["image"] == "busybox:2" and containers[0]["command"] == ["sleep", "100"]
        immutable = http.patch(
            f"{PODS}/p",
            content=json.dumps({"spec": {"restartPolicy": "Never"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert immutable.status_code == 422 and immutable.json()["reason"] == "Invalid"
        status = http.patch(
            f"{PODS}/p/status",
            content=json.dumps({"status": {"phase": "Running"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert status.json()["status"]["phase"] == "Running"
        # The main resource ignores status changes.
        ignored = http.patch(
            f"{PODS}/p",
            content=json.dumps({"status": {"phase": "Failed"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert ignored.json()["status"]["phase"] == "Running"


def _watch(http: httpx.Client, path: str, params: dict[str, str], events: list[dict[str, Any]], until: int) -> None:
    with http.stream("GET", path, params={**params, "watch": "true"}) as response:
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
            if len(events) >= until:
                return


def test_list_then_watch_misses_nothing_while_another_process_writes(api: Cluster) -> None:
    writer_done = threading.Event()

    def writer() -> None:
        with api.http() as http:
            for n in range(40):
                http.post(PODS, json=pod(f"w{n}"))
        writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    with api.http() as http:
        wait_for(lambda: len(http.get(PODS).json()["items"]) >= 5, message="some pods written")
        listed = http.get(PODS).json()
        seen = {p["metadata"]["name"] for p in listed["items"]}
        events: list[dict[str, Any]] = []
        _watch(http, PODS, {"resourceVersion": listed["metadata"]["resourceVersion"]}, events, 40 - len(seen))
    thread.join()
    assert writer_done.is_set()
    added = {e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"}
    assert seen.isdisjoint(added)
    assert seen | added == {f"w{n}" for n in range(40)}


def test_watch_events_and_label_filter(api: Cluster) -> None:
    with api.http() as http:
        http.post(PODS, json=pod("before", app="db"))
        rv = http.get(PODS).json()["metadata"]["resourceVersion"]
        http.post(PODS, json=pod("x", app="web"))
        http.post(PODS, json=pod("y", app="db"))
        http.patch(
            f"{PODS}/x",
            content=json.dumps({"metadata": {"labels": {"app": "other"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        events: list[dict[str, Any]] = []
        _watch(http, PODS, {"resourceVersion": rv, "labelSelector": "app=web"}, events, 2)
        # Leaving the selector is a DELETED event to a filtered watcher, as in Kubernetes.
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "x"), ("DELETED", "x")]


def test_watch_from_compacted_revision_is_410(cluster: Cluster) -> None:
    cluster.start_apiserver("--watch-cap", "5")
    with cluster.http() as http:
        http.post(PODS, json=pod("c"))
        first = http.get(f"{PODS}/c").json()["metadata"]["resourceVersion"]
        for n in range(230):
            http.patch(
                f"{PODS}/c",
                content=json.dumps({"metadata": {"labels": {"n": str(n)}}}),
                headers={"Content-Type": "application/merge-patch+json"},
            )
        response = http.get(PODS, params={"watch": "true", "resourceVersion": first})
        assert response.status_code == 410
        assert response.json()["reason"] == "Expired"
        recent = http.get(PODS).json()["metadata"]["resourceVersion"]
        with http.stream("GET", PODS, params={"watch": "true", "resourceVersion": recent, "timeoutSeconds": "1"}) as ok:
            assert ok.status_code == 200


def test_bad_input_answers_a_status(api: Cluster) -> None:
    with api.http() as http:

        def check(response: httpx.Response, code: int, reason: str, text: str = "") -> dict[str, Any]:
            assert response.status_code == code, response.text
            body = response.json()
            assert body["kind"] == "Status" and body["reason"] == reason and body["code"] == code
            assert text in body["message"], body["message"]
            return body

        check(
            http.post(PODS, content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "BadRequest",
            "error decoding JSON",
        )
        check(
            http.post(PODS, content=b"a: [b", headers={"Content-Type": "application/yaml"}), 400, "BadRequest", "YAML"
        )
        check(http.post(PODS, json={**pod("k"), "kind": "Service"}), 400, "BadRequest", 'kind "Service"')
        check(http.post(PODS, json={**pod("k"), "apiVersion": "apps/v1"}), 400, "BadRequest", "API version")
        invalid = check(
            http.post(
                PODS,
                json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {"containers": []}},
            ),
            422,
            "Invalid",
        )
        fields = {c["field"] for c in invalid["details"]["causes"]}
        assert {"metadata.name", "spec.containers"} <= fields
        wrong_type = check(
            http.post(
                PODS, json={**pod("t"), "spec": {"containers": [{"name": "c", "image": "i", "args": "not-a-list"}]}}
            ),
            422,
            "Invalid",
        )
        assert wrong_type["details"]["causes"][0]["field"] == "spec.containers[0].args"
        check(
            http.post(
                PODS, content=b"{" + b" " * (4 * 1024 * 1024) + b"}", headers={"Content-Type": "application/json"}
            ),
            413,
            "RequestEntityTooLarge",
        )
        check(
            http.post(PODS, content=b"x", headers={"Content-Type": "application/vnd.kubernetes.protobuf"}),
            400,
            "BadRequest",
            "protobuf",
        )
        check(
            http.post(PODS, content=b"k8s\x00\x0a\x08\x12\x06Widget",
                      headers={"Content-Type": "application/vnd.kubernetes.protobuf"}),
            415,
            "UnsupportedMediaType",
        )
        check(http.post(PODS, content=b"x", headers={"Content-Type": "text/csv"}), 415, "UnsupportedMediaType")
        check(http.get("/api/v1/namespaces/default/widgets"), 404, "NotFound")
        check(http.get(PODS, params={"labelSelector": "a in (b"}), 400, "BadRequest")
        check(http.get(PODS, params={"fieldSelector": "spec.foo=bar"}), 400, "BadRequest", "not supported")
        check(
            http.post(PODS, params={"fieldValidation": "Strict"}, json={**pod("s"), "spce": {}}),
            400,
            "BadRequest",
            'unknown field "spce"',
        )
        check(http.post("/api/v1/namespaces/nope/pods", json=pod("n")), 404, "NotFound", 'namespaces "nope"')
        http.post(PODS, json=pod("dup"))
        check(http.post(PODS, json=pod("dup")), 409, "AlreadyExists", 'pods "dup" already exists')
        check(
            http.patch(f"{PODS}/dup", content=b"{}", headers={"Content-Type": "application/json"}),
            415,
            "UnsupportedMediaType",
        )
    with api.http(token=None) as anonymous:
        check(anonymous.get(PODS), 401, "Unauthorized")
    with httpx.Client(
        base_url=api.server, verify=api.ssl_context(), headers={"Authorization": "Bearer wrong"}
    ) as wrong:
        check(wrong.get(PODS), 401, "Unauthorized")
    # Nothing half-written: only the one valid pod exists.
    with api.http() as http:
        assert [p["metadata"]["name"] for p in http.get(PODS).json()["items"]] == ["dup"]


def node(name: str, cpu: str = "1", memory: str = "1Gi", pods: str = "10") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
        },
    }


def test_node_restriction(api: Cluster) -> None:
    from shared import pki

    token = pki.ensure_node_token(api.identity, "n1")
    pki.ensure_node_token(api.identity, "n2")
    restart = api.processes[0]
    restart.stop()
    api.processes.remove(restart)
    api.api_port = 0
    api.start_apiserver()  # reload the token file
    with (
        api.http() as admin,
        httpx.Client(
            base_url=api.server, verify=api.ssl_context(), headers={"Authorization": f"Bearer {token}"}
        ) as kubelet,
    ):
        assert kubelet.post("/api/v1/nodes", json=node("n1")).status_code == 201
        denied = kubelet.post("/api/v1/nodes", json=node("n2"))
        assert denied.status_code == 403 and denied.json()["reason"] == "Forbidden"
        assert 'User "system:node:n1"' in denied.json()["message"]
        assert kubelet.post(PODS, json=pod("mine")).status_code == 403
        admin.post(PODS, json=pod("mine"))
        admin.post(PODS, json=pod("theirs"))
        assert (
            admin.post(
                f"{PODS}/mine/binding",
                json={
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": "mine"},
                    "target": {"kind": "Node", "name": "n1"},
                },
            ).status_code
            == 201
        )
        ok = kubelet.patch(
            f"{PODS}/mine/status",
            content=json.dumps({"status": {"phase": "Running"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert ok.status_code == 200, ok.text
        other = kubelet.patch(
            f"{PODS}/theirs/status",
            content=json.dumps({"status": {"phase": "Running"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert other.status_code == 403
        assert kubelet.get(PODS).status_code == 200
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1"},
        }
        assert (
            kubelet.put("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", json=lease).status_code
            == 201
        )
        lease["metadata"]["name"] = "n2"
        assert (
            kubelet.put("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2", json=lease).status_code
            == 403
        )


def test_binding_never_overcommits_a_node(api: Cluster) -> None:
    with api.http() as http:
        assert http.post("/api/v1/nodes", json=node("small", cpu="1")).status_code == 201
        for name in ("one", "two"):
            body = pod(name)
            body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "600m"}}
            http.post(PODS, json=body)
        binding = {"apiVersion": "v1", "kind": "Binding", "target": {"kind": "Node", "name": "small"}}
        assert http.post(f"{PODS}/one/binding", json=binding).status_code == 201
        refused = http.post(f"{PODS}/two/binding", json=binding)
        assert refused.status_code == 409 and "Insufficient cpu" in refused.json()["message"]
        again = http.post(f"{PODS}/one/binding", json=binding)
        assert again.status_code == 409 and "already assigned" in again.json()["message"]
        missing = http.post(f"{PODS}/two/binding", json={**binding, "target": {"kind": "Node", "name": "ghost"}})
        assert missing.status_code == 404 and 'nodes "ghost"' in missing.json()["message"]
        # Deleting the first pod (force) frees its share, so the second now fits.
        http.delete(f"{PODS}/one", params={"gracePeriodSeconds": "0"})
        assert http.post(f"{PODS}/two/binding", json=binding).status_code == 201
        assert http.get(f"{PODS}/two").json()["spec"]["nodeName"] == "small"


def test_graceful_pod_deletion_waits_for_the_node(api: Cluster) -> None:
    with api.http() as http:
        http.post("/api/v1/nodes", json=node("n"))
        http.post(PODS, json=pod("g"))
        http.post(f"{PODS}/g/binding", json={"target": {"kind": "Node", "name": "n"}})
        first = http.delete(f"{PODS}/g")
        assert first.status_code == 200
        meta = http.get(f"{PODS}/g").json()["metadata"]
        assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 30
        assert http.delete(f"{PODS}/g", params={"gracePeriodSeconds": "0"}).status_code == 200
        assert http.get(f"{PODS}/g").status_code == 404


def test_deployment_scale_subresource(api: Cluster) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    path = "/apis/apps/v1/namespaces/default/deployments"
    with api.http() as http:
        created = http.post(path, json=deployment)
        assert created.status_code == 201, created.text
        spec = created.json()["spec"]
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        }
        scale = http.get(f"{path}/web/scale").json()
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=web"
        patched = http.patch(
            f"{path}/web/scale",
            content=json.dumps({"spec": {"replicas": 5}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.json()["spec"]["replicas"] == 5
        after = http.get(f"{path}/web").json()
        assert after["spec"]["replicas"] == 5 and after["metadata"]["generation"] == 2
        bad = http.post(
            path,
            json={
                **deployment,
                "metadata": {"name": "bad"},
                "spec": {**deployment["spec"], "selector": {"matchLabels": {"app": "x"}}},
            },
        )
        assert bad.status_code == 422 and "does not match" in bad.json()["message"]


def test_service_cluster_ips_are_unique(api: Cluster) -> None:
    path = "/api/v1/namespaces/default/services"

    def service(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
        }

    with api.http() as http:
        ips = {http.post(path, json=service(f"s{n}")).json()["spec"]["clusterIP"] for n in range(10)}
        assert len(ips) == 10 and all(ip.startswith("127.96.") for ip in ips)
        taken = sorted(ips)[0]
        clash = http.post(path, json=service("clash", clusterIP=taken))
        assert clash.status_code == 422 and "already allocated" in clash.json()["message"]
        as_number = int(ipaddress.ip_address(taken))  # the same address spelled as a JSON number
        number = http.post(path, json=service("number", clusterIP=as_number))
        assert number.status_code == 422 and "spec.clusterIP: Invalid value" in number.json()["message"]
        node_port = http.post(path, json=service("np", type="NodePort")).json()["spec"]["ports"][0]["nodePort"]
        assert 30000 <= node_port <= 32767
        headless = http.post(path, json=service("headless", clusterIP="None")).json()
        assert headless["spec"]["clusterIP"] == "None"
        http.delete(f"{path}/s0")


def test_request_rate_and_watch_limits_answer_429(cluster: Cluster) -> None:
    cluster.start_apiserver("--max-requests-per-second", "2", "--max-requests-burst", "5",
                            "--max-watches-per-user", "1")
    with cluster.http() as http:
        codes = [http.get(PODS).status_code for _ in range(12)]
        assert codes[:5] == [200] * 5 and 429 in codes
        limited = http.get(PODS)
        if limited.status_code == 429:
            assert int(limited.headers["Retry-After"]) >= 1
            assert limited.json()["reason"] == "TooManyRequests"
    with cluster.http(token="scheduler") as component:
        assert all(component.get(PODS).status_code == 200 for _ in range(20))


def test_service_allocations_follow_updates_and_failed_creates(api: Cluster) -> None:
    path = "/api/v1/namespaces/default/services"
    merge = {"Content-Type": "application/merge-patch+json"}

    def service(name: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}

    with api.http() as http:
        first = http.post(path, json=service("a", clusterIP="127.96.1.1"))
        assert first.status_code == 201
        assert http.post(path, json=service("a", clusterIP="127.96.1.1")).status_code == 409
        # The failed duplicate must not have freed the original's address.
        taken = http.post(path, json=service("b", clusterIP="127.96.1.1"))
        assert taken.status_code == 422 and "already allocated" in taken.text

        upgraded = http.patch(f"{path}/a", content=json.dumps({"spec": {"type": "NodePort"}}), headers=merge)
        assert upgraded.status_code == 200, upgraded.text
        node_port = upgraded.json()["spec"]["ports"][0]["nodePort"]
        assert 30000 <= node_port <= 32767
        other = http.post(path, json=service("c", type="NodePort")).json()
        stolen = http.patch(f"{path}/c", headers=merge, content=json.dumps(
            {"spec": {"ports": [{"port": 80, "nodePort": node_port}]}}))
        assert stolen.status_code == 422 and "already allocated" in stolen.text
        twice = http.post(path, json=service("d", type="NodePort", ports=[
            {"name": "x", "port": 80, "nodePort": 31001}, {"name": "y", "port": 81, "nodePort": 31001}]))
        assert twice.status_code == 422 and "Duplicate value" in twice.text

        back = http.put(f"{path}/a", json={**http.get(f"{path}/a").json(), "spec": {
            **service("a")["spec"], "clusterIP": "127.96.1.1", "type": "ClusterIP"}})
        assert back.status_code == 200, back.text
        # Its node port is free again: another Service can ask for it.
        reuse = http.patch(f"{path}/c", headers=merge, content=json.dumps(
            {"spec": {"ports": [{"port": 80, "nodePort": node_port}]}}))
        assert reuse.status_code == 200, reuse.text
        assert other["spec"]["ports"][0]["nodePort"] != node_port


def test_watch_list_sends_initial_events_then_a_bookmark(api: Cluster) -> None:
    """client-go's watch-list: current objects as ADDED, then a bookmark marking their end."""
    with api.http() as http:
        for name in ("w1", "w2"):
            http.post(PODS, json=pod(name))
        events: list[dict[str, Any]] = []
        _watch(http, PODS, {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
                            "resourceVersionMatch": "NotOlderThan"}, events, 3)
        assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
        bookmark = events[2]["object"]["metadata"]
        assert bookmark["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert int(bookmark["resourceVersion"]) >= 2
        refused = http.get(PODS, params={"watch": "true", "sendInitialEvents": "true"})
        assert refused.status_code == 422
