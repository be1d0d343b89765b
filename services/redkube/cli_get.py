"""``redkube get KIND[,KIND] [NAME…] [-o wide|yaml|json|name] [-l SEL] [-A] [-w]``.

Tables are the server's (``as=Table``), so the columns match what kubectl prints;
``-o wide`` adds the priority-1 columns.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from services.redkube.cli_client import Client, CliError, resolve
from services.redkube.cli_printers import (
    TABLE_ACCEPT,
    TablePrinter,
    as_list,
    dump,
    layout,
    object_name,
    strip_for_output,
)
from shared.resources import RESOURCES, Resource

OUTPUTS = ("wide", "yaml", "json", "name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", help="kind(s), e.g. pods, deploy, svc,ep, or KIND/NAME")
    parser.add_argument("names", nargs="*", help="object names")
    parser.add_argument("-o", "--output", choices=OUTPUTS, help="output format")
    parser.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    parser.add_argument("--field-selector", help="field selector, e.g. status.phase=Running")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    parser.add_argument("-w", "--watch", action="store_true", help="after listing, print changes as they happen")
    parser.add_argument("--no-headers", action="store_true", help="omit the table header")


def _targets(args: argparse.Namespace) -> list[tuple[Resource, list[str]]]:
    if "/" in args.kind:
        kind, _, name = args.kind.partition("/")
        return [(resolve(kind), [name, *args.names])]
    kinds: list[Resource] = []
    for name in (k for k in args.kind.split(",") if k):
        category = [r for r in RESOURCES if name in r.categories]
        kinds += category or [resolve(name)]
    if len(kinds) > 1 and args.names:
        raise CliError("error: names cannot be given with more than one kind")
    return [(k, list(args.names)) for k in kinds]


def _params(args: argparse.Namespace) -> dict[str, str]:
    params = {}
    if args.selector:
        params["labelSelector"] = args.selector
    if args.field_selector:
        params["fieldSelector"] = args.field_selector
    return params


def _namespace(args: argparse.Namespace, resource: Resource) -> str | None:
    if not resource.namespaced or args.all_namespaces:
        return None
    return str(args.namespace)


def _fetch(client: Client, args: argparse.Namespace, resource: Resource, names: list[str], accept: str) -> list[Any]:
    namespace = _namespace(args, resource)
    if names:
        return [
            client.request("GET", client.path(resource, namespace or args.namespace, name), accept=accept)
            for name in names
        ]
    return [client.request("GET", client.path(resource, namespace), params=_params(args), accept=accept)]


def _objects(
    client: Client, args: argparse.Namespace, targets: list[tuple[Resource, list[str]]]
) -> list[tuple[Resource, dict[str, Any]]]:
    found: list[tuple[Resource, dict[str, Any]]] = []
    for resource, names in targets:
        for body in _fetch(client, args, resource, names, "application/json"):
            items = body["items"] if "items" in body else [body]
            found += [(resource, obj) for obj in items]
    return found


def run(args: argparse.Namespace, client: Client) -> int:
    targets = _targets(args)
    single = len(targets) == 1 and len(targets[0][1]) == 1
    if args.output in ("yaml", "json"):
        found = _objects(client, args, targets)
        objects = [strip_for_output(o) for _, o in found]
        sys.stdout.write(dump(objects[0] if single else as_list(objects), args.output))
        return 0
    if args.output == "name":
        for resource, obj in _objects(client, args, targets):
            print(object_name(resource, obj))
        return 0
    return _tables(client, args, targets)


def _tables(client: Client, args: argparse.Namespace, targets: list[tuple[Resource, list[str]]]) -> int:
    printed = False
    multi = len(targets) > 1
    namespace_column = args.all_namespaces and any(r.namespaced for r, _ in targets)
    last_printer: TablePrinter | None = None
    last_rv = ""
    for resource, names in targets:
        printer = TablePrinter(
            wide=args.output == "wide",
            namespace_column=namespace_column and resource.namespaced,
            headers=not args.no_headers,
        )
        rows: list[list[str]] = []
        for table in _fetch(client, args, resource, names, TABLE_ACCEPT):
            rows += printer.rows(table)
            last_rv = str((table.get("metadata") or {}).get("resourceVersion") or "")
        if multi:
            index = 1 if printer.namespace_column else 0
            for row in rows:
                row[index] = f"{_kind_prefix(resource)}/{row[index]}"
        if rows:
            if printed:
                print()
            sys.stdout.write(layout(([printer.header()] if printer.headers else []) + rows))
            printed = True
        last_printer = printer
    if not printed and not args.watch:
        where = "" if args.all_namespaces or not targets[0][0].namespaced else f" in {args.namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
    sys.stdout.flush()
    if args.watch:
        if multi or last_printer is None:
            raise CliError("error: you may only specify a single resource type when watching")
        resource, names = targets[0]
        return _watch(client, args, resource, names, last_printer, last_rv)
    return 0


def _kind_prefix(resource: Resource) -> str:
    return f"{resource.kind.lower()}.{resource.group}" if resource.group else resource.kind.lower()


def _watch(
    client: Client, args: argparse.Namespace, resource: Resource, names: list[str], printer: TablePrinter, rv: str
) -> int:
    params = {**_params(args), "watch": "true", "allowWatchBookmarks": "false"}
    if rv:
        params["resourceVersion"] = rv
    if names:
        params["fieldSelector"] = f"metadata.name={names[0]}"
    path = client.path(resource, _namespace(args, resource))
    with client.stream(path, params=params, accept=TABLE_ACCEPT) as lines:
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                raise CliError(f"error: watch failed: {status.get('message', '')}")
            if event.get("type") == "BOOKMARK":
                continue
            for row in printer.rows(event.get("object") or {}):
                sys.stdout.write(layout([row]))
            sys.stdout.flush()
    return 0
