"""The garbage collector's ownership graph."""

from __future__ import annotations

from typing import Any

from services.controller_manager.garbage_collector import Graph


class FakeInformer:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)


def obj(name: str, uid: str, *owners: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "uid": uid,
                         "ownerReferences": [{"uid": o, "kind": "ReplicaSet", "name": o} for o in owners]}}


def test_graph_tracks_owners_and_dependents() -> None:
    pods, rss = FakeInformer(), FakeInformer()
    graph = Graph({"pods": pods, "replicasets": rss})  # type: ignore[dict-item]
    rs = obj("rs", "r1")
    rss.objects["d/rs"] = rs
    graph.observe(("replicasets", "d/rs"), rs, None, deleted=False)
    pod = obj("p", "p1", "r1")
    pods.objects["d/p"] = pod
    graph.observe(("pods", "d/p"), pod, None, deleted=False)
    assert graph.by_uid("r1") is rs
    assert [item for item, _ in graph.dependents_of("r1")] == [("pods", "d/p")]

    released = obj("p", "p1")
    pods.objects["d/p"] = released
    graph.observe(("pods", "d/p"), released, pod, deleted=False)
    assert graph.dependents_of("r1") == []

    del rss.objects["d/rs"]
    graph.observe(("replicasets", "d/rs"), rs, rs, deleted=True)
    assert graph.by_uid("r1") is None
