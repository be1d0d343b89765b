"""Label and field selectors, parsed as Kubernetes parses them.

``parse_labels("app=web,tier in (a,b),!canary")`` and ``parse_fields("spec.nodeName=n1")``
return matchers; a malformed selector raises ``SelectorError`` (a 400 at the API).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "=="):
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt"):
            if not present:
                return False
            try:
                number = int(value or "")
            except ValueError:
                return False
            limit = int(self.values[0])
            return number > limit if self.op == "gt" else number < limit
        return False


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _check_key(key: str) -> str:
    if not _KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise SelectorError(
            f"invalid label key {key!r}: name part must consist of alphanumeric "
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f"invalid label value: {value!r}: must be 63 characters or less and "
            "consist of alphanumeric characters, '-', '_' or '.'"
        )
    return value


_SET = re.compile(r"^(\S+)\s+(in|notin)\s+\((.*)\)$")


def parse_labels(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    requirements = []
    for part in _split_top(text):
        if m := _SET.match(part):
            values = tuple(_check_value(v.strip()) for v in m.group(3).split(",") if v.strip())
            if not values:
                raise SelectorError(f"unable to parse requirement: {part!r}: values list is empty")
            requirements.append(Requirement(_check_key(m.group(1)), m.group(2), values))
        elif part.startswith("!"):
            requirements.append(Requirement(_check_key(part[1:].strip()), "!"))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append(Requirement(_check_key(key.strip()), "!=", (_check_value(value.strip()),)))
        elif "==" in part or "=" in part:
            key, value = re.split(r"==?", part, maxsplit=1)
            requirements.append(Requirement(_check_key(key.strip()), "=", (_check_value(value.strip()),)))
        elif re.match(r"^\S+\s*[<>]\s*\d+$", part):
            key, op, value = re.split(r"\s*([<>])\s*", part)
            requirements.append(Requirement(_check_key(key), "gt" if op == ">" else "lt", (value,)))
        elif " " in part or "(" in part:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        else:
            requirements.append(Requirement(_check_key(part), "exists"))
    return LabelSelector(tuple(requirements))


def from_label_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """The matcher for a ``metav1.LabelSelector`` object (matchLabels + matchExpressions)."""
    if selector is None:
        return LabelSelector((Requirement("", "!"), Requirement("", "exists")))  # matches nothing
    requirements = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(expr.get("operator", ""))
        if op is None:
            raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
        requirements.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(requirements))


def to_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector object as the string kubectl shows and accepts."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or [])
        parts.append(
            {
                "In": f"{expr['key']} in ({values})",
                "NotIn": f"{expr['key']} notin ({values})",
                "Exists": expr["key"],
                "DoesNotExist": f"!{expr['key']}",
            }.get(op, "")
        )
    return ",".join(parts)


# --- field selectors ---------------------------------------------------------------

FieldGetter = Callable[[Mapping[str, Any]], str]


def field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, str, str], ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, op, value in self.requirements:
            actual = field_value(obj, path)
            if (op == "=") != (actual == value):
                return False
        return True

    def value_of(self, path: str) -> str | None:
        for p, op, value in self.requirements:
            if p == path and op == "=":
                return value
        return None


def parse_fields(text: str | None, *, allowed: frozenset[str] | None = None, kind: str = "") -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    requirements = []
    for part in _split_top(text):
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
        path, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if allowed is not None and path not in allowed:
            raise SelectorError(f"field label not supported: {path}" + (f" for {kind}" if kind else ""))
        requirements.append((path, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(requirements))
