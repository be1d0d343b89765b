"""Discovery documents: /api, /apis, group/version resource lists, /version.

Served as plain ``application/json`` (legacy discovery), which kubectl v1.32 accepts
when the server does not offer the aggregated format.
"""

from __future__ import annotations

import platform
from typing import Any

from shared.resources import GROUPS, RESOURCES, Resource

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-redkube",
    "gitCommit": "redkube",
    "gitTreeState": "clean",
    "buildDate": "2026-12-04T00:00:00Z",
    "goVersion": f"python{platform.python_version()}",
    "compiler": "cpython",
    "platform": f"{platform.system().lower()}/{platform.machine()}",
}

SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "finalize": ["update"],
}
SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "log": ("", "v1", "Pod"),
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_groups() -> dict[str, Any]:
    groups = []
    for group, versions in GROUPS.items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    versions = GROUPS.get(group)
    if not group or versions is None:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}


def _entry(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.name,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    matching = [r for r in RESOURCES if r.group == group and r.version == version]
    if not matching:
        return None
    entries = []
    for resource in matching:
        entries.append(_entry(resource))
        for sub in resource.subresources:
            item: dict[str, Any] = {
                "name": f"{resource.plural}/{sub}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
            if sub in SUBRESOURCE_KINDS:
                g, v, k = SUBRESOURCE_KINDS[sub]
                item["kind"] = k
                if g:
                    item["group"], item["version"] = g, v
            entries.append(item)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
