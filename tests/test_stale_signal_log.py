"""A stale signal is logged when it goes stale and when it recovers, not every cycle.

One bundled replay logged 11,484 ``signal.stale`` lines, the same 17 keys over and over:
noise that hides the line an operator needs. Driven through the paper daemon itself.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.domain.models import MarketSnapshot
from bot.service.daemon import Daemon
from tests.test_risk_watch import RecordingLog


class FlakyFeed:
    """The replay's signals, with one extra key stale on the steps listed."""

    def __init__(self, inner: object, stale_on: set[int]) -> None:
        self.inner = inner
        self.stale_on = stale_on
        self.calls = 0

    def snapshot(self, as_of: datetime) -> MarketSnapshot:
        snap: MarketSnapshot = self.inner.snapshot(as_of)  # type: ignore[attr-defined]
        self.calls += 1
        if self.calls in self.stale_on:
            return dataclasses.replace(snap, stale=snap.stale | {"funding:SOL"})
        return snap


def test_each_stale_signal_is_logged_once_and_its_recovery_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(tmp_path / "s.sqlite3"))
    # Mid-2023: the bundled sector metrics have ended, so several stay stale throughout.
    monkeypatch.setenv("SECTORBOT__REPLAY__START", "2023-09-01")
    monkeypatch.setenv("SECTORBOT__REPLAY__END", "2023-09-12")
    log = RecordingLog()
    daemon = Daemon(load_settings(None), log)
    daemon.cycle.signals = FlakyFeed(daemon.cycle.signals, stale_on={3, 4, 5, 9})
    steps = 0
    while daemon.step():
        steps += 1
    assert steps == 13
    went_stale = Counter(f["signal"] for f in log.named("signal.stale"))
    recovered = Counter(f["signal"] for f in log.named("signal.recovered"))
    assert len(went_stale) >= 3, "the period has stale metrics to log"
    lasting = {k for k in went_stale if k != "funding:SOL"}
    assert all(went_stale[k] == 1 for k in lasting), went_stale
    assert not lasting & set(recovered), "a signal stale all period never recovers"
    assert went_stale["funding:SOL"] == 2 and recovered["funding:SOL"] == 2
    days = [f["as_of"][:10] for f in log.named("signal.stale") if f["signal"] == "funding:SOL"]
    assert days == ["2023-09-03", "2023-09-09"]
    daemon.stop_event.set()
    assert daemon.shutdown() == 0
