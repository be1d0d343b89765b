"""The request stream: requests typed by hand, dead letters, redelivery, replicas."""

from __future__ import annotations

import json
import threading
import uuid

from shared import codec
from tests.harness import Cluster, wait_for

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "bus-pod"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}


def test_create_by_hand_like_redis_cli(api: Cluster) -> None:
    reply = api.bus_request(
        {"verb": "create", "resource": "pods", "namespace": "default", "body": json.dumps(POD), "token": api.token()}
    )
    assert reply[b"code"] == b"201"
    body = json.loads(reply[b"body"])
    assert body["metadata"]["name"] == "bus-pod" and body["status"]["phase"] == "Pending"
    with api.http() as http:
        assert http.get("/api/v1/namespaces/default/pods/bus-pod").status_code == 200
    got = api.bus_request({"verb": "get", "resource": "pods", "name": "bus-pod", "token": api.token()})
    assert got[b"code"] == b"200"
    listed = api.bus_request(
        {
            "verb": "list",
            "resource": "pods",
            "namespace": "default",
            "token": api.token(),
            "params": json.dumps({"labelSelector": "app=none"}),
        }
    )
    assert json.loads(listed[b"body"])["items"] == []


def test_msgpack_requests(api: Cluster) -> None:
    reply = api.bus_request(
        {
            "verb": "create",
            "resource": "pods",
            "namespace": "default",
            "ct": "msgpack",
            "body": codec.pack(POD),
            "token": api.token(),
        }
    )
    assert reply[b"code"] == b"201" and reply[b"ct"] == b"msgpack"
    assert codec.unpack(reply[b"body"])["metadata"]["name"] == "bus-pod"


def test_errors_are_answered_and_dead_lettered(api: Cluster) -> None:
    bad_token = api.bus_request({"verb": "get", "resource": "pods", "name": "x", "token": "nope"})
    assert bad_token[b"code"] == b"401"
    not_found = api.bus_request({"verb": "get", "resource": "pods", "name": "x", "token": api.token()})
    assert json.loads(not_found[b"body"])["reason"] == "NotFound"
    unknown = api.bus_request({"verb": "list", "resource": "widgets", "token": api.token()})
    assert unknown[b"code"] == b"404"
    malformed = api.bus_request({"verb": "frobnicate", "resource": "pods", "token": api.token()})
    assert malformed[b"code"] == b"400"
    invalid = api.bus_request(
        {
            "verb": "create",
            "resource": "pods",
            "token": api.token(),
            "body": json.dumps({"metadata": {"name": "x"}, "spec": {"containers": []}}),
        }
    )
    assert invalid[b"code"] == b"422"
    # Fire-and-forget requests have nobody to answer: errors land in rk:dead with the reason.
    api.redis.xadd(api.keys.requests, {"verb": "create", "resource": "pods", "body": "{bad json", "token": api.token()})
    api.redis.xadd(api.keys.requests, {"nonsense": "\xff"})
    dead = wait_for(lambda: (d := api.redis.xrange(api.keys.dead)) and len(d) >= 3 and d, message="dead letters")
    reasons = [fields[b"reason"].decode() for _id, fields in dead]
    assert any("malformed request: unknown or missing verb 'frobnicate'" in r for r in reasons)
    assert any("cannot decode body: invalid JSON" in r for r in reasons)
    assert any("unknown or missing verb None" in r for r in reasons)
    assert all(fields.get(b"f:token", b"<redacted>") == b"<redacted>" for _id, fields in dead)
    assert api.processes[0].alive()


def test_a_reply_cannot_be_aimed_at_the_store(api: Cluster) -> None:
    """The API server writes any key: a request naming a store stream as its reply is refused."""
    services = api.keys.kind("services")
    api.redis.xadd(api.keys.requests, {"verb": "list", "resource": "services", "token": api.token(),
                                       "reply": services.watch})
    dead = wait_for(lambda: [f for _i, f in api.redis.xrange(api.keys.dead) if b"is not under" in f[b"reason"]],
                    message="the refused reply stream in rk:dead")
    assert services.watch.encode() in dead[0][b"reason"]
    assert api.redis.exists(services.watch) == 0  # nothing was appended to the watch stream
    assert api.processes[0].alive()


def test_a_repeated_request_id_is_applied_once(api: Cluster) -> None:
    fields = {
        "id": "same-id",
        "verb": "create",
        "resource": "pods",
        "namespace": "default",
        "body": json.dumps(POD),
        "token": api.token(),
    }
    first = api.bus_request(dict(fields))
    second = api.bus_request(dict(fields))
    assert first[b"code"] == b"201" and second[b"code"] == b"200"
    added = [f for _id, f in api.redis.xrange(api.keys.kind("pods").watch) if f[b"type"] == b"ADDED"]
    assert len(added) == 1


def test_killed_replica_loses_no_request_and_applies_none_twice(cluster: Cluster) -> None:
    first = cluster.start_apiserver("--claim-idle-ms", "1000", consumer="api-a")
    cluster.start_apiserver("--claim-idle-ms", "1000", consumer="api-b")
    total = 400
    reply_stream = cluster.keys.reply(uuid.uuid4().hex)
    token = cluster.token()

    def send() -> None:
        for n in range(total):
            body = {**POD, "metadata": {"name": f"p{n}"}}
            cluster.redis.xadd(
                cluster.keys.requests,
                {
                    "id": f"req-{n}",
                    "verb": "create",
                    "resource": "pods",
                    "namespace": "default",
                    "body": json.dumps(body),
                    "token": token,
                    "reply": reply_stream,
                },
            )
            if n % 50 == 49:
                # Keep the requests in flight spread out, so the kill lands mid-way: wait for
                # replies to catch up with all but the last batch.
                wait_for(lambda n=n: cluster.redis.xlen(reply_stream) >= n - 100, timeout=60,
                         message="replies catching up")

    sender = threading.Thread(target=send)
    sender.start()
    wait_for(lambda: cluster.redis.xlen(reply_stream) > 40, message="first replies")
    first.popen.kill()  # kill -9 mid-way
    sender.join()

    def answered() -> set[str]:
        return {f[b"id"].decode() for _id, f in cluster.redis.xrange(reply_stream)}

    wait_for(lambda: len(answered()) == total, timeout=60, message="every request answered")
    with cluster.http(port=cluster.processes[1].port) as http:
        names = {p["metadata"]["name"] for p in http.get("/api/v1/namespaces/default/pods").json()["items"]}
    assert names == {f"p{n}" for n in range(total)}
    added = [f for _id, f in cluster.redis.xrange(cluster.keys.kind("pods").watch) if f[b"type"] == b"ADDED"]
    assert len(added) == total
    codes = {f[b"code"] for _id, f in cluster.redis.xrange(reply_stream)}
    assert codes <= {b"201", b"200"}
