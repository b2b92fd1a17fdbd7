"""Short console lines: the ``--log-format console`` renderer shows each field within a
budget, so a line stays readable in a terminal (``decision.made`` carries every weight and
reason; ``universe.dropped`` dozens of tokens). Only the console is shortened: the JSON log,
the contract (docs/log-events.md), keeps every value whole.

A long string is cut with ``...``; a list, tuple or dict shows its first items and how many
it left out (``['1INCH', 'API3', ... +33 more]``); a field whose value is None is left out
and the timestamp is shown to the second. The event name and level are never touched.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

VALUE_BUDGET = 60
"""Characters one field's value may take on a console line (its repr)."""

_KEEP = frozenset({"event", "level", "timestamp", "exception"})


def shorten(value: Any, budget: int = VALUE_BUDGET) -> Any:
    """``value`` as it should print on a console line: itself when short, else a string
    of at most about ``budget`` characters that says what was left out."""
    text = repr(value)
    if len(text) <= budget:
        return value
    if isinstance(value, str):
        return _Shown(repr(value[:max(budget - 5, 1)])[:-1] + "...'")
    if isinstance(value, dict):
        items = [f"{k!r}: {v!r}" for k, v in value.items()]
        return _Shown(_fit(items, budget, "{", "}"))
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return _Shown(_fit([repr(v) for v in seq], budget, "[", "]"))
    return _Shown(text[:budget - 3] + "...")


def _fit(items: list[str], budget: int, opening: str, closing: str) -> str:
    shown: list[str] = []
    used = len(opening) + len(closing)
    for item in items:
        if len(item) > budget // 2:
            item = item[:budget // 2 - 3] + "..."
        if used + len(item) + 2 > budget and shown:
            break
        shown.append(item)
        used += len(item) + 2
    left = len(items) - len(shown)
    return opening + ", ".join(shown) + (f", ... +{left} more" if left else "") + closing


class _Shown(str):
    """A value already shortened: printed as is (the console renderer would quote a str)."""

    def __repr__(self) -> str:
        return str(self)


def shorten_for_console(_logger: Any, _method: str,
                        event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor, console format only (before the renderer, after the secrets are
    scrubbed: a value is cut only once it cannot hold a secret any more)."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in _KEEP:
            continue
        if value is None:  # "trigger_price=None": nothing to read on a console line
            del event_dict[key]
        else:
            event_dict[key] = shorten(value)
    stamp = event_dict.get("timestamp")
    if isinstance(stamp, str) and len(stamp) > 20 and stamp[19] == ".":
        event_dict["timestamp"] = stamp[:19] + "Z"  # seconds are enough for a human
    return event_dict
