"""Test support for the scaling and chaos tests: a whole cluster, a steady load, invariants.

``BusLoad`` is the user: a thread that writes through the request stream (as every
component does), each request with its own id and one reply stream, so that at the end
the test can say of every request whether it was answered (2xx or a definite error) or
lost. ``check_invariants`` replays the watch streams from Redis, so properties are
checked over every state the cluster went through, not only the ones a test sampled.
"""

from __future__ import annotations

import calendar
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from shared import codec, pki, quantity, redis_server
from tests.harness import Cluster, Process, wait_for

NS = "default"
CM_FLAGS = ("--lease-ms", "2000", "--renew-ms", "500", "--node-grace-seconds", "3600", "--eviction-seconds", "3600",
            "--workers", "2")
SCHED_FLAGS = ("--initial-backoff-seconds", "0.2", "--max-backoff-seconds", "1", "--unschedulable-flush-seconds", "3",
               "--handoff-seconds", "1", "--peer-renew-seconds", "0.5", "--peer-lease-seconds", "3")
KUBELET_FLAGS = ("--backoff-seconds", "0.5", "--backoff-max-seconds", "2", "--lease-seconds", "1",
                 "--node-status-seconds", "2")
MAX_SURGE = 1


# --- processes ----------------------------------------------------------------------------


def wait_http_ready(process: Process, *, timeout: float = 30.0) -> None:
    def ready() -> bool:
        if not process.alive():
            raise AssertionError(f"{process.name} exited:\n{process.log()[-3000:]}")
        return httpx.get(f"http://127.0.0.1:{process.port}/readyz", timeout=2).status_code == 200

    wait_for(ready, timeout=timeout, message=f"{process.name} /readyz")


def start_apiserver(cluster: Cluster, name: str, *extra: str) -> Process:
    """An API server replica on the cluster's shared port (SO_REUSEPORT), with its own consumer."""
    return cluster.start_apiserver("--claim-idle-ms", "1000", *extra, consumer=name, port=cluster.api_port or None)


def start_scheduler(cluster: Cluster, name: str) -> Process:
    port = redis_server.free_port()
    process = cluster.start("scheduler", "--identity", name, "--metrics-port", str(port), *SCHED_FLAGS,
                            token="scheduler", name=name)
    process.port = port
    wait_http_ready(process)
    return process


def start_controller_manager(cluster: Cluster, name: str) -> Process:
    port = redis_server.free_port()
    process = cluster.start("controller-manager", "--identity", name, "--metrics-port", str(port), *CM_FLAGS,
                            token="controller-manager", name=name)
    process.port = port
    wait_http_ready(process)
    return process


def leader(cluster: Cluster) -> str | None:
    value = cluster.redis.get(cluster.keys.leader("controller-manager"))
    return value.decode() if value else None


def node_index(node: str) -> int:
    return 30 + sum(ord(c) for c in node) % 200


def start_kubelet(cluster: Cluster, node: str, *, runtime: str = "simulated", wait: bool = True) -> Process:
    port = redis_server.free_port()
    index = node_index(node)
    process = cluster.start(
        "kubelet", "--node", node, "--runtime", runtime, "--node-ip", f"127.10.{index}.1",
        "--pod-cidr", f"127.11.{index}.0/24", "--cpu", "4", "--memory", "8Gi", "--max-pods", "60",
        "--metrics-port", str(port), *KUBELET_FLAGS, token=f"node-{node}", name=f"kubelet-{node}",
    )
    process.port = port
    if wait:
        wait_http_ready(process)
    return process


def start_proxy(cluster: Cluster, node: str) -> Process:
    port = redis_server.free_port()
    process = cluster.start(
        "proxy", "--node", node, "--node-ip", f"127.10.{node_index(node)}.1", "--metrics-port", str(port),
        "--connect-timeout", "0.5", "--listen-retry-seconds", "0.2", "--listen-retry-max-seconds", "1",
        token="proxy", name=f"proxy-{node}",
    )
    process.port = port
    wait_http_ready(process)
    return process


