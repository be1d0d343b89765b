"""Hostile input: random and malformed requests over HTTP and the bus, YAML bombs,
deep nesting, unicode. Every one is answered with a Status (never a 5xx), nothing
crashes, and the store holds only valid objects at the end."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.resources import RESOURCES
from tests.harness import Cluster, wait_for

PATHS = [
    "/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/x", "/api/v1/namespaces/default/pods/x/status",
    "/api/v1/namespaces/default/pods/x/binding", "/api/v1/nodes", "/api/v1/nodes/n", "/api/v1/namespaces",
    "/apis/apps/v1/namespaces/default/deployments", "/apis/apps/v1/namespaces/default/deployments/d/scale",
    "/api/v1/namespaces/default/services", "/apis/batch/v1/namespaces/default/jobs", "/api/v1/namespaces/default/pods/x/log",
    "/api/v1/namespaces/%00/pods", "/api/v1/namespaces/default/pods/" + "y" * 300, "/apis/nope/v1/things",
]
CONTENT_TYPES = ["application/json", "application/yaml", "application/merge-patch+json",
                 "application/json-patch+json", "application/strategic-merge-patch+json",
                 "application/apply-patch+yaml", "text/plain"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
pod_like = st.fixed_dictionaries({
    "apiVersion": st.sampled_from(["v1", "apps/v1", "", "v2"]),
    "kind": st.sampled_from(["Pod", "Deployment", "Node", "Service", "Job", ""]),
    "metadata": st.fixed_dictionaries({"name": st.text(max_size=12)}, optional={"labels": json_values,
                                                                                "namespace": st.text(max_size=5)}),
    "spec": json_values,
})


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]), path=st.sampled_from(PATHS),
       body=st.one_of(json_values, pod_like), ct=st.sampled_from(CONTENT_TYPES),
       query=st.dictionaries(st.sampled_from(["labelSelector", "fieldSelector", "limit", "continue",
                                              "resourceVersion", "gracePeriodSeconds", "propagationPolicy",
                                              "fieldValidation", "dryRun", "watch", "timeoutSeconds"]),
                             st.text(max_size=10), max_size=3))
def _random_http(api: Cluster, method: str, path: str, body: Any, ct: str, query: dict[str, str]) -> None:
    if query.get("watch"):
        query["timeoutSeconds"] = "1"
    with api.http() as http:
        response = http.request(method, path, params=query, content=json.dumps(body), headers={"Content-Type": ct},
                                timeout=20)
    assert response.status_code < 500, (method, path, ct, response.status_code, response.text[:300])
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        assert response.json()["kind"] == "Status"


def test_random_http_requests_never_break_the_server(api: Cluster) -> None:
    _random_http(api)  # hypothesis drives the api fixture's server
    assert api.processes[0].alive()
    assert_store_consistent(api)


def test_bombs_deep_nesting_and_unicode(api: Cluster) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8))
    pods = "/api/v1/namespaces/default/pods"
    with api.http() as http:
        response = http.post(pods, content=bomb, headers={"Content-Type": "application/yaml"})
        assert response.status_code == 413, response.text
        deep = "[" * 100_000 + "]" * 100_000
        assert http.post(pods, content=deep, headers={"Content-Type": "application/json"}).status_code == 400
        unicode_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ünïcødé"},
                       "spec": {"containers": [{"name": "c", "image": "x"}]}}
        invalid = http.post(pods, json=unicode_pod)
        assert invalid.status_code == 422 and "metadata.name" in invalid.text
        huge = {**unicode_pod, "metadata": {"name": "huge", "annotations": {"a": "x" * 300_000}}}
        assert http.post(pods, json=huge).status_code == 422
    assert api.processes[0].alive()


BUS_FIELDS = st.dictionaries(
    st.sampled_from(["verb", "resource", "namespace", "name", "body", "ct", "params", "token", "id",
                     "subresource", "content_type", "junk"]),
    st.one_of(st.text(max_size=30), st.binary(max_size=30),
              st.sampled_from(["create", "get", "list", "patch", "delete", "pods", "nodes", "msgpack", "json",
                               "{}", "[]", '{"metadata":{"name":"a"}}', "valid"])),
    min_size=1, max_size=8)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(entries=st.lists(BUS_FIELDS, min_size=30, max_size=60))
def _random_bus(api: Cluster, entries: list[dict[str, Any]]) -> None:
    token = api.token()
    for entry in entries:
        if entry.get("token") == "valid":
            entry["token"] = token
        api.redis.xadd(api.keys.requests, entry)

    def drained() -> bool:
        group = next(g for g in api.redis.xinfo_groups(api.keys.requests) if g["name"] == b"apiserver")
        last = api.redis.xinfo_stream(api.keys.requests)["last-generated-id"]
        return group["pending"] == 0 and group["last-delivered-id"] == last

    wait_for(drained, timeout=60, message="every entry handled")


def test_random_bus_entries_are_answered_or_dead_lettered(api: Cluster) -> None:
    _random_bus(api)
    assert api.processes[0].alive()
    assert api.redis.xlen(api.keys.dead) >= 1
    reply = api.bus_request({"verb": "list", "resource": "namespaces", "token": api.token()})
    assert reply[b"code"] == b"200"
    assert_store_consistent(api)


def assert_store_consistent(api: Cluster) -> None:
    """Every object of every kind is valid for its model, and its key matches its metadata."""
    with api.http() as http:
        for resource in RESOURCES:
            if "list" not in resource.verbs:
                continue  # reviews are answered, never stored
            prefix = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
            listing = http.get(f"{prefix}/{resource.plural}")
            assert listing.status_code == 200, listing.text
            for item in listing.json()["items"]:
                resource.model.model_validate(item)
                assert item["metadata"]["name"] and item["metadata"]["resourceVersion"]


def test_unique_prefix_keeps_clusters_apart(api: Cluster) -> None:
    other = f"rk-{uuid.uuid4().hex[:6]}"
    assert not api.redis.exists(f"{other}:{{pods}}:obj")
