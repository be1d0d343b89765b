"""Kinds stored without a controller (Ingress, NetworkPolicy, PDB, HPA, PVC) apply as in a
cluster without those add-ons, so real multi-document manifests do not fail halfway."""

from __future__ import annotations

from tests.harness import ROOT, Cluster

MANIFEST = (ROOT / "examples" / "passive-kinds.yaml").read_text()


def test_passive_kinds_apply_get_and_update(api: Cluster) -> None:
    created = api.kubectl("apply", "-f", "-", input=MANIFEST).stdout
    for line in ("ingress.networking.k8s.io/web created", "poddisruptionbudget.policy/web created",
                 "horizontalpodautoscaler.autoscaling/web created", "persistentvolumeclaim/data created",
                 "networkpolicy.networking.k8s.io/deny created"):
        assert line in created
    changed = api.kubectl("apply", "-f", "-", input=MANIFEST.replace("maxReplicas: 5", "maxReplicas: 7"))
    assert "horizontalpodautoscaler.autoscaling/web configured" in changed.stdout
    assert "error calculating patch" not in changed.stderr
    assert api.kubectl_json("get", "hpa", "web")["spec"]["maxReplicas"] == 7
    ingress = api.kubectl_json("get", "ingress", "web")
    assert ingress["spec"]["rules"][0]["host"] == "web.example.com"
    assert api.kubectl("get", "pdb,pvc,netpol", "-o", "name").stdout.split() == [
        "poddisruptionbudget.policy/web", "persistentvolumeclaim/data", "networkpolicy.networking.k8s.io/deny"]
    api.kubectl("delete", "-f", "-", input=MANIFEST)
    assert api.kubectl("get", "ing,pdb,hpa,pvc,netpol", "-o", "name").stdout.strip() == ""