def node_tokens(cluster: Cluster, *nodes: str) -> None:
    """Node tokens must exist before the first API server reads the token file."""
    for node in nodes:
        pki.ensure_node_token(cluster.identity, node)


# --- reading the cluster (robust to a replica dying under the connection) ------------------


def get_json(cluster: Cluster, path: str, **params: str) -> Any:
    for attempt in range(10):
        try:
            with cluster.http() as http:
                response = http.get(path, params=params or None, timeout=10)
            if response.status_code == 200:
                return response.json()
            if response.status_code == 404:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.05 * (attempt + 1))
    raise AssertionError(f"GET {path} kept failing")


def items(cluster: Cluster, plural: str, *, group: str = "api/v1", **params: str) -> list[dict[str, Any]]:
    path = f"/{group}/namespaces/{NS}/{plural}" if plural not in ("nodes",) else f"/{group}/{plural}"
    body = get_json(cluster, path, **params)
    return list(body["items"]) if body else []


def deployment(name: str, *, replicas: int, cpu: str = "50m", command: list[str] | None = None,
               labels: dict[str, str] | None = None, pod_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": command or ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [container], "terminationGracePeriodSeconds": 1,
                                       **(pod_spec or {})}}},
    }


def job(name: str, *, completions: int, parallelism: int, command: list[str],
        pod_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "command": command,
                 "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 6,
                 "template": {"metadata": {"labels": {"job": name}},
                              "spec": {"restartPolicy": "Never", "containers": [container], **(pod_spec or {})}}},
    }


def load_pod(name: str, command: list[str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "load"}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": command or ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}],
                     "terminationGracePeriodSeconds": 1}}


# --- the load --------------------------------------------------------------------------------


@dataclass
class Sent:
    op: str
    key: str
    at: float
    code: int | None = None
    answered_at: float | None = None
    replies: int = 0


