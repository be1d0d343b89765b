"""Output of the client verbs: server-side tables, YAML, JSON and ``kind/name``.

Tables come from the API server (``Accept: …;as=Table``) so the CLI prints exactly
the columns kubectl would; this module only lays them out as kubectl's tabwriter
does (columns padded by three spaces, upper-case headers).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from shared.resources import Resource

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
PADDING = 3


def cell_text(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def layout(rows: list[list[str]]) -> str:
    """Left-aligned columns padded like kubectl's tabwriter; no trailing spaces."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    lines = []
    for row in rows:
        parts = [text.ljust(widths[i] + PADDING) if i < len(row) - 1 else text for i, text in enumerate(row)]
        lines.append("".join(parts).rstrip())
    return "\n".join(lines) + "\n"


class TablePrinter:
    """Renders server Tables; remembers the columns so watch updates line up."""

    def __init__(self, *, wide: bool = False, namespace_column: bool = False, headers: bool = True) -> None:
        self.wide = wide
        self.namespace_column = namespace_column
        self.headers = headers
        self.columns: list[int] = []
        self.names: list[str] = []

    def set_columns(self, definitions: list[dict[str, Any]]) -> None:
        self.columns = [i for i, c in enumerate(definitions) if self.wide or int(c.get("priority") or 0) == 0]
        self.names = [str(definitions[i].get("name", "")).upper() for i in self.columns]

    def rows(self, table: dict[str, Any]) -> list[list[str]]:
        if table.get("columnDefinitions"):
            self.set_columns(table["columnDefinitions"])
        out = []
        for row in table.get("rows") or []:
            cells = row.get("cells") or []
            texts = [cell_text(cells[i]) if i < len(cells) else "" for i in self.columns]
            if self.namespace_column:
                meta = (row.get("object") or {}).get("metadata") or {}
                texts.insert(0, meta.get("namespace") or "")
            out.append(texts)
        return out

    def header(self) -> list[str]:
        return (["NAMESPACE"] if self.namespace_column else []) + self.names

    def render(self, table: dict[str, Any]) -> str:
        rows = self.rows(table)
        if not rows:
            return ""
        return layout(([self.header()] if self.headers else []) + rows)


def strip_for_output(obj: dict[str, Any]) -> dict[str, Any]:
    """Objects are printed as served, minus ``managedFields`` (kubectl hides them too)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def dump(obj: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4) + "\n"
    return str(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def object_name(resource: Resource, obj: dict[str, Any]) -> str:
    kind = f"{resource.kind.lower()}.{resource.group}" if resource.group else resource.kind.lower()
    return f"{kind}/{(obj.get('metadata') or {}).get('name', '')}"


__all__ = ["TABLE_ACCEPT", "TablePrinter", "as_list", "cell_text", "dump", "layout", "object_name", "strip_for_output"]
