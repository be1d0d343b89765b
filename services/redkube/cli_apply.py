"""``redkube apply -f FILE|DIR|- [--wait]``: create, or update by a three-way merge.

Like kubectl's client-side apply: the manifest is recorded in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation, and an update is a
strategic merge patch holding the new manifest plus deletions of what the previous
manifest had and this one drops (so fields other writers set, such as labels added
with ``label``, survive). A dry run first tells ``configured`` from ``unchanged``
without writing a no-op.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any

from services.redkube import cli_manifests, cli_wait
from services.redkube.cli_client import ApiStatusError, Client, CliError, by_manifest, display_name
from shared.patch import MERGE_KEYS

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
STRATEGIC = "application/strategic-merge-patch+json"
VOLATILE_META = ("resourceVersion", "generation", "managedFields")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", action="append", required=True, help="file, directory or - for stdin")
    parser.add_argument("--wait", action="store_true", help="wait for pods Running and deployments available")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to --wait before failing")


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def three_way(last: Any, new: Any) -> Any:
    """The patch from the previous manifest to the new one: new values plus explicit deletions."""
    if not isinstance(last, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {}
    for key, value in new.items():
        old = last.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            patch[key] = three_way(old, value)
        elif isinstance(value, list) and isinstance(old, list):
            patch[key] = _list_patch(key, old, value)
        else:
            patch[key] = copy.deepcopy(value)
    for key in last:
        if key not in new:
            patch[key] = None
    return patch


def _list_patch(field: str, old: list[Any], new: list[Any]) -> list[Any]:
    merge_key = _merge_key(field, old + new)
    if merge_key is None or not all(isinstance(i, dict) and merge_key in i for i in old + new):
        return copy.deepcopy(new)
    by_key = {i[merge_key]: i for i in old}
    patch = [three_way(by_key.get(i[merge_key]), i) for i in new]
    kept = {i[merge_key] for i in new}
    patch += [{merge_key: k, "$patch": "delete"} for k in by_key if k not in kept]
    return patch


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata") or {}
    for field in VOLATILE_META:
        meta.pop(field, None)
    # Only the recorded manifest's formatting differs (kubectl writes it slightly differently).
    (meta.get("annotations") or {}).pop(LAST_APPLIED, None)
    return obj


def last_applied(doc: dict[str, Any]) -> str:
    """The manifest as kubectl records it: Go's compact, key-sorted JSON with a newline.

    Byte-for-byte the same as kubectl's record, so kubectl and redkube can take turns
    applying one manifest and both see it unchanged.
    """
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _annotated(doc: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    recorded = copy.deepcopy(doc)
    meta = recorded.setdefault("metadata", {})
    if namespace:
        meta["namespace"] = namespace
    annotations = meta.setdefault("annotations", {})
    annotations.pop(LAST_APPLIED, None)
    new = copy.deepcopy(recorded)
    new["metadata"]["annotations"][LAST_APPLIED] = last_applied(recorded)
    return new


def apply_one(client: Client, doc: dict[str, Any], *, default_namespace: str) -> tuple[str, str]:
    """Apply one manifest; returns (``kind.group/name``, created|configured|unchanged)."""
    resource = by_manifest(doc)
    meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name")
    if not name:
        raise CliError("error: resource name may not be empty")
    namespace = (meta.get("namespace") or default_namespace) if resource.namespaced else None
    label = f"{display_name(resource)}/{name}"
    new = _annotated(doc, namespace)
    try:
        current = client.get(resource, namespace, name)
    except ApiStatusError as exc:
        if exc.http_code != 404:
            raise
        try:
            client.request("POST", client.path(resource, namespace), body=new)
        except ApiStatusError as failure:
            failure.action = "creating"
            raise
        return label, "created"
    recorded = ((current.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(recorded) if recorded else {}
    except ValueError:
        last = {}
    patch = three_way(last, new)
    path = client.path(resource, namespace, name)
    try:
        preview = client.request("PATCH", path, params={"dryRun": "All"}, body=patch, content_type=STRATEGIC)
        if _comparable(preview) == _comparable(current):
            return label, "unchanged"
        client.request("PATCH", path, body=patch, content_type=STRATEGIC)
    except ApiStatusError as failure:
        failure.action = "patching"
        raise
    return label, "configured"


def run(args: argparse.Namespace, client: Client) -> int:
    manifests = cli_manifests.read(args.filename)
    failed = False
    applied: list[dict[str, Any]] = []
    for manifest in manifests:
        try:
            label, outcome = apply_one(client, manifest.doc, default_namespace=args.namespace)
        except ApiStatusError as exc:
            failed = True
            action = exc.action or "retrieving current configuration of"
            print(
                f'Error from server ({exc.reason}): error when {action} "{manifest.source}": '
                f"{exc.status.get('message', '')}",
                file=sys.stderr,
            )
            continue
        print(f"{label} {outcome}", flush=True)
        applied.append(manifest.doc)
    if failed:
        return 1
    if args.wait:
        return cli_wait.wait_for_all(client, applied, default_namespace=args.namespace, timeout=args.timeout)
    return 0
