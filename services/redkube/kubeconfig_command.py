"""``redkube kubeconfig``: a kubeconfig that authenticates a user with a client certificate.

The certificate is signed by the cluster CA under ``--home`` (the one ``redkube up`` and
``redkube init`` make, which the API server trusts for client certificates): CN is the
user, each ``--group`` an O, as kube-apiserver reads them. The server address and the CA
that verifies it are taken from the admin kubeconfig in the same home, so the file fits
a cluster started with another ``--api-port`` or its own serving certificate. What the
user may do is then up to RBAC (a RoleBinding naming the user or one of the groups).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import sys
from pathlib import Path
from typing import Any

import yaml

from shared import pki
from shared.config import default_home

DEFAULT_SERVER = "https://127.0.0.1:6443"


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("kubeconfig", help="write a kubeconfig with a client certificate for a user")
    p.add_argument("--user", required=True, help="user name (the certificate's CN)")
    p.add_argument("--group", action="append", default=[], help="a group (an O of the certificate); repeatable")
    p.add_argument("--home", type=Path, default=None, help="the cluster's state directory (default ~/.redkube)")
    p.add_argument("--out", type=Path, default=None, help="write here (mode 0600) instead of to stdout")
    p.add_argument("--server", default=None, help="API server URL (default: the one in the home's kubeconfig)")
    p.add_argument("--days", type=float, default=365.0, help="validity of the certificate in days")
    p.add_argument("--namespace", default="default")
    p.set_defaults(func=write_user_kubeconfig)


def _cluster_of(identity: pki.Identity) -> tuple[str | None, bytes | None]:
    """Server URL and serving CA from the admin kubeconfig, if the home has one."""
    try:
        config = yaml.safe_load(identity.kubeconfig.read_text()) or {}
        cluster = config["clusters"][0]["cluster"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None, None
    data = cluster.get("certificate-authority-data")
    return cluster.get("server"), base64.b64decode(data) if data else None


def write_user_kubeconfig(args: argparse.Namespace) -> int:
    identity = pki.Identity((args.home or default_home()).expanduser().resolve())
    if not (identity.pki / "ca.key").exists():
        print(f"no cluster CA in {identity.pki}: run `redkube up` or `redkube init` first", file=sys.stderr)
        return 1
    server, serving_ca = _cluster_of(identity)
    cert, key = pki.issue_client_cert(
        identity.pki, user=args.user, groups=args.group, validity=datetime.timedelta(days=args.days)
    )
    text = pki.client_kubeconfig(
        server=args.server or server or DEFAULT_SERVER,
        ca_pem=serving_ca or identity.ca.read_bytes(),
        user=args.user,
        cert_pem=cert,
        key_pem=key,
        namespace=args.namespace,
    )
    if args.out is None:
        sys.stdout.write(text)
        return 0
    pki.write_atomic(args.out, text.encode(), private=True)
    print(f"kubeconfig for {args.user} ({', '.join(args.group) or 'no groups'}) in {args.out}", file=sys.stderr)
    return 0
