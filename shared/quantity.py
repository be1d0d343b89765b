"""Kubernetes resource quantities ("100m", "1.5", "128Mi", "1G"): parse and compare."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_PATTERN = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse(value: str | int | float) -> Decimal:
    """The quantity's value in base units; ValueError when it is not a quantity."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _PATTERN.match(value.strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {value!r}") from exc
    return number * _SUFFIXES[match.group(2)]


def milli(value: str | int | float) -> int:
    """CPU-style quantity in thousandths (``"250m"`` -> 250, ``"1"`` -> 1000)."""
    return int((parse(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def whole(value: str | int | float) -> int:
    """Memory-style quantity in base units, rounded up (``"1Ki"`` -> 1024)."""
    return int(parse(value).to_integral_value(rounding="ROUND_CEILING"))


def canonical(value: str | int | float) -> str:
    """The string form stored and served (Kubernetes serializes quantities as strings)."""
    parse(value)
    return str(value) if not isinstance(value, str) else value.strip()
