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

    async def _claim(self, field: str, owner: str) -> bool:
        if await self._redis.hsetnx(self._key, field, owner):
            return True
        return (await self._redis.hget(self._key, field)) == owner.encode()

    async def release(self, owner: str, spec: dict[str, Any]) -> None:
        fields = [f"ip:{spec['clusterIP']}"] if spec.get("clusterIP") not in (None, "", "None") else []
        fields += [f"nodeport:{p['nodePort']}" for p in spec.get("ports") or [] if p.get("nodePort")]
        for field in fields:
            if (await self._redis.hget(self._key, field)) == owner.encode():
                await self._redis.hdel(self._key, field)

    async def allocate(self, owner: str, spec: dict[str, Any]) -> None:
        """Fill in clusterIP(s) and node ports in ``spec``, claiming each atomically."""
        claimed: list[str] = []
        try:
            await self._allocate_ip(owner, spec, claimed)
            await self._allocate_node_ports(owner, spec, claimed)
        except BaseException:
            for field in claimed:
                await self._redis.hdel(self._key, field)
            raise

    async def _allocate_ip(self, owner: str, spec: dict[str, Any], claimed: list[str]) -> None:
        if spec.get("type") == "ExternalName":
            return
        requested = spec.get("clusterIP")
        if requested == "None":
            spec["clusterIPs"] = ["None"]
            return
        if requested:
            try:
                address = ipaddress.ip_address(requested)
            except ValueError as exc:
                raise _invalid("spec.clusterIP", requested, "must be a valid IP address") from exc
            if address not in self._network:
                raise _invalid(
                    "spec.clusterIP",
                    requested,
                    f"provided IP is not in the valid range. The range of valid IPs is {self._network}",
                )
            if not await self._claim(f"ip:{requested}", owner):
                raise _invalid("spec.clusterIP", requested, "provided IP is already allocated")
            claimed.append(f"ip:{requested}")
            spec["clusterIPs"] = [requested]
            return
        hosts = self._network.num_addresses - 2
        start = random.randrange(hosts)
        for offset in range(hosts):
            candidate = str(self._network.network_address + 1 + (start + offset) % hosts)
            if await self._claim(f"ip:{candidate}", owner):
                claimed.append(f"ip:{candidate}")
                spec["clusterIP"] = candidate
                spec["clusterIPs"] = [candidate]
                return
        raise ApiError(500, f"Internal error occurred: failed to allocate a serviceIP: range {self._network} is full")

    async def _allocate_node_ports(self, owner: str, spec: dict[str, Any], claimed: list[str]) -> None:
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            return
        low, high = NODE_PORT_RANGE
        for index, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort")
            if wanted:
                if not low <= wanted <= high:
                    raise _invalid(
                        f"spec.ports[{index}].nodePort",
                        wanted,
                        f"provided port is not in the valid range. The range of valid ports is {low}-{high}",
                    )
                if not await self._claim(f"nodeport:{wanted}", owner):
                    raise _invalid(f"spec.ports[{index}].nodePort", wanted, "provided port is already allocated")
                claimed.append(f"nodeport:{wanted}")
                continue
            start = random.randrange(high - low + 1)
            for offset in range(high - low + 1):
                candidate = low + (start + offset) % (high - low + 1)
                if await self._claim(f"nodeport:{candidate}", owner):
                    claimed.append(f"nodeport:{candidate}")
                    port["nodePort"] = candidate
                    break
            else:
                raise ApiError(500, "Internal error occurred: failed to allocate a nodePort: range is full")


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
