"""Authentication (client certificates, bearer tokens) and authorization (admin, components,
NodeRestriction).

Tokens come from a static token file in kube-apiserver's ``--token-auth-file`` format
(``token,user,uid,"group1,group2"``). Presented tokens are hashed before the lookup,
so the comparison does not leak the secret through timing. The same checks serve HTTP
and the request stream. A client certificate (HTTPS only) was already verified against
the client CA in the TLS handshake (``tls.py``); as in kube-apiserver its subject CN is
the user, its O values the groups, and it wins over a token sent alongside.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from services.apiserver.errors import ApiError
from shared.resources import Resource

READ_VERBS = frozenset({"get", "list", "watch"})
NODE_LEASE_NAMESPACE = "kube-node-lease"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
#: Parsed client certificates kept per API server (one entry per distinct certificate seen).
CERT_CACHE_SIZE = 1024
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
            groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g and g != AUTHENTICATED)
            # As in kube-apiserver, every authenticated caller is in system:authenticated.
            entries[_digest(row[0].strip())] = User(row[1], row[2] if len(row) > 2 else "", (*groups, AUTHENTICATED))
    return entries


@dataclass(frozen=True)
class CertificateIdentity:
    user: User | None
    not_before: datetime.datetime
    not_after: datetime.datetime


def _certificate_identity(pem: str) -> CertificateIdentity:
    cert = x509.load_pem_x509_certificate(pem.encode())
    subject = cert.subject
    common = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    groups = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    user = User(common[0], "", (*groups, AUTHENTICATED)) if common and common[0] else None
    return CertificateIdentity(user, cert.not_valid_before_utc, cert.not_valid_after_utc)


def self_subject_review(user: User) -> dict[str, Any]:
    """``kubectl auth whoami``: the caller as the server authenticated it."""
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": info}}


class Authenticator:
    """Static tokens from a file, re-read when the file changes.

    Re-reading lets a node that joins later (``redkube node-token``, as compose's node
    containers do) register its token without restarting the API servers.
    """

    def __init__(self, entries: dict[bytes, User], *, path: Path | None = None) -> None:
        self._entries = entries
        self._path = path
        self._mtime = path.stat().st_mtime_ns if path is not None and path.exists() else 0
        self._certs: dict[str, CertificateIdentity] = {}

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

    def authenticate(self, token: str | None, *, client_cert: str | None = None) -> User:
        """The caller of a request: ``client_cert`` is the PEM certificate the TLS layer verified."""
        if client_cert:
            return self._certificate_user(client_cert)
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

    def _certificate_user(self, pem: str) -> User:
        """The certificate's user, re-checked for validity on every request: a connection
        opened while the certificate was valid must not outlive it (as kube-apiserver, which
        verifies the chain per request)."""
        identity = self._certs.get(pem)
        if identity is None:
            try:
                identity = _certificate_identity(pem)
            except ValueError as exc:
                raise ApiError(401, "Unauthorized") from exc
            if len(self._certs) >= CERT_CACHE_SIZE:
                self._certs.clear()
            self._certs[pem] = identity
        now = datetime.datetime.now(datetime.UTC)
        if identity.user is None or not identity.not_before <= now <= identity.not_after:
            raise ApiError(401, "Unauthorized")
        return identity.user


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
