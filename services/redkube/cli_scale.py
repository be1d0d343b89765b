"""``redkube scale KIND/NAME --replicas N``, through the ``scale`` subresource."""

from __future__ import annotations

import argparse

from services.redkube.cli_client import Client, CliError, display_name, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="deployment/NAME or replicaset/NAME (or KIND NAME)")
    parser.add_argument("name", nargs="?", help="name when KIND is given separately")
    parser.add_argument("--replicas", type=int, required=True, help="the new number of replicas")


def run(args: argparse.Namespace, client: Client) -> int:
    kind, _, name = args.target.partition("/")
    name = name or args.name or ""
    resource = resolve(kind)
    if "scale" not in resource.subresources:
        raise CliError(f"error: cannot scale {display_name(resource)}: it has no scale subresource")
    if not name:
        raise CliError("error: a resource name is required, e.g. deployment/web")
    if args.replicas < 0:
        raise CliError("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    client.request(
        "PATCH",
        client.path(resource, args.namespace, name, "scale"),
        body={"spec": {"replicas": args.replicas}},
        content_type="application/merge-patch+json",
    )
    print(f"{display_name(resource)}/{name} scaled")
    return 0
