"""Every Redis key and stream name redkube uses, in one place.

Each resource kind lives under its own hash tag (``rk:{pods}:...``) so that a Redis
Cluster can put each kind on a shard of its own, the way large Kubernetes clusters
split etcd per resource. Everything that must change atomically with a kind's
objects (its revision, watch stream, per-node streams, request-id records, the
node capacity accounting for pods) shares that kind's tag. Nobody else formats a key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindKeys:
    """The keys of one resource kind (``plural`` is the REST resource name)."""

    prefix: str
    plural: str

    @property
    def _base(self) -> str:
        return f"{self.prefix}:{{{self.plural}}}"

    @property
    def objects(self) -> str:
        return f"{self._base}:obj"

    @property
    def versions(self) -> str:
        return f"{self._base}:rv"

    @property
    def revision(self) -> str:
        return f"{self._base}:rev"

    @property
    def watch(self) -> str:
        return f"{self._base}:watch"

    @property
    def watch_floor(self) -> str:
        """The highest revision trimmed from the watch stream (compaction point)."""
        return f"{self._base}:watch:floor"

    def node_stream(self, node: str) -> str:
        return f"{self._base}:node:{node}"

    def node_floor(self, node: str) -> str:
        return f"{self._base}:node:{node}:floor"

    def request(self, request_id: str) -> str:
        """Marks a bus request as applied, so a redelivered request is not applied twice."""
        return f"{self._base}:req:{request_id}"

    @property
    def node_capacity(self) -> str:
        """Pods only: node name -> "cpu_milli|memory_bytes|pods" allocatable."""
        return f"{self._base}:cap"

    @property
    def node_allocated(self) -> str:
        """Pods only: "node|resource" -> sum of requests of pods bound there."""
        return f"{self._base}:alloc"

    @property
    def counted(self) -> str:
        """Pods only: pod key -> "node|cpu|memory" it is counted against."""
        return f"{self._base}:counted"

    @property
    def allocations(self) -> str:
        """Services only: allocated ClusterIPs and node ports -> owning service."""
        return f"{self._base}:alloc"


@dataclass(frozen=True)
class Keys:
    """Key names under one cluster prefix (several clusters may share a Redis)."""

    prefix: str = "rk"

    def kind(self, plural: str) -> KindKeys:
        return KindKeys(self.prefix, plural)

    @property
    def requests(self) -> str:
        return f"{self.prefix}:api:req"

    def reply(self, client: str) -> str:
        return f"{self.prefix}:api:reply:{client}"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def logs(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> str:
        """A container's output, one entry per line (``line``, ``stream``); capped.

        The hash tag keeps a container's current and previous log in one slot, so the
        kubelet can RENAME one to the other when the container restarts.
        """
        suffix = ":previous" if previous else ""
        return f"{self.prefix}:logs:{{{namespace}/{pod}}}:{container}{suffix}"

    def leader(self, name: str) -> str:
        return f"{self.prefix}:leader:{name}"

    def rate(self, identity: str) -> str:
        return f"{self.prefix}:rate:{identity}"

    # --- exec sessions (``kubectl exec``): one node per key space, so a node's ACL user can be
    # limited to ``PREFIX:exec:NODE:*``.

    def exec_requests(self, node: str) -> str:
        """The API server asks the kubelet of ``node`` to start a command here (capped)."""
        return f"{self.prefix}:exec:{node}:requests"

    def exec_input(self, node: str, session: str) -> str:
        """API server -> kubelet: stdin, stdin close, resize, kill (capped, expires)."""
        return f"{self.prefix}:exec:{node}:{session}:in"

    def exec_output(self, node: str, session: str) -> str:
        """Kubelet -> API server: started, stdout, stderr, exit or error (capped, expires)."""
        return f"{self.prefix}:exec:{node}:{session}:out"

    def exec_alive(self, node: str, session: str) -> str:
        """Refreshed (with a TTL) by the API server while its client is connected."""
        return f"{self.prefix}:exec:{node}:{session}:alive"
