from __future__ import annotations

import pytest

from shared import selectors


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web,tier!=db", {"app": "web", "tier": "front"}, True),
        ("app in (web, api)", {"app": "api"}, True),
        ("app notin (web)", {}, True),
        ("!canary", {"canary": "1"}, False),
        ("canary", {"canary": ""}, True),
        ("env", {}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selectors(text: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.parse_labels(text).matches(labels) is expected


@pytest.mark.parametrize("bad", ["app in (web", "a b c", "-bad=x", "app=" + "x" * 64])
def test_bad_label_selectors(bad: str) -> None:
    with pytest.raises(selectors.SelectorError):
        selectors.parse_labels(bad)


def test_label_selector_objects_round_trip() -> None:
    obj = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}
    matcher = selectors.from_label_selector(obj)
    assert matcher.matches({"app": "web", "tier": "b"}) and not matcher.matches({"app": "web"})
    assert selectors.to_string(obj) == "app=web,tier in (a,b)"
    assert not selectors.from_label_selector(None).matches({})


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    sel = selectors.parse_fields(
        "spec.nodeName=n1,status.phase!=Succeeded", allowed=frozenset({"spec.nodeName", "status.phase"})
    )
    assert sel.matches(pod) and sel.value_of("spec.nodeName") == "n1"
    with pytest.raises(selectors.SelectorError, match="not supported"):
        selectors.parse_fields("spec.other=x", allowed=frozenset({"spec.nodeName"}))
