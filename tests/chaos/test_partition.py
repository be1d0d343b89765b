"""A real network partition between a node and Redis, and what a user sees across it.

Node ``pa``'s kubelet reaches Redis only through a ``FaultProxy``; node ``pb``'s directly.
The partition is a blackhole (open connections go silent, new ones are accepted and
never answered), and the heal leaves the connections of the partition silent for ever
(the strictest case: only a kubelet whose reads have deadlines recovers). The
expectations are Kubernetes': the node's pods keep running while it is cut off; the
control plane marks it unreachable, evicts its pods and the Deployment replaces them on
``pb``; once the partition heals the kubelet reconnects, sees its pods gone and stops
them, so that exactly the desired number of copies runs. Figures are printed (``-s``).
"""

from __future__ import annotations

import calendar
import os
import random
import signal
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from shared import redis_server
from tests.harness import Cluster, Process, wait_for
from tests.support_faults import (
    KUBELET_FLAGS,
    deployment,
    deployment_settled,
    get_json,
    items,
    node_index,
    node_tokens,
    start_apiserver,
    start_kubelet,
    start_scheduler,
    wait_http_ready,
)
from tests.support_partition import FaultProxy, Stale

A, B = "pa", "pb"
REPLICAS = 3
GRACE_S = 4  # --node-grace-seconds: silence before a node is judged unreachable
EVICTION_S = 2  # --eviction-seconds: how long pods tolerate the unreachable taint by default
UNREACHABLE = "node.kubernetes.io/unreachable"


# --- the proxy on its own ----------------------------------------------------------------


