from __future__ import annotations

import pytest

from shared import quantity


@pytest.mark.parametrize(("value", "milli"), [("100m", 100), ("1", 1000), ("0.5", 500), (2, 2000), ("1.5k", 1_500_000)])
def test_cpu(value: str | int, milli: int) -> None:
    assert quantity.milli(value) == milli


@pytest.mark.parametrize(("value", "whole"), [("128Mi", 128 * 2**20), ("1G", 10**9), ("1Ki", 1024), ("1e3", 1000)])
def test_memory(value: str, whole: int) -> None:
    assert quantity.whole(value) == whole


@pytest.mark.parametrize("bad", ["abc", "1Zi", "", True])
def test_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        quantity.parse(bad)  # type: ignore[arg-type]
