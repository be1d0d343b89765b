"""Authentication (bearer tokens) and authorization (admin, components, NodeRestriction).

Tokens come from a static token file in kube-apiserver's ``--token-auth-file`` format
(``token,user,uid,"group1,group2"``). Presented tokens are hashed before the lookup,
so the comparison does not leak the secret through timing. The same checks serve HTTP
and the request stream.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.apiserver.errors import ApiError
from shared.resources import Resource

READ_VERBS = frozenset({"get", "list", "watch"})
NODE_LEASE_NAMESPACE = "kube-node-lease"
MASTERS = "system:masters"
NODES = "system:nodes"
#: Control-plane identities allowed everything until RBAC objects are introduced.
CONTROL_PLANE = frozenset(
    {
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:kube-proxy",
        "system:apiserver",
    }
)


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)

    @property
    def node_name(self) -> str | None:
        if NODES in self.groups and self.name.startswith("system:node:"):
            return self.name.removeprefix("system:node:")
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _read_tokens(path: Path) -> dict[bytes, User]:
    entries: dict[bytes, User] = {}
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 2 or row[0].startswith("#"):
                continue
            groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
            entries[_digest(row[0].strip())] = User(row[1], row[2] if len(row) > 2 else "", groups)
    return entries


class Authenticator:
    """Static tokens from a file, re-read when the file changes.

    Re-reading lets a node that joins later (``redkube node-token``, as compose's node
    containers do) register its token without restarting the API servers.
    """

    def __init__(self, entries: dict[bytes, User], *, path: Path | None = None) -> None:
        self._entries = entries
        self._path = path
        self._mtime = path.stat().st_mtime_ns if path is not None and path.exists() else 0

    @classmethod
    def from_file(cls, path: Path) -> Authenticator:
        return cls(_read_tokens(path), path=path)

    def _reload_if_changed(self) -> None:
        if self._path is None:
            return
        try:
            mtime = self._path.stat().st_mtime_ns
            if mtime != self._mtime:
                self._entries = _read_tokens(self._path)
                self._mtime = mtime
        except OSError:
            pass

    def authenticate(self, token: str | None) -> User:
        if not token:
            raise ApiError(401, "Unauthorized")
        digest = _digest(token.strip())
        user = self._entries.get(digest)
        if user is None:
            self._reload_if_changed()
            user = self._entries.get(digest)
        if user is None:
            raise ApiError(401, "Unauthorized")
        return user


def forbidden(
    user: User,
    verb: str,
    resource: Resource,
    namespace: str | None,
    name: str | None,
    subresource: str | None,
    why: str = "",
) -> ApiError:
    what = f"{resource.plural}/{subresource}" if subresource else resource.plural
    where = f' in the namespace "{namespace}"' if namespace and resource.namespaced else " at the cluster scope"
    subject = f'{what} "{name}"' if name else what
    message = (
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{what}" '
        f'in API group "{resource.group}"{where}'
    )
    if why:
        message += f": {why}"
    return ApiError(403, message, details={"name": name or "", "kind": resource.plural, "group": resource.group})


def authorize(
    user: User,
    *,
    verb: str,
    resource: Resource,
    namespace: str | None,
    name: str | None,
    subresource: str | None,
    existing: dict[str, Any] | None = None,
    rbac: Any = None,
) -> None:
    """Raise 403 unless ``user`` may do this. ``existing`` is the object for node checks;
    ``rbac`` (an ``rbac.Rbac``) decides for everyone who is not admin, control plane or node."""
    if MASTERS in user.groups or user.name in CONTROL_PLANE:
        return
    what = f"{resource.plural}/{subresource}" if subresource else resource.plural
    if rbac is not None and rbac.allows(user, verb=verb, group=resource.group, resource=what,
                                        namespace=namespace if resource.namespaced else None, name=name):
        return
    node = user.node_name
    if node is None:
        raise forbidden(user, verb, resource, namespace, name, subresource)
    _node_restriction(user, node, verb=verb, resource=resource, namespace=namespace, name=name,
                      subresource=subresource, existing=existing)


def _node_restriction(user: User, node: str, *, verb: str, resource: Resource, namespace: str | None,
                      name: str | None, subresource: str | None, existing: dict[str, Any] | None) -> None:
    """What a kubelet may do, as Kubernetes' Node authorizer and NodeRestriction allow."""
    if verb in READ_VERBS and subresource != "log":
        return
    plural = resource.plural
    if plural == "events":
        return
    if plural == "nodes" and name == node:
        return
    if plural == "leases" and namespace == NODE_LEASE_NAMESPACE and name == node:
        return
    if plural == "pods":
        if existing is None and verb in ("update", "patch", "delete"):
            return  # nothing to protect: the handler answers 404, as Kubernetes does
        bound = ((existing or {}).get("spec") or {}).get("nodeName")
        if verb in ("update", "patch") and subresource == "status" and bound == node:
            return
        if verb == "delete" and subresource is None and bound == node:
            return
        if verb == "get" and subresource == "log" and bound == node:
            return
        raise forbidden(
            user,
            verb,
            resource,
            namespace,
            name,
            subresource,
            f"node {node!r} can only change the status of pods bound to it",
        )
    raise forbidden(
        user, verb, resource, namespace, name, subresource, f"node {node!r} can only change its own Node and Lease"
    )
