"""``redkube delete KIND NAME… | -f FILE [--cascade=background|foreground|orphan]``."""

from __future__ import annotations

import argparse
import sys

from services.redkube import cli_manifests
from services.redkube.cli_client import ApiStatusError, Client, CliError, by_manifest, display_name, resolve
from shared.resources import Resource

POLICIES = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", help="kind, or KIND/NAME")
    parser.add_argument("names", nargs="*", help="object names")
    parser.add_argument("-f", "--filename", action="append", help="file, directory or - for stdin")
    parser.add_argument("--cascade", choices=sorted(POLICIES), default="background", help="dependents' fate")
    parser.add_argument("--grace-period", type=int, help="seconds a pod gets to stop (0: at once)")
    parser.add_argument("--ignore-not-found", action="store_true", help="a missing object is not an error")


def _targets(args: argparse.Namespace) -> list[tuple[Resource, str | None, str]]:
    if args.filename:
        targets = []
        for manifest in cli_manifests.read(args.filename):
            resource = by_manifest(manifest.doc)
            meta = manifest.doc.get("metadata") or {}
            namespace = (meta.get("namespace") or args.namespace) if resource.namespaced else None
            targets.append((resource, namespace, str(meta.get("name") or "")))
        return targets
    if not args.kind:
        raise CliError("error: You must provide one or more resources by argument or filename.")
    if "/" in args.kind:
        kind, _, name = args.kind.partition("/")
        names = [name, *args.names]
    else:
        kind, names = args.kind, list(args.names)
    if not names:
        raise CliError("error: resource(s) were provided, but no name was specified")
    resource = resolve(kind)
    return [(resource, args.namespace if resource.namespaced else None, name) for name in names]


def run(args: argparse.Namespace, client: Client) -> int:
    options: dict[str, object] = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": POLICIES[args.cascade],
    }
    if args.grace_period is not None:
        options["gracePeriodSeconds"] = args.grace_period
    failed = False
    for resource, namespace, name in _targets(args):
        try:
            client.request("DELETE", client.path(resource, namespace, name), body=options)
        except ApiStatusError as exc:
            if exc.http_code == 404 and args.ignore_not_found:
                continue
            print(exc.message, file=sys.stderr)
            failed = True
            continue
        print(f'{display_name(resource)} "{name}" deleted', flush=True)
    return 1 if failed else 0
