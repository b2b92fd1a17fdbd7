"""Operator commands (issue #16): ``status`` says whether a daemon holds the store and whether
its cycles are on time (exit 3 when stalled, by the /healthz rule), with P&L, fees and
funding, and ``--json``; ``orders`` and ``decisions`` list what ``explain`` takes; ``explain``
shows what was executed; APScheduler's own warnings are JSON log lines, not stderr text.

A paper daemon runs in-process on the bundled data (stops tight enough to fire, so the store
holds fills, stops and perps); the commands run through ``bot.cli.main`` beside it.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.cli import main
from bot.config import load_settings
from bot.service.daemon import Daemon
from bot.service.status import EXIT_STALLED, daemon_state, performance
from bot.store.engine import parse_target
from bot.store.owner import holder_of
from bot.store.repo import StateStore
from bot.store.schema import DecisionRow
from tests.test_risk_watch import RecordingLog

ENV = {"SECTORBOT__REPLAY__START": "2021-03-01", "SECTORBOT__RISK__STOP_LOSS_PCT": "0.5",
       "SECTORBOT__SIGNALS__DEFILLAMA": "false", "SECTORBOT__SIGNALS__GITHUB": "false"}


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(tmp_path / "state.sqlite3"))
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    running = Daemon(load_settings(None), RecordingLog())
    try:
        for _ in range(12):
            assert running.step()
        yield running
    finally:
        running.shutdown()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_status_names_the_running_daemon_and_turns_3_when_its_cycles_stall(
        daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = cli(capsys, "status")
    assert code == 0, text
    assert f"daemon: running (pid {os.getpid()}" in text
    assert "last cycle: " in text and "since start: " in text and "P&L: realised" in text
    code, body = cli(capsys, "status", "--json")
    status = json.loads(body)
    assert code == 0 and status["daemon"]["running"] is True
    assert status["daemon"]["stale_after_seconds"] == 2 * 1.0 + 10  # grace: 10 intervals
    assert status["daemon"]["last_cycle_age_seconds"] < 60
    # The last cycle two minutes ago on a 1 s tick: stalled, as /healthz would say.
    with daemon.store.session() as s:
        s.execute(update(DecisionRow).values(
            created_at=datetime.now(UTC) - timedelta(minutes=2)))
    code, text = cli(capsys, "status")
    assert code == EXIT_STALLED == 3
    assert "STALLED: last cycle completed for 120s > 12s (2 x 1s interval + 10s)" in text
    code, body = cli(capsys, "status", "--json")
    assert code == 3 and json.loads(body)["daemon"]["stalled"].startswith("last cycle")


def test_status_without_a_daemon_is_not_stalled_and_adds_up_the_pnl(
        daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.shutdown()
    target = parse_target(daemon.settings.state.target())
    assert holder_of(target) is None
    code, body = cli(capsys, "status", "--json")
    status = json.loads(body)
    assert code == 0 and status["daemon"]["running"] is False
    assert status["daemon"]["stalled"] is None
    perf = status["performance"]
    assert perf["starting_cash"] == "10000.00"
    assert Decimal(perf["realised_pnl"]) + Decimal(perf["unrealised_pnl"]) == Decimal(
        perf["change"])
    assert Decimal(perf["fees"]) > 0 and perf["max_drawdown_pct"] >= 0
    assert "daemon: not running" in cli(capsys, "status")[1]
    # Stale but nobody runs it: a stopped daemon is not a stalled one.
    store = StateStore(daemon.settings.state.target(), read_only=True)
    try:
        state = daemon_state(store, daemon.settings, None,
                             now=datetime.now(UTC) + timedelta(days=3))
        assert state.stalled is None
        assert performance(store)["equity"] == perf["equity"]
    finally:
        store.close()


def test_orders_and_decisions_list_ids_that_explain_takes(
        daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, body = cli(capsys, "orders", "--limit", "5", "--json")
    orders = json.loads(body)
    assert code == 0 and len(orders) == 5
    assert [o["created_at"] for o in orders] == sorted(o["created_at"] for o in orders)
    code, text = cli(capsys, "orders", "--limit", "3")
    assert code == 0 and all(o["client_id"] in text for o in orders[-3:])
    code, body = cli(capsys, "decisions", "--limit", "30", "--json")
    decisions = json.loads(body)
    assert code == 0 and len(decisions) == 12
    traded = next(d for d in decisions if d["orders"] > 0)
    code, text = cli(capsys, "decisions")
    assert traded["decision_id"] in text
    code, text = cli(capsys, "explain", traded["decision_id"][:12])
    assert code == 0 and "Executed:" in text and "plan p" in text
    assert "filled" in text and "fill " in text and "fee " in text
    assert cli(capsys, "orders", "--limit", "0")[0] == 2


def test_apscheduler_warnings_are_json_lines_not_stderr_text(
        capfd: pytest.CaptureFixture[str]) -> None:
    """An interval job still running when its next run is due (a venue cycle slower than
    the risk watch's minute): APScheduler warns through the stdlib logger, which printed
    plain text on stderr."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.logs import configure_logging

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    scheduler = BackgroundScheduler()
    scheduler.add_job(lambda: time.sleep(0.3), "interval", seconds=0.1, max_instances=1)
    scheduler.start()
    time.sleep(0.45)
    scheduler.shutdown(wait=False)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines and all(e["event"] == "scheduler.log" for e in lines)
    assert "maximum number of running instances" in lines[0]["message"]
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "apscheduler.scheduler"
    assert capfd.readouterr().err == ""
