"""Pure pieces of the redkube CLI and the OpenAPI documents: patches, printers, progress, schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.apiserver import openapi
from services.redkube import cli_apply, cli_client, cli_manifests, cli_nodes, cli_printers, cli_wait
from shared import patch
from shared.resources import RESOURCES


def test_three_way_patch_deletes_what_the_last_manifest_dropped() -> None:
    last = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [{"name": "x", "image": "i", "env": [{"name": "A"}, {"name": "B"}]}, {"name": "y"}]},
    }
    new = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"containers": [{"name": "x", "image": "j", "env": [{"name": "A"}]}]},
    }
    delta = cli_apply.three_way(last, new)
    assert delta["metadata"]["labels"] == {"a": "1", "b": None}
    live = {
        "metadata": {"labels": {"a": "1", "b": "2", "other": "kept"}},
        "spec": {"containers": [{"name": "x", "image": "i", "env": [{"name": "A"}, {"name": "B"}]}, {"name": "y"}]},
    }
    merged = patch.strategic_merge(live, delta)
    assert merged["metadata"]["labels"] == {"a": "1", "other": "kept"}
    assert merged["spec"]["containers"] == [{"name": "x", "image": "j", "env": [{"name": "A"}]}]


def test_last_applied_is_what_kubectl_writes() -> None:
    doc = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "annotations": {"x": "<&>"}}}
    assert cli_apply.last_applied(doc) == (
        '{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{"x":"\\u003c\\u0026\\u003e"},"name":"p"}}\n'
    )
    annotated = cli_apply._annotated({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "default")
    recorded = json.loads(annotated["metadata"]["annotations"][cli_apply.LAST_APPLIED])
    assert recorded["metadata"] == {"annotations": {}, "name": "p", "namespace": "default"}


def test_layout_pads_like_tabwriter() -> None:
    assert cli_printers.layout([["NAME", "READY"], ["web-long", "1/1"]]) == "NAME       READY\nweb-long   1/1\n"
    printer = cli_printers.TablePrinter(wide=False, namespace_column=True)
    table = {
        "columnDefinitions": [
            {"name": "Name", "priority": 0},
            {"name": "IP", "priority": 1},
            {"name": "Age", "priority": 0},
        ],
        "rows": [{"cells": ["web", "1.2.3.4", "5s"], "object": {"metadata": {"namespace": "ns"}}}],
    }
    assert printer.render(table) == "NAMESPACE   NAME   AGE\nns          web    5s\n"
    assert cli_printers.TablePrinter(wide=True).rows(table) == [["web", "1.2.3.4", "5s"]]


def deployment(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "d", "generation": 2}, "spec": {"replicas": 3}, "status": status}


def test_deployment_progress_reads_like_kubectl() -> None:
    assert cli_wait.deployment_progress(deployment(observedGeneration=1))[1] is False
    message, done = cli_wait.deployment_progress(deployment(observedGeneration=2, updatedReplicas=1, replicas=3))
    assert "1 out of 3 new replicas have been updated" in message and not done
    message, _ = cli_wait.deployment_progress(deployment(observedGeneration=2, updatedReplicas=3, replicas=4))
    assert "1 old replicas are pending termination" in message
    message, _ = cli_wait.deployment_progress(
        deployment(observedGeneration=2, updatedReplicas=3, replicas=3, availableReplicas=2)
    )
    assert "2 of 3 updated replicas are available" in message
    assert cli_wait.deployment_progress(
        deployment(observedGeneration=2, updatedReplicas=3, replicas=3, availableReplicas=3)
    )[1]
    stuck = deployment(observedGeneration=2, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(cli_wait.RolloutFailed, match="exceeded its progress deadline"):
        cli_wait.deployment_progress(stuck)


def test_nodes_summary_counts_requests() -> None:
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}
    pods = [
        {"spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}]}},
        {"spec": {"nodeName": "n1", "containers": [{"resources": {"limits": {"cpu": "250m"}}}]}},
        {
            "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": "Succeeded"},
        },
    ]
    row = cli_nodes.summary([node], pods).splitlines()[1].split()
    assert row == ["n1", "Unknown", "2/10", "500m/1000m", "50%", "256Mi/1Gi", "25%"]


def test_manifests_multi_document_lists_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n"
    )
    (tmp_path / "b.json").write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}')
    (tmp_path / "notes.txt").write_text("ignored")
    assert [m.doc["metadata"]["name"] for m in cli_manifests.read([str(tmp_path)])] == ["a", "s", "n"]
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    with pytest.raises(cli_client.CliError, match="error converting YAML to JSON"):
        cli_manifests.read([str(tmp_path / "bad.yaml")])
    (tmp_path / "nokind.yaml").write_text("metadata: {name: x}\n")
    with pytest.raises(cli_client.CliError, match="apiVersion not set; kind not set"):
        cli_manifests.read([str(tmp_path / "nokind.yaml")])


def test_kubeconfig_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("REDKUBE_HOME", str(tmp_path))
    assert cli_client.kubeconfig_path() == tmp_path / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "k"))
    assert cli_client.kubeconfig_path() == tmp_path / "k"
    assert cli_client.kubeconfig_path("/x/y") == Path("/x/y")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.delenv("REDKUBE_HOME")
    assert cli_client.kubeconfig_path() == Path.home() / ".redkube" / "kubeconfig"


# --- OpenAPI ---------------------------------------------------------------------------


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in openapi.root_document()["paths"]:
        doc = openapi.document(f"/openapi/v3/{path}")
        assert doc is not None
        docs.append(doc)
    return docs


def test_openapi_refs_resolve_and_every_kind_has_its_gvk() -> None:
    kinds = set()
    for doc in _documents():
        schemas = doc["components"]["schemas"]
        for ref in openapi._refs(doc):
            assert ref in schemas, ref
        for schema in schemas.values():
            kinds |= {g["kind"] for g in schema.get("x-kubernetes-group-version-kind", [])}
    assert {r.kind for r in RESOURCES} <= kinds
    assert {r.list_kind for r in RESOURCES} <= kinds


def test_openapi_keeps_field_validation_on_patch() -> None:
    for doc in _documents():
        for path, item in doc["paths"].items():
            if "patch" in item:
                names = {p["name"] for p in item["patch"]["parameters"]}
                assert "fieldValidation" in names, path


def test_openapi_schema_shapes() -> None:
    schemas = openapi.component_schemas()
    spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert spec["containers"]["items"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]
    assert spec["volumes"]["x-kubernetes-patch-strategy"] == "merge"
    assert spec["hostNetwork"] == {"type": "boolean"}
    assert spec["overhead"]["x-kubernetes-preserve-unknown-fields"] is True
    container = schemas["io.k8s.api.core.v1.Container"]["properties"]
    assert container["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    assert container["volumeMounts"]["x-kubernetes-patch-merge-key"] == "mountPath"
    assert "anyOf" not in json.dumps(container["image"])
    service_ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert service_ports["x-kubernetes-patch-merge-key"] == "port"
    endpoint_addresses = schemas["io.k8s.api.core.v1.EndpointSubset"]["properties"]["addresses"]
    assert "x-kubernetes-patch-merge-key" not in endpoint_addresses  # atomic, as in Kubernetes
    meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["finalizers"]["x-kubernetes-patch-strategy"] == "merge"
    assert meta["labels"]["additionalProperties"] == {"type": "string"}
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert "required" not in pod
