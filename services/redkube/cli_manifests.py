"""Reading manifests for ``apply -f`` and ``delete -f``: files, directories, stdin.

Multi-document YAML and JSON are accepted, and ``kind: List`` is unpacked, as kubectl
does. A malformed document is an error naming its source, before anything is sent.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.redkube.cli_client import CliError

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Manifest:
    source: str
    doc: dict[str, Any]


def _files(target: str) -> list[tuple[str, str]]:
    if target == "-":
        return [("STDIN", sys.stdin.read())]
    path = Path(target)
    if path.is_dir():
        return [(str(p), p.read_text()) for p in sorted(path.iterdir()) if p.suffix in SUFFIXES and p.is_file()]
    try:
        return [(target, path.read_text())]
    except OSError as exc:
        raise CliError(f'error: the path "{target}" does not exist') from exc


def _unpack(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        return [i for item in doc["items"] if isinstance(item, dict) for i in _unpack(item)]
    return [doc]


def read(targets: list[str]) -> list[Manifest]:
    manifests: list[Manifest] = []
    for target in targets:
        for source, text in _files(target):
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError as exc:
                raise CliError(f"error: error parsing {source}: error converting YAML to JSON: {exc}") from exc
            for doc in docs:
                if doc is None:
                    continue
                if not isinstance(doc, dict):
                    raise CliError(f"error: error validating {source}: a manifest must be a YAML or JSON object")
                for item in _unpack(doc):
                    missing = [f for f in ("apiVersion", "kind") if not item.get(f)]
                    if missing:
                        raise CliError(
                            f'error: error validating "{source}": error validating data: '
                            + "; ".join(f"{f} not set" for f in missing)
                        )
                    manifests.append(Manifest(source, item))
    if not manifests:
        raise CliError("error: no objects passed to apply")
    return manifests


__all__ = ["Manifest", "read"]
