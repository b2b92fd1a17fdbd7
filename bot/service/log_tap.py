"""A logger that lets an observer see each event before it is logged.

Order outcomes, funding settlements and failed risk steps are reported at a dozen call sites
(executor, risk watch, reconciliation, replay driver), each already with a log event whose
name and fields are a documented contract (``docs/log-events.md``). Counting those events is
complete by construction and needs no metrics object threaded through every one of them.
The tap is per daemon (it wraps the logger the daemon hands down), never a global structlog
processor, so two daemons in one process count apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

Sink = Callable[[str, Mapping[str, Any]], None]


class TappedLog:
    """Forwards every call to ``log``; ``sink`` sees (event, fields) first and may not fail
    the call (its errors are swallowed: monitoring never breaks trading)."""

    def __init__(self, log: Any, sink: Sink) -> None:
        self._log = log
        self._sink = sink

    def _see(self, event: Any, fields: Mapping[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a metric lost is better than a cycle lost
            self._sink(str(event), fields)

    def debug(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        self._see(event, fields)
        return self._log.debug(event, *args, **fields)

    def info(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        self._see(event, fields)
        return self._log.info(event, *args, **fields)

    def warning(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        self._see(event, fields)
        return self._log.warning(event, *args, **fields)

    def error(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        self._see(event, fields)
        return self._log.error(event, *args, **fields)

    def exception(self, event: Any = None, *args: Any, **fields: Any) -> Any:
        self._see(event, fields)
        return self._log.exception(event, *args, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)