def _target(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.settimeout(0.5)
    return sock


def _ping(sock: socket.socket) -> bytes:
    sock.sendall(b"PING\r\n")
    return sock.recv(16)


def test_fault_proxy_blackholes_and_heals(redis_url: str) -> None:
    with FaultProxy(*_target(redis_url)) as proxy:
        before, survivor = _connect(proxy.port), _connect(proxy.port)
        assert _ping(before) == _ping(survivor) == b"+PONG\r\n"
        proxy.partition()
        with pytest.raises(TimeoutError):
            _ping(before)  # an open connection goes silent: no error, no answer
        cut_off = _connect(proxy.port)  # a new one is accepted...
        wait_for(lambda: proxy.counters.held_new == 1, timeout=5, message="the proxy holding it")
        with pytest.raises(TimeoutError):
            _ping(cut_off)  # ...and never answered
        proxy.heal(stale="resume")
        assert cut_off.recv(16) == b"+PONG\r\n"  # resume: what was sent meanwhile arrives
        assert before.recv(16) == b"+PONG\r\n"
        assert _ping(survivor) == b"+PONG\r\n"
        proxy.partition()
        proxy.heal(stale="blackhole")
        with pytest.raises(TimeoutError):
            _ping(survivor)  # blackhole: a connection of the partition stays silent for ever...
        fresh = _connect(proxy.port)
        assert _ping(fresh) == b"+PONG\r\n"  # ...while new ones work
        proxy.partition()
        held_before = proxy.counters.held_new
        held = _connect(proxy.port)
        wait_for(lambda: proxy.counters.held_new > held_before, timeout=5, message="the proxy holding it")
        proxy.heal(stale="close")
        for sock in (fresh, held):  # close: reset at heal time, open ones and those accepted meanwhile
            try:
                assert _ping(sock) == b""
            except (ConnectionResetError, BrokenPipeError):
                pass
            sock.close()
        assert _ping(_connect(proxy.port)) == b"+PONG\r\n"
        assert proxy.counters.held_new >= 1
    for sock in (before, survivor, cut_off):
        sock.close()


# --- the cluster -------------------------------------------------------------------------


def marker_processes(marker: str) -> dict[int, str]:
    """Live container processes (shims excluded) carrying ``marker``: pid -> pod name, from /proc."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if not any(marker.encode() in part for part in argv) or any(p.endswith(b"shim.py") for p in argv):
                continue
            if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            env = dict(v.split(b"=", 1) for v in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") if b"=" in v)
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        found[int(entry)] = env.get(b"HOSTNAME", b"?").decode()
    return found


def start_cm(cluster: Cluster, *, eviction_s: int = EVICTION_S) -> Process:
    port = redis_server.free_port()
    flags = ("--lease-ms", "2000", "--renew-ms", "500", "--node-grace-seconds", str(GRACE_S),
             "--eviction-seconds", str(eviction_s), "--workers", "2")
    process = cluster.start("controller-manager", "--identity", "cm-0", "--metrics-port", str(port), *flags,
                            token="controller-manager", name="cm-0")
    process.port = port
    wait_http_ready(process)
    return process


def start_kubelet_via(cluster: Cluster, node: str, redis_url: str) -> Process:
    """A kubelet with the real process runtime whose only way to Redis is ``redis_url``."""
    port = redis_server.free_port()
    index = node_index(node)
    process = cluster.start(
        "kubelet", "--node", node, "--runtime", "process", "--node-ip", f"127.10.{index}.1",
        "--pod-cidr", f"127.11.{index}.0/24", "--cpu", "4", "--memory", "8Gi", "--max-pods", "60",
        "--metrics-port", str(port), *KUBELET_FLAGS, token=f"node-{node}", name=f"kubelet-{node}",
        env={"REDKUBE_REDIS_URL": redis_url},
    )
    process.port = port
    wait_http_ready(process)
    return process


def node(cluster: Cluster, name: str) -> dict[str, Any]:
    body = get_json(cluster, f"/api/v1/nodes/{name}")
    assert body is not None, f"node {name} missing"
    return dict(body)


def ready_status(obj: dict[str, Any]) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return ""


def unreachable_taints(obj: dict[str, Any]) -> set[str]:
    return {t.get("effect") for t in (obj.get("spec") or {}).get("taints") or [] if t.get("key") == UNREACHABLE}


def pods_by_node(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {A: [], B: []}
    for pod in items(cluster, "pods", labelSelector="app=sleepy"):
        out.setdefault(pod["spec"].get("nodeName") or "", []).append(pod)
    return out


def cordon(cluster: Cluster, name: str, *, on: bool) -> None:
    cluster.kubectl("cordon" if on else "uncordon", name)


@pytest.mark.parametrize("stale", ["blackhole", "resume"])
def test_partitioned_node_is_replaced_and_stops_its_pods_after_heal(cluster: Cluster, stale: Stale) -> None:
    """``stale``: the connections of the partition stay silent for ever after the heal, or the bytes
    held during it are delivered late (TCP retransmission)."""
    node_tokens(cluster, A, B)
    start_apiserver(cluster, "api-0")
    start_scheduler(cluster, "sched-0")
    start_cm(cluster)
    with FaultProxy(*_target(cluster.redis_url)) as proxy:
        kubelet_a = start_kubelet_via(cluster, A, proxy.url())
        start_kubelet(cluster, B, runtime="process")
        wait_for(lambda: ready_status(node(cluster, A)) == "True" and ready_status(node(cluster, B)) == "True",
                 timeout=20, message="both nodes Ready")
        _scenario(cluster, proxy, kubelet_a, stale=stale)


def _scenario(cluster: Cluster, proxy: FaultProxy, kubelet_a: Process, *, stale: Stale) -> None:
    marker = f"0.{random.randrange(10**8, 10**9)}"  # `sleep 3600 0.NNN`: processes we can recognise
    body = deployment("sleepy", replicas=REPLICAS - 1, command=["sleep", "3600", marker])
    # Placement: two replicas on A (B cordoned), then the third on B (A cordoned).
    cordon(cluster, B, on=True)
    with cluster.http() as http:
        assert http.post("/apis/apps/v1/namespaces/default/deployments", json=body).status_code == 201
    wait_for(lambda: sum(p["status"].get("phase") == "Running" for p in pods_by_node(cluster)[A]) == REPLICAS - 1,
             timeout=30, interval=0.2, message=f"{REPLICAS - 1} pods Running on {A}")
    cordon(cluster, A, on=True)
    cordon(cluster, B, on=False)
    cluster.kubectl("scale", "deployment/sleepy", f"--replicas={REPLICAS}")
    wait_for(lambda: sum(p["status"].get("phase") == "Running" for p in pods_by_node(cluster)[B]) == 1,
             timeout=30, interval=0.2, message=f"one pod Running on {B}")
    cordon(cluster, A, on=False)

    on_a = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods_by_node(cluster)[A]}
    processes = wait_for(lambda: (lambda found: found if len(found) == REPLICAS else None)(marker_processes(marker)),
                         timeout=10, message=f"{REPLICAS} container processes")
    a_pids = {pid for pid, pod in processes.items() if pod in on_a}
    assert len(a_pids) == REPLICAS - 1, (processes, on_a)

    # --- the partition ---------------------------------------------------------------------
    cut = time.monotonic()
    proxy.partition()
    wait_for(lambda: ready_status(node(cluster, A)) == "Unknown"
             and unreachable_taints(node(cluster, A)) == {"NoSchedule", "NoExecute"},
             timeout=GRACE_S + 20, interval=0.2, message=f"{A} NotReady (Unknown) with the unreachable taints")
    unreachable_s = time.monotonic() - cut
    assert ready_status(node(cluster, B)) == "True"

    def replaced() -> bool:
        pods = pods_by_node(cluster)
        if pods[A] or len(pods[B]) != REPLICAS or any(p["status"].get("phase") != "Running" for p in pods[B]):
            return False
        dep = get_json(cluster, "/apis/apps/v1/namespaces/default/deployments/sleepy")
        return bool(dep) and deployment_settled(dep)

    wait_for(replaced, timeout=EVICTION_S + 30, interval=0.2,
             message=f"{A}'s pods evicted and the Deployment back to {REPLICAS} Running on {B}")
    replaced_s = time.monotonic() - cut
    names_now = {p["metadata"]["name"] for p in pods_by_node(cluster)[B]}
    assert not names_now & set(on_a)
    # Cut off, A's kubelet knows nothing of this: its pods keep running, and so does it.
    alive = set(marker_processes(marker))
    assert a_pids <= alive, f"{A}'s pods stopped during the partition: {a_pids - alive}"
    assert kubelet_a.alive(), kubelet_a.log()[-3000:]
    wait_for(lambda: len(marker_processes(marker)) == REPLICAS + len(a_pids), timeout=15,
             message="the replacements' processes on B beside A's originals")
    # Long enough for A's kubelet to give up on a silent connection and dial into the partition too.
    wait_for(lambda: proxy.counters.held_new >= 1, timeout=30, interval=0.2,
             message=f"{A}'s kubelet reconnecting during the partition")
    assert set(marker_processes(marker)) >= a_pids and kubelet_a.alive()
    partition_s = time.monotonic() - cut

    # --- the heal --------------------------------------------------------------------------
    healed = time.monotonic()
    proxy.heal(stale=stale)
    try:
        wait_for(lambda: not (a_pids & set(marker_processes(marker))), timeout=60, interval=0.2,
                 message=f"{A}'s kubelet stopping its replaced pods after the heal")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- kubelet {A} log ---\n{kubelet_a.log()[-4000:]}") from None
    stopped_s = time.monotonic() - healed
    wait_for(lambda: ready_status(node(cluster, A)) == "True" and not unreachable_taints(node(cluster, A)),
             timeout=30, interval=0.2, message=f"{A} Ready again and untainted")
    back_s = time.monotonic() - healed
    assert kubelet_a.alive() and kubelet_a.popen.returncode is None

    # Exactly the desired copies: REPLICAS pods, each with one process, none of A's left.
    final = pods_by_node(cluster)
    running = {p["metadata"]["name"] for p in final[B] + final[A] if p["status"].get("phase") == "Running"}
    assert len(running) == REPLICAS and not running & set(on_a), final
    wait_for(lambda: sorted(marker_processes(marker).values()) == sorted(running), timeout=10,
             message=f"one process per running pod (want {sorted(running)})")
    with cluster.http() as http:
        for name in on_a:
            assert http.get(f"/api/v1/namespaces/default/pods/{name}").status_code == 404
    figures = {
        "unreachable_after_partition_s": round(unreachable_s, 1),
        "replaced_after_partition_s": round(replaced_s, 1),
        "partition_lasted_s": round(partition_s, 1),
        "heal": stale,
        "replaced_pods_stopped_after_heal_s": round(stopped_s, 1),
        "node_ready_after_heal_s": round(back_s, 1),
        "proxy": vars(proxy.counters),
    }
    print("\n[partition] " + "\n[partition] ".join(f"{k}: {v}" for k, v in figures.items()))
    kubelet_a.popen.send_signal(signal.SIGTERM)
    assert kubelet_a.popen.wait(timeout=20) == 0, kubelet_a.log()[-3000:]


def pod_ready(pod: dict[str, Any]) -> str:
    return ready_status(pod)


def test_short_partition_keeps_the_pods_and_they_are_ready_again(cluster: Cluster) -> None:
    """Cut off for less than the pods' toleration: the node goes Unknown and its pods NotReady
    (Endpoints drop them), nothing is evicted; after the heal the same processes are Ready again."""
    node_tokens(cluster, A)
    start_apiserver(cluster, "api-0")
    start_scheduler(cluster, "sched-0")
    start_cm(cluster, eviction_s=300)
    marker = f"0.{random.randrange(10**8, 10**9)}"
    with FaultProxy(*_target(cluster.redis_url)) as proxy:
        kubelet_a = start_kubelet_via(cluster, A, proxy.url())
        with cluster.http() as http:
            body = deployment("sleepy", replicas=2, command=["sleep", "3600", marker])
            assert http.post("/apis/apps/v1/namespaces/default/deployments", json=body).status_code == 201
        wait_for(lambda: [pod_ready(p) for p in pods_by_node(cluster)[A]] == ["True", "True"], timeout=30,
                 interval=0.2, message="two pods Ready on A")
        before = {p["metadata"]["uid"] for p in pods_by_node(cluster)[A]}
        pids = set(wait_for(lambda: (lambda f: f if len(f) == 2 else None)(marker_processes(marker)), timeout=10,
                            message="two container processes"))
        cut = time.monotonic()
        proxy.partition()
        wait_for(lambda: ready_status(node(cluster, A)) == "Unknown"
                 and [pod_ready(p) for p in pods_by_node(cluster)[A]] == ["False", "False"],
                 timeout=GRACE_S + 20, interval=0.2, message="A Unknown and its pods marked NotReady")
        wait_for(lambda: proxy.counters.held_new >= 1, timeout=30, interval=0.2,
                 message="A's kubelet reconnecting during the partition")
        healed, healed_at = time.monotonic(), time.time()
        proxy.heal(stale="blackhole")
        try:
            wait_for(lambda: ready_status(node(cluster, A)) == "True"
                     and [pod_ready(p) for p in pods_by_node(cluster)[A]] == ["True", "True"],
                     timeout=40, interval=0.2, message="A Ready again with its pods Ready")
        except AssertionError as exc:
            pods = [(p["metadata"]["name"], p["status"].get("conditions")) for p in pods_by_node(cluster)[A]]
            raise AssertionError(f"{exc}: {pods}\n{kubelet_a.log()[-3000:]}") from None
        ready_s = time.monotonic() - healed
        back = next(c for c in node(cluster, A)["status"]["conditions"] if c["type"] == "Ready")
        assert calendar.timegm(time.strptime(back["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ")) >= healed_at - 1, back
        for pod in pods_by_node(cluster)[A]:
            ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
            assert calendar.timegm(time.strptime(ready["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ")) >= healed_at - 1
        assert {p["metadata"]["uid"] for p in pods_by_node(cluster)[A]} == before  # nothing evicted or replaced
        assert set(marker_processes(marker)) == pids  # the same processes, never restarted
        print(f"\n[partition] short cut of {healed - cut:.1f}s: pods Ready again {ready_s:.1f}s after the heal")
