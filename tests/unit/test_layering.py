"""Services import ``shared``, never each other (the CLI's dispatcher excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_services_do_not_import_each_other() -> None:
    problems = []
    for service in (ROOT / "services").iterdir():
        if not service.is_dir() or service.name in ("redkube", "__pycache__"):
            continue
        for path in service.rglob("*.py"):
            for name in imports(path):
                if name.startswith("services.") and not name.startswith(f"services.{service.name}"):
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_shared_does_not_import_services() -> None:
    problems = [
        f"{p.relative_to(ROOT)} imports {n}"
        for p in (ROOT / "shared").rglob("*.py")
        for n in imports(p)
        if n.startswith("services")
    ]
    assert problems == []
