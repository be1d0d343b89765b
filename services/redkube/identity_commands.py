"""``redkube init`` and ``redkube node``: identity and node processes without ``up``.

compose runs ``init`` once (CA, serving certificate, tokens, kubeconfig in a shared
volume) and ``node`` in each node container: it registers the node's token (the API
servers re-read the token file) and supervises that node's kubelet and proxy.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from services.redkube.up import Child, Supervisor
from shared import logging as rklogging
from shared import pki, redis_acl
from shared.config import default_home
from shared.keys import Keys


def add_parsers(sub: Any) -> None:
    init = sub.add_parser("init", help="make the CA, certificates, tokens and kubeconfig of a cluster")
    init.add_argument("--home", type=Path, default=None)
    init.add_argument("--api-host", action="append", default=[], help="extra name or IP in the certificate")
    init.add_argument("--server", default="https://127.0.0.1:6443", help="API server URL written to the kubeconfig")
    init.add_argument("--kubeconfig", type=Path, default=None, help="also write the kubeconfig here")
    init.add_argument("--redis-url", default=None,
                      help="also make Redis 7 ACL users for this Redis: HOME/redis-users/users.acl for "
                           "redis-server --aclfile, and one URL file per component (nodes share the user 'node')")
    init.add_argument("--prefix", default="rk", help="the cluster's key prefix, for the ACL key patterns")
    init.set_defaults(func=init_cluster)
    node = sub.add_parser("node", help="run one node: its kubelet and its proxy")
    node.add_argument("--home", type=Path, default=None)
    node.add_argument("--node", default=None, help="node name (default: the host name)")
    node.add_argument("--node-ip", default=None, help="the node's address (default: the host's)")
    node.add_argument("--pod-cidr", default=None)
    node.add_argument("--runtime", default="process", choices=["process", "simulated"])
    node.set_defaults(func=run_node)


def init_cluster(args: argparse.Namespace) -> int:
    home = (args.home or default_home()).resolve()
    identity = pki.ensure_cluster_identity(home, hosts=args.api_host)
    path = pki.write_kubeconfig(identity, server=args.server, token=identity.token("admin"))
    if args.kubeconfig:
        pki.write_kubeconfig(identity, server=args.server, token=identity.token("admin"), path=args.kubeconfig)
    if args.redis_url:
        keys = Keys(args.prefix)
        credentials = redis_acl.Credentials(home / "redis-users")
        credentials.ensure([*redis_acl.control_plane_users(keys), redis_acl.node_user(keys)], url=args.redis_url)
        print(f"Redis ACL users in {credentials.acl_file}")
    print(f"cluster identity in {home}; kubeconfig {args.kubeconfig or path}")
    return 0


def run_node(args: argparse.Namespace) -> int:
    home = (args.home or default_home()).resolve()
    name = args.node or socket.gethostname()
    node_ip = args.node_ip or socket.gethostbyname(socket.gethostname())
    log = rklogging.configure("node", node=name)
    identity = pki.Identity(home)
    pki.ensure_node_token(identity, name)
    exe = [sys.executable, "-m", "services.redkube.main"]
    env = {**os.environ, "REDKUBE_HOME": str(home)}
    kubelet = [*exe, "kubelet", "--node", name, "--node-ip", node_ip, "--runtime", args.runtime]
    if args.pod_cidr:
        kubelet += ["--pod-cidr", args.pod_cidr]
    credentials = redis_acl.Credentials(home / "redis-users")

    def redis_user(*names: str) -> dict[str, str]:
        """The first of ``names`` with a URL file from ``init --redis-url``; else the inherited URL."""
        found = [credentials.url_file(n) for n in names if credentials.url_file(n).exists()]
        return {"REDKUBE_REDIS_URL": f"@{found[0]}"} if found else {}

    supervisor = Supervisor(log=log)
    supervisor.children = [
        Child(
            "kubelet",
            kubelet,
            {**env, "REDKUBE_TOKEN": f"@{identity.token_path(f'node-{name}')}", **redis_user(f"node-{name}", "node")},
            home / "logs" / f"kubelet-{name}.log",
        ),
        Child(
            "proxy",
            [*exe, "proxy", "--node", name, "--node-ip", node_ip],
            {**env, "REDKUBE_TOKEN": f"@{identity.token_path('proxy')}", **redis_user("proxy")},
            home / "logs" / f"proxy-{name}.log",
        ),
    ]
    (home / "logs").mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    for child in supervisor.children:
        child.start()
    try:
        supervisor.monitor()
    finally:
        supervisor.stop()
    return 0
