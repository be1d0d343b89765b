from __future__ import annotations

import pytest

from shared import patch


def test_merge_patch_removes_nulls_and_merges_maps() -> None:
    assert patch.merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None, "e": 3}, "d": [2]}) == {
        "a": {"c": 2, "e": 3},
        "d": [2],
    }


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = patch.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "test", "path": "/d", "value": 2},
            {"op": "remove", "path": "/a/0"},
        ],
    )
    assert out == {"a": [2, 3], "b": {}, "d": 2} and doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "remove", "path": "/missing"}])


def test_strategic_merge_merges_containers_by_name() -> None:
    live = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
            "finalizers": ["f1"],
        }
    }
    out = patch.strategic_merge(
        live,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [
                    {"name": "a", "env": [{"name": "K2", "value": "2"}]},
                    {"name": "b", "$patch": "delete"},
                    {"name": "c", "image": "z"},
                ],
                "finalizers": ["f2"],
            }
        },
    )
    names = [c["name"] for c in out["spec"]["containers"]]
    assert names == ["a", "c"]
    assert out["spec"]["containers"][0]["env"] == [{"name": "K", "value": "1"}, {"name": "K2", "value": "2"}]
    assert out["spec"]["finalizers"] == ["f1", "f2"]


def test_strategic_merge_replaces_lists_without_merge_key() -> None:
    assert patch.strategic_merge({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}


def test_unknown_patch_type() -> None:
    with pytest.raises(patch.PatchError, match="unsupported"):
        patch.apply({}, {}, "application/xml")