@dataclass
class BusLoad:
    """Creates and deletes pods, scales Deployments, creates Jobs and Deployments, through the bus.

    ``plan(n)`` returns the n-th operation (or None to skip a beat); by default a mix of
    pod creates/deletes and scaling of the Deployment ``scale_target``.
    """

    cluster: Cluster
    interval: float = 0.08
    scale_target: str | None = None
    scale_range: tuple[int, int] = (2, 5)
    scale_every: int = 30
    job_every: int = 0
    job_pod_spec: dict[str, Any] | None = None
    job_command: list[str] = field(default_factory=lambda: ["true"])
    deployment_every: int = 0
    deployment_pod_spec: dict[str, Any] | None = None
    max_load_pods: int = 6
    pod_command: list[str] = field(default_factory=lambda: ["sleep", "3600"])
    sent: dict[str, Sent] = field(default_factory=dict)
    send_failures: list[tuple[str, float]] = field(default_factory=list)
    created_jobs: list[str] = field(default_factory=list)
    scale_history: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reply_stream = self.cluster.keys.reply(f"load-{uuid.uuid4().hex[:8]}")
        self.token = self.cluster.token()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._live_pods: list[str] = []
        self._deployments: list[str] = []
        self._threads = [threading.Thread(target=self._send_loop, name="load-send", daemon=True),
                         threading.Thread(target=self._reply_loop, name="load-reply", daemon=True)]
        self._reply_stop = threading.Event()

    def __enter__(self) -> BusLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, *, drain: float = 40.0) -> None:
        """Stop sending, then wait (bounded) for the replies still due."""
        self._stop.set()
        self._threads[0].join(timeout=20)
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and self.unanswered():
            time.sleep(0.2)
        self._reply_stop.set()
        self._threads[1].join(timeout=10)

    # counters
    def count(self) -> int:
        return len(self.sent)

    def answered(self) -> int:
        with self._lock:
            return sum(1 for s in self.sent.values() if s.code is not None)

    def unanswered(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent.values() if s.code is None]

    def duplicated_replies(self) -> int:
        with self._lock:
            return sum(1 for s in self.sent.values() if s.replies > 1)

    def codes(self) -> Counter[int]:
        with self._lock:
            return Counter(s.code for s in self.sent.values() if s.code is not None)

    def failed_between(self, start: float, end: float) -> int:
        """Requests sent in [start, end) answered with an error, or never sent (Redis down)."""
        with self._lock:
            errors = sum(1 for s in self.sent.values() if start <= s.at < end and s.code is not None and s.code >= 300)
        return errors + sum(1 for _op, at in self.send_failures if start <= at < end)

    def sent_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for s in self.sent.values() if start <= s.at < end) + sum(
                1 for _op, at in self.send_failures if start <= at < end)

    def wait_progress(self, answers: int, *, timeout: float = 30.0) -> None:
        """Wait until ``answers`` more requests have been answered (the load is flowing)."""
        target = self.answered() + answers
        wait_for(lambda: self.answered() >= target, timeout=timeout, interval=0.1, message=f"{answers} more answers")

    # internals
    def _send(self, client: redis.Redis, op: str, key: str, fields: dict[str, Any]) -> str | None:
        request_id = uuid.uuid4().hex
        entry = {"id": request_id, "token": self.token, "reply": self.reply_stream, **fields}
        if "body" in entry:
            entry["body"] = json.dumps(entry["body"])
        with self._lock:
            self.sent[request_id] = Sent(op, key, time.monotonic())
        try:
            client.xadd(self.cluster.keys.requests, entry)
        except redis.RedisError:
            with self._lock:
                del self.sent[request_id]
            self.send_failures.append((op, time.monotonic()))
            return None
        return request_id

    def _send_loop(self) -> None:
        client = redis.Redis.from_url(self.cluster.redis_url, socket_timeout=5)
        n = 0
        pending_pods: list[tuple[str, str]] = []
        while not self._stop.is_set():
            n += 1
            # Pods: create one; once its create is confirmed, it may be deleted later.
            name = f"ld-{n}"
            rid = self._send(client, "create-pod", f"{NS}/{name}",
                             {"verb": "create", "resource": "pods", "namespace": NS, "body": load_pod(name, self.pod_command)})
            if rid:
                pending_pods.append((name, rid))
            for pname, prid in list(pending_pods):
                code = self.sent[prid].code if prid in self.sent else None
                if code is not None:
                    pending_pods.remove((pname, prid))
                    if 200 <= code < 300:
                        self._live_pods.append(pname)
            while len(self._live_pods) > self.max_load_pods:
                victim = self._live_pods.pop(0)
                self._send(client, "delete-pod", f"{NS}/{victim}",
                           {"verb": "delete", "resource": "pods", "namespace": NS, "name": victim})
            if self.scale_target and n % self.scale_every == 0:
                low, high = self.scale_range
                replicas = low + (n // self.scale_every) % (high - low + 1)
                self.scale_history.append(replicas)
                self._send(client, "scale", f"{NS}/{self.scale_target}",
                           {"verb": "patch", "resource": "deployments", "namespace": NS, "name": self.scale_target,
                            "content_type": "application/merge-patch+json", "body": {"spec": {"replicas": replicas}}})
            if self.job_every and n % self.job_every == 0:
                jname = f"job-{n}"
                body = job(jname, completions=2, parallelism=2, command=self.job_command,
                           pod_spec=self.job_pod_spec)
                if self._send(client, "create-job", f"{NS}/{jname}",
                              {"verb": "create", "resource": "jobs", "namespace": NS, "body": body}):
                    self.created_jobs.append(jname)
            if self.deployment_every and n % self.deployment_every == 0:
                dname = f"dep-{n}"
                self._send(client, "create-deployment", f"{NS}/{dname}",
                           {"verb": "create", "resource": "deployments", "namespace": NS,
                            "body": deployment(dname, replicas=1, cpu="20m", labels={"app": "dep", "dep": dname},
                                               pod_spec=self.deployment_pod_spec, command=self.pod_command)})
                self._deployments.append(dname)
                if len(self._deployments) > 2:
                    old = self._deployments.pop(0)
                    self._send(client, "delete-deployment", f"{NS}/{old}",
                               {"verb": "delete", "resource": "deployments", "namespace": NS, "name": old})
            self._stop.wait(self.interval)
        client.close()

    def _reply_loop(self) -> None:
        client = redis.Redis.from_url(self.cluster.redis_url, socket_timeout=5)
        last = "0-0"
        while not self._reply_stop.is_set():
            try:
                result = client.xread({self.reply_stream: last}, block=200, count=500) or []
            except redis.RedisError:
                time.sleep(0.2)
                continue
            for _stream, entries in result:
                for entry_id, values in entries:
                    last = entry_id
                    request_id = values.get(b"id", b"").decode()
                    with self._lock:
                        sent = self.sent.get(request_id)
                        if sent is None:
                            continue
                        sent.replies += 1
                        if sent.code is None:
                            sent.code = int(values[b"code"])
                            sent.answered_at = time.monotonic()
        client.close()


# --- invariants ------------------------------------------------------------------------------


def stream_events(cluster: Cluster, stream: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for _id, fields in cluster.redis.xrange(stream):
        obj = codec.unpack(fields[b"obj"]) if fields.get(b"obj") else {}
        out.append((fields[b"type"].decode(), obj))
    return out


def owner_uid(obj: dict[str, Any], kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return str(ref.get("uid"))
    return None


def check_no_double_apply(cluster: Cluster, plurals: tuple[str, ...] = ("pods", "deployments", "replicasets", "jobs")
                          ) -> dict[str, int]:
    """Each object (by uid) is ADDED once in its kind's watch stream, and no name is ADDED twice
    while it exists (a name comes back only after a DELETED)."""
    counts = {}
    for plural in plurals:
        added_uid: Counter[str] = Counter()
        alive: set[str] = set()
        for kind, obj in stream_events(cluster, cluster.keys.kind(plural).watch):
            meta = obj.get("metadata") or {}
            key = f"{meta.get('namespace', '')}/{meta.get('name')}"
            if kind == "ADDED":
                added_uid[meta.get("uid", key)] += 1
                assert key not in alive, f"{plural} {key} ADDED twice without a DELETED between"
                alive.add(key)
            elif kind == "DELETED":
                alive.discard(key)
        twice = [uid for uid, n in added_uid.items() if n > 1]
        assert not twice, f"{plural} ADDED more than once: {twice[:5]}"
        counts[plural] = sum(added_uid.values())
    return counts


def check_bound_once(cluster: Cluster, nodes: list[str]) -> int:
    """Every pod that reached a node's stream did so as ADDED on exactly one node, and bound there."""
    seen: Counter[str] = Counter()
    for node in nodes:
        for kind, obj in stream_events(cluster, cluster.keys.kind("pods").node_stream(node)):
            if kind == "ADDED":
                assert obj["spec"].get("nodeName") == node, (node, obj["metadata"]["name"])
                seen[obj["metadata"]["uid"]] += 1
    twice = [uid for uid, n in seen.items() if n > 1]
    assert not twice, f"pods ADDED on more than one node stream: {twice[:5]}"
    # And in the main stream, a pod's nodeName never changes once set.
    bound: dict[str, str] = {}
    for _kind, obj in stream_events(cluster, cluster.keys.kind("pods").watch):
        node = (obj.get("spec") or {}).get("nodeName")
        uid = (obj.get("metadata") or {}).get("uid")
        if node and uid:
            assert bound.setdefault(uid, node) == node, f"pod {obj['metadata']['name']} bound twice"
    return len(seen)


def check_not_overcommitted(cluster: Cluster) -> None:
    nodes = items(cluster, "nodes")
    pods = [p for p in items(cluster, "pods") if p["status"].get("phase") not in ("Succeeded", "Failed")]
    for node in nodes:
        name = node["metadata"]["name"]
        allocatable = node["status"]["allocatable"]
        placed = [p for p in pods if p["spec"].get("nodeName") == name]
        cpu = sum(quantity.milli(((c.get("resources") or {}).get("requests") or {}).get("cpu", "0"))
                  for p in placed for c in p["spec"]["containers"])
        memory = sum(quantity.whole(((c.get("resources") or {}).get("requests") or {}).get("memory", "0"))
                     for p in placed for c in p["spec"]["containers"])
        assert cpu <= quantity.milli(allocatable["cpu"]), (name, cpu)
        assert memory <= quantity.whole(allocatable["memory"]), (name, memory)
        assert len(placed) <= int(allocatable["pods"]), (name, len(placed))


def check_controllers_acted_once(cluster: Cluster) -> dict[str, int]:
    """Replays the pods stream: a ReplicaSet never had more live pods than the most it ever
    wanted + maxSurge, and a Job never had more succeeded pods than its completions."""
    desired: dict[str, int] = defaultdict(int)
    for _kind, rs in stream_events(cluster, cluster.keys.kind("replicasets").watch):
        uid = rs["metadata"]["uid"]
        desired[uid] = max(desired[uid], int(rs["spec"].get("replicas") or 0))
    completions: dict[str, int] = {}
    for _kind, jb in stream_events(cluster, cluster.keys.kind("jobs").watch):
        completions[jb["metadata"]["uid"]] = int(jb["spec"].get("completions") or 1)
    live: dict[str, set[str]] = defaultdict(set)
    succeeded: dict[str, set[str]] = defaultdict(set)
    peak: dict[str, int] = defaultdict(int)
    for kind, pod in stream_events(cluster, cluster.keys.kind("pods").watch):
        uid = pod["metadata"]["uid"]
        rs = owner_uid(pod, "ReplicaSet")
        if rs:
            if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                live[rs].discard(uid)
            else:
                live[rs].add(uid)
            peak[rs] = max(peak[rs], len(live[rs]))
            assert len(live[rs]) <= desired[rs] + MAX_SURGE, (
                f"ReplicaSet {rs} had {len(live[rs])} live pods, wanted at most {desired[rs]}")
        jb = owner_uid(pod, "Job")
        if jb and (pod.get("status") or {}).get("phase") == "Succeeded":
            succeeded[jb].add(uid)
            assert len(succeeded[jb]) <= completions.get(jb, 1), f"Job {jb} has {len(succeeded[jb])} succeeded pods"
    return {"replicasets": len(peak), "jobs_with_successes": len(succeeded)}


def check_all(cluster: Cluster, nodes: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {"added": check_no_double_apply(cluster)}
    figures["pods_on_nodes"] = check_bound_once(cluster, nodes)
    check_not_overcommitted(cluster)
    figures.update(check_controllers_acted_once(cluster))
    return figures


# --- convergence -----------------------------------------------------------------------------


def deployment_settled(dep: dict[str, Any]) -> bool:
    spec, status = dep["spec"], dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (int(status.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0)
            and int(status.get("availableReplicas") or 0) == want and int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want)


def converged(cluster: Cluster, *, deployments: tuple[str, ...] = (), settle: float = 0.0) -> bool:
    """The user's view: named Deployments available at their desired size, and every pod that is
    not on its way out (and older than ``settle`` s, under load) bound and Running or done."""
    for name in deployments:
        dep = get_json(cluster, f"/apis/apps/v1/namespaces/{NS}/deployments/{name}")
        if not dep or not deployment_settled(dep):
            return False
    pods = items(cluster, "pods")
    cutoff = time.time() - settle
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        created = calendar.timegm(time.strptime(pod["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        if settle and created > cutoff:
            continue
        phase = (pod.get("status") or {}).get("phase")
        if not pod["spec"].get("nodeName") or phase not in ("Running", "Succeeded"):
            return False
    return True


def time_to(condition: Callable[[], bool], *, since: float, timeout: float, message: str) -> float:
    wait_for(condition, timeout=timeout, interval=0.2, message=message)
    return round(time.monotonic() - since, 2)


def final_state(cluster: Cluster) -> dict[str, Any]:
    """Every Deployment settled, every remaining pod bound and Running (or a finished Job pod)."""
    for dep in items(cluster, "deployments", group="apis/apps/v1"):
        assert deployment_settled(dep), dep["metadata"]["name"]
    pods = items(cluster, "pods")
    for pod in pods:
        assert not pod["metadata"].get("deletionTimestamp"), pod["metadata"]["name"]
        assert pod["spec"].get("nodeName"), pod["metadata"]["name"]
        assert pod["status"].get("phase") in ("Running", "Succeeded"), (pod["metadata"]["name"], pod["status"])
    return {"pods": len(pods)}


def jobs_complete(cluster: Cluster) -> bool:
    return all(int((j.get("status") or {}).get("succeeded") or 0) >= int(j["spec"].get("completions") or 1)
               for j in items(cluster, "jobs", group="apis/batch/v1"))


def container_processes(marker: str) -> Counter[str]:
    """How many live processes (shims excluded) carrying ``marker`` each pod has, by the
    HOSTNAME the kubelet gives a container (the pod's name)."""
    import psutil

    counts: Counter[str] = Counter()
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("status") == psutil.STATUS_ZOMBIE or not any(marker in part for part in cmdline):
            continue
        if any(part.endswith("shim.py") for part in cmdline):
            continue
        try:
            counts[proc.environ().get("HOSTNAME", "?")] += 1
        except psutil.Error:
            continue
    return counts


def unconverged(cluster: Cluster, *, deployments: tuple[str, ...] = ()) -> str:
    """What keeps ``converged`` false: for a failure message."""
    out = []
    for name in deployments:
        dep = get_json(cluster, f"/apis/apps/v1/namespaces/{NS}/deployments/{name}")
        if not dep or not deployment_settled(dep):
            out.append(f"deployment {name}: spec={dep and dep['spec'].get('replicas')} "
                       f"gen={dep and dep['metadata'].get('generation')} status={dep and dep.get('status')}")
    for pod in items(cluster, "pods"):
        if pod["metadata"].get("deletionTimestamp"):
            out.append(f"pod {pod['metadata']['name']} terminating on {pod['spec'].get('nodeName')}")
            continue
        phase = (pod.get("status") or {}).get("phase")
        if not pod["spec"].get("nodeName") or phase not in ("Running", "Succeeded"):
            out.append(f"pod {pod['metadata']['name']} node={pod['spec'].get('nodeName')} phase={phase} "
                       f"created={pod['metadata'].get('creationTimestamp')}")
    return "; ".join(out) or "converged now"


def nothing_terminating(cluster: Cluster) -> bool:
    """No pod is still on its way out (graceful deletions all confirmed by their kubelets), and the
    garbage collector is done: no pod outlives its ReplicaSet, no ReplicaSet its Deployment."""
    pods = items(cluster, "pods")
    if any(p["metadata"].get("deletionTimestamp") for p in pods):
        return False
    replicasets = items(cluster, "replicasets", group="apis/apps/v1")
    deployments = {d["metadata"]["uid"] for d in items(cluster, "deployments", group="apis/apps/v1")}
    rs_uids = {r["metadata"]["uid"] for r in replicasets}
    orphan_pods = [p for p in pods if (owner_uid(p, "ReplicaSet") or "") not in rs_uids | {""}]
    orphan_rs = [r for r in replicasets if (owner_uid(r, "Deployment") or "") not in deployments | {""}]
    return not orphan_pods and not orphan_rs
