"""The pure rules behind the ReplicaSet and Deployment controllers (no processes needed).

(Plain-object tests; they sit beside the controllers' integration tests.)
"""

from __future__ import annotations

from typing import Any

from services.controller_manager import deploy_util as du
from services.controller_manager.expectations import Expectations
from services.controller_manager.rs_util import scale_down_order, without_hash


def deployment(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "annotations": extra.pop("annotations", {})},
            "spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": surge, "maxUnavailable": unavailable}}, **extra}}


def test_fenceposts_round_surge_up_and_unavailability_down() -> None:
    assert du.fenceposts(deployment(10)) == (3, 2)
    assert du.fenceposts(deployment(3)) == (1, 0)
    assert du.fenceposts(deployment(4, 1, 1)) == (1, 1)
    # Both resolving to zero would stall a rollout: one may be unavailable.
    assert du.fenceposts(deployment(3, 0, "10%")) == (0, 1)
    assert du.max_unavailable(deployment(1, 0, 5)) == 1
    recreate = {"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}}
    assert du.max_surge(recreate) == 0 and du.max_unavailable(recreate) == 0


def test_template_hash_is_stable_short_and_ignores_the_hash_label() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    digest = du.template_hash(template)
    assert digest == du.template_hash(template) and 5 <= len(digest) <= 10
    assert set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
    labelled = {**template, "metadata": {"labels": {"app": "web", "pod-template-hash": digest}}}
    assert du.template_hash(labelled) == digest and du.equal_ignore_hash(labelled, template)
    # kubectl rollout undo spells out empty values the original left out.
    spelled = {"metadata": {"labels": {"app": "web"}, "annotations": {}},
               "spec": {"containers": [{"name": "a", "image": "x", "resources": {}}]}}
    assert du.equal_ignore_hash(spelled, template) and du.template_hash(spelled) == digest
    assert du.template_hash(template, 1) != digest
    changed = {**template, "spec": {"containers": [{"name": "a", "image": "y"}]}}
    assert du.template_hash(changed) != digest and without_hash(changed) != without_hash(template)


def pod(name: str, *, node: str | None = "n1", phase: str = "Running", ready: bool = True,
        ready_at: str = "2026-01-01T00:00:00Z", restarts: int = 0,
        created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": ready_at}],
                       "containerStatuses": [{"name": "a", "restartCount": restarts}]}}


def test_scale_down_order() -> None:
    pods = [
        pod("old"),
        pod("newer", created="2026-01-01T00:00:05Z"),
        pod("restarts", restarts=3),
        pod("recently-ready", ready_at="2026-01-01T00:01:00Z"),
        pod("not-ready", ready=False),
        pod("unknown", phase="Unknown"),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node=None, phase="Pending", ready=False),
    ]
    order = [p["metadata"]["name"] for p in scale_down_order(list(reversed(pods)))]
    assert order == ["unscheduled", "pending", "unknown", "not-ready", "recently-ready", "restarts", "newer", "old"]
    # Pods sharing a crowded node go before equally good pods alone on theirs.
    spread = [pod("alone", node="n2"), pod("crowded-1"), pod("crowded-2")]
    assert scale_down_order(spread)[0]["metadata"]["name"].startswith("crowded")


def test_expectations() -> None:
    clock = [0.0]
    exp = Expectations(ttl=10, clock=lambda: clock[0])
    assert exp.satisfied("ns/rs")
    exp.expect("ns/rs", adds=2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect("ns/rs", deletes=["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/other")
    assert exp.pending("ns/rs") == (0, frozenset({"ns/b"})) and exp.remaining("ns/rs") == 10
    exp.lower("ns/rs", deletes=["ns/b"])
    assert exp.satisfied("ns/rs")
    exp.expect("ns/rs", adds=1)
    clock[0] = 10.5  # a lost event never wedges the controller
    assert exp.satisfied("ns/rs")


def test_new_replica_set_size_respects_surge() -> None:
    d = deployment(4, 1, 1)
    old = {"metadata": {"name": "old"}, "spec": {"replicas": 4}}
    new = {"metadata": {"name": "new"}, "spec": {"replicas": 0}}
    assert du.new_rs_replicas(d, [old, new], new) == 1
    old["spec"]["replicas"] = 3
    new["spec"]["replicas"] = 1
    assert du.new_rs_replicas(d, [old, new], new) == 2
    assert du.new_rs_replicas({"spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}, [old], None) == 4


def test_proportional_shares() -> None:
    d = deployment(15, 3, 2)
    old = {"metadata": {"annotations": {du.MAX_REPLICAS: "13"}}, "spec": {"replicas": 8}}
    new = {"metadata": {"annotations": {du.MAX_REPLICAS: "13"}}, "spec": {"replicas": 5}}
    first = du.proportion(old, d, to_add=5, added=0)
    assert first == 3 and du.proportion(new, d, to_add=5, added=first) == 2
    assert du.proportion(old, deployment(0), to_add=-13, added=0) == -8


def test_revision_annotations_of_a_reused_replica_set() -> None:
    d = deployment(3, annotations={du.CHANGE_CAUSE: "undo", "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    rs = {"metadata": {"annotations": {du.REVISION: "1"}}, "spec": {"replicas": 0}}
    assert du.set_new_rs_annotations(d, rs, 3, exists=True)
    annotations = rs["metadata"]["annotations"]
    assert annotations == {du.REVISION: "3", du.REVISION_HISTORY: "1", du.CHANGE_CAUSE: "undo"}
    assert not du.set_new_rs_annotations(d, rs, 3, exists=True)
    du.set_new_rs_annotations(d, rs, 5, exists=True)
    assert annotations[du.REVISION_HISTORY] == "1,3"
    fresh = {"metadata": {}, "spec": {"replicas": 0}}
    du.set_new_rs_annotations(d, fresh, 1, exists=False)
    assert fresh["metadata"]["annotations"][du.DESIRED_REPLICAS] == "3"
    assert fresh["metadata"]["annotations"][du.MAX_REPLICAS] == "4"
