"""Which schedulers are alive, so that replicas split the pending pods instead of racing for each.

Every replica renews a Lease of its own (``kube-system/scheduler-<identity>``, labelled
with the scheduler name) and reads its peers' from the store. A pod "belongs" to one live
replica by rendezvous hashing of its key over the replicas' identities; the others leave
it alone for a short hand-off delay and only then try it themselves, so a replica that
dies (or is slow) costs its pods that delay, never the pods. Liveness is judged by when
this replica saw a peer's lease change, not by the peer's clock, as Kubernetes' leader
election does. This only cuts wasted bindings: correctness never depends on it, since
the API server refuses double or overcommitting bindings anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import redis.exceptions
import structlog

from shared.bus import ApiClientError, BusClient
from shared.process import Runtime
from shared.store import Store

NAMESPACE = "kube-system"
COMPONENT_LABEL = "redkube.io/component"
NAME_LABEL = "redkube.io/scheduler-name"
STALE_LEASES = 6  # lease durations after which a dead replica's lease is deleted


def _score(identity: str, key: str) -> bytes:
    return hashlib.blake2b(f"{identity}\x00{key}".encode(), digest_size=8).digest()


class Peers:
    def __init__(
        self,
        *,
        store: Store,
        client: BusClient,
        identity: str,
        scheduler_name: str,
        renew_seconds: float = 2.0,
        lease_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.client = client
        self.identity = identity
        self.scheduler_name = scheduler_name
        self.renew_seconds = renew_seconds
        self.lease_seconds = lease_seconds
        self.alive: list[str] = [identity]
        self._observed: dict[str, tuple[str, float]] = {}  # lease name -> (resourceVersion, first seen)
        self._log = structlog.get_logger().bind(task="peers")

    @property
    def lease_name(self) -> str:
        return f"scheduler-{self.identity}"

    def owner(self, key: str) -> str:
        """The live replica a pod belongs to (rendezvous hashing: stable as peers come and go)."""
        alive = self.alive
        if len(alive) == 1:
            return alive[0]
        return max(alive, key=lambda identity: _score(identity, key))

    def mine(self, key: str) -> bool:
        return len(self.alive) == 1 or self.owner(key) == self.identity

    async def renew(self) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name,
                "namespace": NAMESPACE,
                "labels": {COMPONENT_LABEL: "scheduler", NAME_LABEL: self.scheduler_name},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_seconds),
                "renewTime": now,
            },
        }
        await self.client.call("update", "leases", namespace=NAMESPACE, name=self.lease_name, body=lease)

    async def refresh(self) -> None:
        leases, _ = await self.store.list("leases", namespace=NAMESPACE)
        now = time.monotonic()
        alive = {self.identity}
        present = set()
        for lease in leases:
            meta = lease.get("metadata") or {}
            labels = meta.get("labels") or {}
            if labels.get(COMPONENT_LABEL) != "scheduler" or labels.get(NAME_LABEL) != self.scheduler_name:
                continue
            name, version = str(meta.get("name")), str(meta.get("resourceVersion"))
            present.add(name)
            seen = self._observed.get(name)
            if seen is None or seen[0] != version:
                seen = self._observed[name] = (version, now)
            holder = (lease.get("spec") or {}).get("holderIdentity")
            if holder and now - seen[1] < self.lease_seconds:
                alive.add(str(holder))
            elif now - seen[1] > STALE_LEASES * self.lease_seconds and name != self.lease_name:
                # A replica that died without deleting its lease (kill -9): tidy it away.
                try:
                    await self.client.delete("leases", name, namespace=NAMESPACE)
                    self._log.info("deleted the lease of a dead scheduler", lease=name)
                except ApiClientError as exc:
                    if exc.code != 404:  # 404: another replica tidied it first
                        self._log.warning("could not delete a dead scheduler's lease", lease=name, error=str(exc))
        for name in set(self._observed) - present:
            del self._observed[name]
        fresh = sorted(alive)
        if fresh != self.alive:
            self._log.info("schedulers alive", peers=fresh)
        self.alive = fresh

    async def run(self, runtime: Runtime) -> None:
        while not runtime.stop.is_set():
            try:
                await self.renew()
                await self.refresh()
            except (ApiClientError, redis.exceptions.RedisError, OSError) as exc:
                self._log.warning("could not renew or read scheduler leases", error=str(exc))
                self.alive = [self.identity]  # on our own: schedule everything
            if await runtime.sleep(self.renew_seconds):
                break
        try:
            # Gone at once, so the peers take this replica's pods over without waiting for expiry.
            await asyncio.wait_for(self.client.delete("leases", self.lease_name, namespace=NAMESPACE), 2.0)
        except Exception as exc:
            self._log.info("could not delete own lease", error=str(exc))
