"""One rule for every test: the process-wide logger never outlives the test that set it.

Tests configure structlog to a buffer or to pytest's captured stdout, which is closed when
the test ends; code that logs through the process-wide logger (``bot.logs.get_logger``, as
the state store does) then failed in whichever later test happened to log first, only in a
full run. After each test the logger is pointed at a sink that is never closed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging


class _Sink(io.StringIO):
    """Discards what it is given and cannot be closed."""

    def write(self, text: str) -> int:
        return len(text)

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _logger_outlives_no_test() -> Iterator[None]:
    yield
    configure_logging("info", "json", stream=_Sink())
