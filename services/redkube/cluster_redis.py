"""The Redis a cluster runs on: the user's, or a private one with ACL users and TLS.

``redkube up`` starts a private ``redis-server`` unless given a URL. With Redis 7 or
newer it gets one ACL user per component (see ``shared.redis_acl``) and each process
reads its own URL, password included, from a 0600 file; ``--redis-tls`` serves TLS
only, with a certificate from the cluster's CA.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from shared import pki, redis_acl, redis_server
from shared.keys import Keys


@dataclass
class ClusterRedis:
    """Where each component finds Redis: one URL for all, or one credentials file each."""

    url: str
    proc: subprocess.Popen[bytes] | None = None
    credentials: redis_acl.Credentials | None = None
    notes: list[str] = field(default_factory=list)

    def url_for(self, user: str) -> str:
        """A ``REDKUBE_REDIS_URL`` value: ``@FILE`` when ``user`` has credentials of its own."""
        if self.credentials is None:
            return self.url
        return f"@{self.credentials.url_file(user)}"

    @property
    def admin_url(self) -> str:
        if self.credentials is None:
            return self.url
        return self.credentials.url_file("admin").read_text().strip()

    @property
    def cli(self) -> str:
        """How a person reaches this Redis with redis-cli, as the admin user."""
        url, _, query = self.admin_url.partition("?")
        if not url.startswith("rediss://"):
            return f"redis-cli -u {url}"
        ca = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("ssl_ca_certs", "")
        return f"redis-cli --tls --cacert {unquote(ca)} -u {url}"

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(
    *, home: Path, identity: pki.Identity, keys: Keys, nodes: list[str], url: str | None, acl: str, tls: bool, log: Any
) -> ClusterRedis:
    """Use ``url`` if given, else start a private, persistent Redis under ``home``."""
    if url:
        if tls or acl == "on":
            raise SystemExit("--redis-tls and --redis-acl=on apply to the Redis redkube starts, not to --redis-url")
        return ClusterRedis(url)
    binary = redis_server.find_binary()
    version = redis_acl.server_version(binary)
    use_acl = acl == "on" or (acl == "auto" and version >= redis_acl.MIN_VERSION)
    notes: list[str] = []
    if use_acl and version < redis_acl.MIN_VERSION:
        raise SystemExit(f"--redis-acl=on needs Redis {'.'.join(map(str, redis_acl.MIN_VERSION))}+; "
                         f"{binary} is {'.'.join(map(str, version))}")
    if not use_acl:
        notes.append(f"Redis {'.'.join(map(str, version))} at {binary}: one Redis user for all components "
                     "(per-component ACL users need Redis 7)")
    port = redis_server.free_port()
    server_tls = None
    if tls:
        pki.make_serving_cert(identity.pki, stem="redis", common_name="redkube-redis",
                              hosts=["127.0.0.1", "localhost"])
        server_tls = redis_server.Tls(cert=identity.pki / "redis.crt", key=identity.pki / "redis.key", ca=identity.ca)
        plain = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(identity.ca), safe='/')}"
    else:
        plain = f"redis://127.0.0.1:{port}/0"
    credentials = None
    if use_acl:
        credentials = redis_acl.Credentials(home / "redis-users")
        users = redis_acl.control_plane_users(keys) + [redis_acl.node_user(keys, node) for node in nodes]
        credentials.ensure(users, url=plain)
    try:
        proc = redis_server.start(
            port=port,
            data_dir=home / "redis",
            persistent=True,
            log_file=home / "logs" / "redis.log",
            binary=binary,
            acl_file=credentials.acl_file if credentials else None,
            tls=server_tls,
        )
    except (RuntimeError, TimeoutError) as exc:
        raise SystemExit(f"{binary} did not start ({exc}); see {home / 'logs' / 'redis.log'}") from exc
    for note in notes:
        log.warning(note)
    return ClusterRedis(plain, proc, credentials, notes)
