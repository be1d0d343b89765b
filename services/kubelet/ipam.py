"""Pod addresses from the node's ``--pod-cidr``, kept in the state dir across restarts.

Each pod (by uid) gets the next free host address of the range (round robin, so a
released address is not handed out again at once); the assignment is
written to ``ipam.json`` before the pod's containers start, so a restarted kubelet
hands every pod the address it had.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path


class AddressPool:
    def __init__(self, cidr: str, *, path: Path | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.path = path
        self.assigned: dict[str, str] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self.assigned = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self.assigned = {}
        self._cursor = 0

    def get(self, uid: str) -> str | None:
        return self.assigned.get(uid)

    def allocate(self, uid: str) -> str:
        if uid in self.assigned:
            return self.assigned[uid]
        used = set(self.assigned.values())
        hosts = self.network.num_addresses - 2 if self.network.num_addresses > 2 else self.network.num_addresses
        for step in range(hosts):
            index = (self._cursor + step) % hosts
            address = str(self.network.network_address + 1 + index) if self.network.num_addresses > 2 else str(
                self.network.network_address + index
            )
            if address not in used:
                self._cursor = index + 1
                self.assigned[uid] = address
                self._save()
                return address
        raise RuntimeError(f"no free pod address in {self.network}")

    def release(self, uid: str) -> None:
        if self.assigned.pop(uid, None) is not None:
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.assigned))
        os.replace(tmp, self.path)
