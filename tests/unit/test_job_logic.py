"""Pure parts of the Job controller: pods from the template, back-off, expectations."""

from __future__ import annotations

import time

from services.controller_manager.expectations import Expectations
from services.controller_manager.job import backoff_remaining, new_pod


def test_new_pod_from_template() -> None:
    job = {"metadata": {"name": "pi", "namespace": "ns", "uid": "u1"},
           "spec": {"template": {"metadata": {"labels": {"job-name": "pi"}, "annotations": {"a": "b"}},
                                 "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}}
    pod = new_pod(job)
    assert pod["metadata"]["generateName"] == "pi-" and pod["metadata"]["namespace"] == "ns"
    assert pod["metadata"]["labels"] == {"job-name": "pi"} and pod["metadata"]["annotations"] == {"a": "b"}
    ref = pod["metadata"]["ownerReferences"][0]
    assert ref == {"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "u1", "controller": True,
                   "blockOwnerDeletion": True}
    pod["spec"]["containers"].append({"name": "x"})
    assert len(job["spec"]["template"]["spec"]["containers"]) == 1  # the template is not shared


def test_backoff_grows_from_the_newest_failure() -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    failed = {"status": {"containerStatuses": [{"state": {"terminated": {"finishedAt": stamp}}}]}}
    assert backoff_remaining([], 0, now) == 0
    assert 0 < backoff_remaining([failed], 1, now) <= 1.0
    assert 2.0 < backoff_remaining([failed], 3, now) <= 4.0
    assert backoff_remaining([failed], 20, now) <= 60.0
    assert backoff_remaining([failed], 1, now + 5) == 0
    assert backoff_remaining([{"status": {}}], 2, now) == 0  # no finish time known: no wait


def test_expectations() -> None:
    exp = Expectations(ttl=60)
    assert exp.satisfied("a")
    exp.expect_creations("a", 2)
    exp.creation_observed("a")
    assert not exp.satisfied("a")
    exp.creation_observed("a")
    assert exp.satisfied("a")
    exp.expect_deletions("a", ["ns/p1"])
    assert not exp.satisfied("a")
    exp.deletion_observed("a", "ns/p1")
    assert exp.satisfied("a")
    short = Expectations(ttl=0.0)
    short.expect_creations("b", 1)
    assert short.satisfied("b")  # expired: assumed lost


def test_indexed_pods_and_completed_indexes() -> None:
    from services.controller_manager.job import format_indexes, pod_index

    job = {"metadata": {"name": "ix", "namespace": "ns", "uid": "u1"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}}}}
    pod = new_pod(job, index=3)
    assert pod["metadata"]["generateName"] == "ix-3-" and pod_index(pod) == 3
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                                   {"name": "JOB_COMPLETION_INDEX", "value": "3"}]
    assert pod["spec"]["hostname"] == "ix-3"
    assert "annotations" not in new_pod(job)["metadata"]
    assert format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_indexes({4}) == "4" and format_indexes(set()) == ""
