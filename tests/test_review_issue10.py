"""Defects a read-only review found in the issue #10 changes before they were resolved.

Each test failed on the code as first written (commit 0b6a645):
1. a leg that filled while a shutdown was pending lost its stop to one transient error
   (reads were cut to one try once a stop was requested);
4. a step that failed before the cycle (reconcile) was not counted as a failed job;
5. stop refusals of an earlier position closed a new position without one stop tried;
7. a resumed plan re-sent a never-sent order without the slippage check.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.domain.models import MarketKind, OrderIntent, OrderResult, OrderStatus, OrderType, Side
from bot.domain.planner import Plan
from bot.exchange.port import ExchangeUnavailable
from bot.service.daemon import Daemon
from bot.service.executor import ExecutionReport
from bot.service.reconcile import NEVER_SENT
from bot.store.repo import StateStore
from tests.exchange_emulator import BinanceEmulator
from tests.test_risk_watch import RecordingLog
from tests.test_slippage_guard import long_open, paper_rig
from tests.test_stop_lifecycle import long_open as perp_open


class StopOnFirstPerpOrder(BinanceEmulator):
    """Requests the daemon's stop (as SIGTERM's handler does) when the first perp order
    arrives, and fails the next position read once."""

    daemon: Daemon | None = None

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        if (method == "POST" and raw_path.startswith("/fapi/v1/order") and self.daemon
                is not None and not self.daemon.stop_event.is_set()):
            self.daemon.stop_event.set()
            self.inject_status(503, times=1, path="/fapi/v3/positionRisk")
        return super().handle(method, raw_path, headers, body)


def test_a_leg_filled_while_stopping_still_gets_its_stop_through_a_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon as wired for demo mode (its adapter, its stop event). SIGTERM arrives
    while the ARB leg is in flight: the SOL leg is skipped, and the ARB position is
    protected although the first position read after the fill fails."""
    from ccxt.base.exchange import Exchange

    from tests.exchange_emulator.transport import RerouteAdapter

    with StopOnFirstPerpOrder("demo-key-review", "demo-secret-review") as emu:
        original = Exchange.__init__

        def routed(self: Any, config: Any = None) -> None:
            original(self, {} if config is None else config)
            self.enableRateLimit = False
            self.session.mount("https://", RerouteAdapter(emu.base_url))

        monkeypatch.setattr(Exchange, "__init__", routed)
        config = tmp_path / "demo.toml"
        config.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n\n'
                          '[state]\npath = "state.sqlite3"\n')
        monkeypatch.setenv("SECTORBOT__EXCHANGE__API_KEY", "demo-key-review")
        monkeypatch.setenv("SECTORBOT__EXCHANGE__API_SECRET", "demo-secret-review")
        daemon = Daemon(load_settings(config), RecordingLog())
        try:
            emu.daemon = daemon
            plan = Plan((perp_open("sb-stop-arb", "ARB", "200"),
                         perp_open("sb-stop-sol", "SOL", "2")), (), {"ARB": 0.08, "SOL": 0.08})
            report = daemon.cycle.executor.execute(plan, "d-stopping", 0.08)
            assert report.halted and report.stops_failed == 0
            assert emu.book.positions["ARBUSDT"].qty == Decimal(200)
            (stop,) = [a for a in emu.book.algos.values()
                       if a.symbol == "ARBUSDT" and a.status == "NEW"]
            assert stop.qty == Decimal(200)
            assert "SOLUSDT" not in emu.book.positions  # no new order after the request
        finally:
            assert daemon.shutdown() == 0


def test_a_step_that_fails_before_the_cycle_counts_as_a_failed_cycle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "paper.toml"
    config.write_text('[state]\npath = "state.sqlite3"\n')
    daemon = Daemon(load_settings(config), RecordingLog())
    try:
        def unreadable(*_: Any) -> list[Any]:
            raise ExchangeUnavailable("positionRisk failed 5 times")

        monkeypatch.setattr(daemon.exchange, "fetch_positions", unreadable)  # reconcile's read
        cycle_job = daemon._job(daemon._cycle_job, "cycle")
        for _ in range(3):
            cycle_job()
        assert daemon.failures["cycle"] == 3
    finally:
        monkeypatch.undo()
        daemon.shutdown()


def test_stop_refusals_of_an_earlier_position_do_not_count_against_a_new_one(
        tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    for n in range(3):
        stop = OrderIntent(f"sb-st-old-{n}", "SOL", MarketKind.PERP, Side.SELL, Decimal(2),
                           order_type=OrderType.STOP_MARKET, trigger_price=Decimal(90),
                           reduce_only=True)
        store.journal_intent(stop, None)
        store.journal_failure(stop.client_id, OrderStatus.REJECTED, "would trigger")
    assert store.consecutive_stop_failures("SOL") == 3
    entry = OrderIntent("sb-new-entry", "SOL", MarketKind.PERP, Side.BUY, Decimal(2))
    store.journal_intent(entry, "d2")
    store.journal_result(OrderResult("sb-new-entry", "9", "SOL", MarketKind.PERP, Side.BUY,
                                     OrderType.MARKET, OrderStatus.FILLED, Decimal(2),
                                     Decimal(2), Decimal(100), Decimal("0.1")))
    assert store.consecutive_stop_failures("SOL") == 0
    store.close()


def test_a_never_sent_order_is_slippage_checked_when_it_is_sent_again(tmp_path: Path) -> None:
    """Journalled, then found never to have reached the venue (a crash before the send):
    a re-run of its plan must check the price again before sending it."""
    ex, store, executor, log = paper_rig(tmp_path, sol="103")
    intent = long_open("sb-slip-resumed")
    store.journal_intent(intent, "d1")
    store.journal_failure(intent.client_id, OrderStatus.EXPIRED, NEVER_SENT)
    report = ExecutionReport()
    assert executor.submit(dataclasses.replace(intent), "d1", report) is None
    assert report.blocked == 1 and ex.fetch_positions() == []
    assert [e["rule"] for e in log.named("risk.blocked")] == ["slippage"]
