"""Redis restarts: nothing acknowledged is lost (AOF), the API answers 503 meanwhile,
and every part of the API server resumes on its own."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from shared import redis_server
from tests.harness import Cluster, wait_for

PODS = "/api/v1/namespaces/default/pods"


def pod(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_api_survives_a_redis_restart(tmp_path: Path) -> None:
    port = redis_server.free_port()
    data = tmp_path / "redis"
    proc = redis_server.start(port=port, data_dir=data, persistent=True)
    cluster = Cluster(f"redis://127.0.0.1:{port}/0", tmp_path / "home")
    try:
        api = cluster.start_apiserver()
        with cluster.http() as http:
            for n in range(20):
                assert http.post(PODS, json=pod(f"p{n}")).status_code == 201
            proc.terminate()  # SIGTERM: redis flushes its AOF and exits
            proc.wait(timeout=10)
            down = http.get(PODS)
            assert down.status_code == 503
            assert down.json()["reason"] == "ServiceUnavailable" and down.headers["Retry-After"] == "1"
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 503
            assert api.alive()

            proc = redis_server.start(port=port, data_dir=data, persistent=True)
            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=30, message="ready again")
            names = {p["metadata"]["name"] for p in http.get(PODS).json()["items"]}
            assert names == {f"p{n}" for n in range(20)}
            assert http.post(PODS, json=pod("after")).status_code == 201
        reply = cluster.bus_request({"verb": "create", "resource": "pods", "namespace": "default",
                                     "body": json.dumps(pod("via-bus")), "token": cluster.token()}, timeout=30)
        assert reply[b"code"] == b"201"
        with httpx.Client(base_url=cluster.server, verify=cluster.ssl_context(),
                          headers={"Authorization": f"Bearer {cluster.token()}"}) as http:
            assert http.get(f"{PODS}/via-bus").status_code == 200
        assert "task crashed" not in api.log() and "redis unavailable; retrying" in api.log()
    finally:
        cluster.stop()
        proc.terminate()
        proc.wait(timeout=10)
