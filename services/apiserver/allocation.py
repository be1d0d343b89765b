"""ClusterIP and NodePort allocation, atomic in Redis so no two Services share one.

Allocations live in the services kind's hash tag (``rk:{services}:alloc``):
``ip:<addr>`` and ``nodeport:<port>`` map to the owning ``namespace/name``. HSETNX
makes each claim atomic across API server replicas.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import redis.asyncio as aioredis

from services.apiserver.errors import ApiError
from shared.keys import Keys

NODE_PORT_RANGE = (30000, 32767)


class Allocator:
    def __init__(self, redis: aioredis.Redis, keys: Keys, *, service_cidr: str) -> None:
        self._redis = redis
        self._key = keys.kind("services").allocations
        self._network = ipaddress.ip_network(service_cidr, strict=False)

    async def _claim(self, field: str, owner: str, claimed: list[str]) -> bool:
        """Take ``field`` for ``owner``: True if newly claimed (recorded in ``claimed``) or
        already the owner's; False when another Service holds it."""
        if await self._redis.hsetnx(self._key, field, owner):
            claimed.append(field)
            return True
        return bool((await self._redis.hget(self._key, field)) == owner.encode())

    async def release_fields(self, owner: str, fields: list[str]) -> None:
        for field in fields:
            if (await self._redis.hget(self._key, field)) == owner.encode():
                await self._redis.hdel(self._key, field)

    async def release(self, owner: str, spec: dict[str, Any]) -> None:
        await self.release_fields(owner, sorted(_fields(spec)))

    async def release_unused(self, owner: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """After an update: free what the old spec held and the new one does not."""
        await self.release_fields(owner, sorted(_fields(old) - _fields(new)))

    async def allocate(self, owner: str, spec: dict[str, Any]) -> list[str]:
        """Fill in clusterIP(s) and node ports in ``spec``, claiming each atomically.

        Returns the fields newly claimed: a failed write must release exactly those (and
        never what the owner already held, as a duplicate create's failure would).
        """
        claimed: list[str] = []
        try:
            await self._allocate_ip(owner, spec, claimed)
            await self._allocate_node_ports(owner, spec, claimed)
        except BaseException:
            await self.release_fields(owner, claimed)
            raise
        return claimed

    async def _allocate_ip(self, owner: str, spec: dict[str, Any], claimed: list[str]) -> None:
        if spec.get("type") == "ExternalName":
            return
        requested = spec.get("clusterIP")
        if requested == "None":
            spec["clusterIPs"] = ["None"]
            return
        if requested:
            try:
                if not isinstance(requested, str):  # ip_address takes ints too: 167772161 is 10.0.0.1
                    raise ValueError(requested)
                address = ipaddress.ip_address(requested)
            except ValueError as exc:
                raise _invalid("spec.clusterIP", requested, "must be a valid IP address") from exc
            if address not in self._network:
                raise _invalid(
                    "spec.clusterIP",
                    requested,
                    f"provided IP is not in the valid range. The range of valid IPs is {self._network}",
                )
            if not await self._claim(f"ip:{requested}", owner, claimed):
                raise _invalid("spec.clusterIP", requested, "provided IP is already allocated")
            spec["clusterIPs"] = [requested]
            return
        hosts = self._network.num_addresses - 2
        start = random.randrange(hosts)
        for offset in range(hosts):
            candidate = str(self._network.network_address + 1 + (start + offset) % hosts)
            if await self._redis.hsetnx(self._key, f"ip:{candidate}", owner):
                claimed.append(f"ip:{candidate}")
                spec["clusterIP"] = candidate
                spec["clusterIPs"] = [candidate]
                return
        raise ApiError(500, f"Internal error occurred: failed to allocate a serviceIP: range {self._network} is full")

    async def _allocate_node_ports(self, owner: str, spec: dict[str, Any], claimed: list[str]) -> None:
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            return
        low, high = NODE_PORT_RANGE
        seen: set[int] = set()
        for index, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort")
            if wanted:
                if wanted in seen:
                    raise ApiError(422, f'Service is invalid: spec.ports[{index}].nodePort: Duplicate value: {wanted}',
                                   reason="Invalid", details={"kind": "Service", "causes": [
                                       {"reason": "FieldValueDuplicate", "field": f"spec.ports[{index}].nodePort",
                                        "message": f"Duplicate value: {wanted}"}]})
                seen.add(wanted)
                if not low <= wanted <= high:
                    raise _invalid(
                        f"spec.ports[{index}].nodePort",
                        wanted,
                        f"provided port is not in the valid range. The range of valid ports is {low}-{high}",
                    )
                if not await self._claim(f"nodeport:{wanted}", owner, claimed):
                    raise _invalid(f"spec.ports[{index}].nodePort", wanted, "provided port is already allocated")
                continue
            start = random.randrange(high - low + 1)
            for offset in range(high - low + 1):
                candidate = low + (start + offset) % (high - low + 1)
                if candidate not in seen and await self._redis.hsetnx(self._key, f"nodeport:{candidate}", owner):
                    claimed.append(f"nodeport:{candidate}")
                    port["nodePort"] = candidate
                    seen.add(candidate)
                    break
            else:
                raise ApiError(500, "Internal error occurred: failed to allocate a nodePort: range is full")


def _fields(spec: dict[str, Any]) -> set[str]:
    found = {f"ip:{spec['clusterIP']}"} if spec.get("clusterIP") not in (None, "", "None") else set()
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        found |= {f"nodeport:{p['nodePort']}" for p in spec.get("ports") or [] if p.get("nodePort")}
    return found


def _invalid(field: str, value: Any, message: str) -> ApiError:
    return ApiError(
        422,
        f'Service is invalid: {field}: Invalid value: "{value}": {message}',
        details={
            "kind": "Service",
            "causes": [
                {"reason": "FieldValueInvalid", "field": field, "message": f'Invalid value: "{value}": {message}'}
            ],
        },
    )
