"""``redkube rollout status deployment/NAME [--timeout S]``, read as kubectl reads it.

Exit 0 once the rollout is complete, 1 on ProgressDeadlineExceeded or when
``--timeout`` passes first.
"""

from __future__ import annotations

import argparse

from services.redkube.cli_client import Client, CliError, display_name, resolve
from services.redkube.cli_wait import deployment_progress, wait_until


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status"], help="only 'status' is supported")
    parser.add_argument("target", help="deployment/NAME (or KIND NAME)")
    parser.add_argument("name", nargs="?", help="name when KIND is given separately")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds to wait; 0 waits forever")


def run(args: argparse.Namespace, client: Client) -> int:
    kind, _, name = args.target.partition("/")
    name = name or args.name or ""
    resource = resolve(kind)
    if resource.kind != "Deployment":
        raise CliError(f"error: no status viewer has been implemented for {display_name(resource)}")
    if not name:
        raise CliError("error: a resource name is required, e.g. deployment/web")
    timeout = args.timeout if args.timeout > 0 else float("inf")
    wait_until(
        lambda: client.get(resource, args.namespace, name),
        deployment_progress,
        timeout=timeout,
        label=f"{display_name(resource)}/{name}",
    )
    return 0
