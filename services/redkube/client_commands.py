"""Client verbs of the ``redkube`` CLI (apply, get, describe, delete, ...)."""

from __future__ import annotations

from typing import Any


def add_parsers(sub: Any) -> None:
    return None
