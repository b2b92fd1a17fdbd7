"""The pure core imports no I/O library; adapters depend on the core, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[1] / "bot" / "domain"
ALLOWED_STDLIB = {
    "__future__", "bisect", "collections", "dataclasses", "datetime", "decimal", "enum",
    "functools", "hashlib", "itertools", "json", "math", "operator", "statistics", "typing",
    "types", "abc", "re", "textwrap",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_only_stdlib_maths_and_itself() -> None:
    offenders = {}
    files = sorted(DOMAIN.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        bad = {m for m in imported_modules(path)
               if m.split(".")[0] not in ALLOWED_STDLIB and not m.startswith("bot.domain")}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}
