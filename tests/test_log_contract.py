"""Every event the code emits is documented in docs/log-events.md (the contract)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CALL = re.compile(r"\.(?:debug|info|warning|error|exception)\(\s*f?\"([a-z_]+\.[a-z_.{}]+)\"")


def emitted_events() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "bot").rglob("*.py"):
        names.update(CALL.findall(path.read_text()))
    return names


def test_every_emitted_event_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_.{}*]+)`", (REPO / "docs" / "log-events.md")
                                .read_text(), re.M))
    emitted = emitted_events()
    assert {"cycle.completed", "daemon.stopped", "order.submitted"} <= emitted
    missing = sorted(e for e in emitted if e not in documented)
    assert missing == []
