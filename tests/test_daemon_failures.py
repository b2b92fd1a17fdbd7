"""Issue #10, case 6: failure counting that a swallowed error elsewhere cannot reset.

At fcf230a one counter served every job: the hourly signal refresh (which marks what it
cannot read stale instead of raising) reset it on each run, so a risk watch failing every
minute never reached the repeated-failures kill switch. Each job now keeps its own count.
The daemon runs in-process in paper mode on the bundled data; the venue's position reads
are made to fail (the paper exchange has no fault injection of its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.exchange.port import ExchangeUnavailable
from bot.service.daemon import Daemon
from bot.service.risk_watch import MAX_CONSECUTIVE_FAILURES
from tests.test_risk_watch import RecordingLog


def test_risk_watch_failures_trip_the_kill_switch_between_successful_signal_jobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "paper.toml"
    config.write_text('[state]\npath = "state.sqlite3"\n')
    log = RecordingLog()
    daemon = Daemon(load_settings(config), log)
    try:
        assert daemon.step()

        def positions_unreadable(*_: Any) -> list[Any]:
            raise ExchangeUnavailable("positionRisk failed 5 times")

        monkeypatch.setattr(daemon.exchange, "fetch_positions", positions_unreadable)
        risk_job = daemon._job(daemon._risk_job, "risk_watch")
        signals_job = daemon._job(daemon._signals_job, "signals")
        for _ in range(MAX_CONSECUTIVE_FAILURES + 1):
            risk_job()
            signals_job()  # succeeds: it must not wipe the risk watch's run of failures
        assert daemon.store.active_kill_switch() is not None
        (tripped,) = log.named("killswitch.tripped")
        assert "consecutive failed jobs" in tripped["reason"]
        assert daemon.failures["signals"] == 0
    finally:
        monkeypatch.undo()
        daemon.shutdown()
