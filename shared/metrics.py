"""A small Prometheus registry: counters and gauges, rendered in the text format."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(34), chr(39))}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Metrics:
    """One per process; components add to it, ``/metrics`` renders it."""

    def __init__(self, namespace: str = "redkube") -> None:
        self._ns = namespace
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], float]] = {}
        self._help: dict[str, str] = {}

    def inc(self, name: str, amount: float = 1, *, help: str = "", **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._counters[name]
        series[key] = series.get(key, 0) + amount
        if help:
            self._help.setdefault(name, help)

    def gauge(self, name: str, read: Callable[[], float], *, help: str = "") -> None:
        self._gauges[name] = read
        if help:
            self._help.setdefault(name, help)

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            full = f"{self._ns}_{name}"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} counter")
            for key, value in sorted(series.items()):
                lines.append(f"{full}{_labels(dict(key))} {value:g}")
        for name, read in sorted(self._gauges.items()):
            full = f"{self._ns}_{name}"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} gauge")
            lines.append(f"{full} {read():g}")
        return "\n".join(lines) + "\n"
