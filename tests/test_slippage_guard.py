"""The slippage guard: a market order that adds risk is held back once the venue's price has
moved too far from the price it was planned at. Through the paper exchange and through real
ccxt to the Binance emulator; what the venue holds afterwards is the evidence."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.models import MarketKind, OrderIntent, OrderStatus, Side
from bot.domain.risk import price_deviation
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.service.executor import ExecutionReport, Executor
from bot.store.repo import StateStore
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.test_risk_watch import T0, RecordingLog
from tests.test_risk_watch_emulator import FAST

LIMIT = 0.02


def paper_rig(tmp_path: Path, sol: str = "100",
              limit: float = LIMIT) -> tuple[PaperExchange, StateStore, Executor, RecordingLog]:
    ex = PaperExchange(PaperConfig(starting_cash=Decimal(10000)), ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(sol)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    return ex, store, Executor(ex, store, log, max_slippage=limit), log


def long_open(cid: str = "sb-slip-001", planned: str = "100", **extra: Any) -> OrderIntent:
    return OrderIntent(cid, "SOL", MarketKind.PERP, Side.BUY, Decimal("10"),
                       leverage=Decimal(2), reference_price=Decimal(planned), **extra)


def test_deviation_is_relative_to_the_planned_price() -> None:
    assert price_deviation(Decimal(100), Decimal(103)) == pytest.approx(0.03)
    assert price_deviation(Decimal(100), Decimal(97)) == pytest.approx(0.03)
    with pytest.raises(ValueError):
        price_deviation(Decimal(0), Decimal(1))


def test_an_open_planned_at_100_is_not_sent_when_the_venue_is_at_103(tmp_path: Path) -> None:
    ex, store, executor, log = paper_rig(tmp_path, sol="103")
    report = ExecutionReport()
    assert executor.submit(long_open(), "d1", report) is None
    assert report.blocked == 1 and report.sent == 0
    assert ex.fetch_positions() == []
    assert store.order_history("sb-slip-001") == []  # nothing journalled: nothing was sent
    (blocked,) = log.named("risk.blocked")
    assert blocked["rule"] == "slippage" and blocked["current_price"] == "103"
    assert "3.00%" in blocked["detail"]


def test_within_the_limit_the_order_goes_through(tmp_path: Path) -> None:
    ex, _store, executor, log = paper_rig(tmp_path, sol="101.5")
    report = ExecutionReport()
    result = executor.submit(long_open(), "d1", report)
    assert result is not None and result.status is OrderStatus.FILLED
    assert [p.amount for p in ex.fetch_positions()] == [Decimal(10)]
    assert report.blocked == 0 and not log.named("risk.blocked")


def test_getting_out_is_never_held_back(tmp_path: Path) -> None:
    ex, _store, executor, _log = paper_rig(tmp_path, sol="100")
    assert executor.submit(long_open(planned="100"), "d1", ExecutionReport()) is not None
    ex.update_market(T0, {"SOL": Decimal(80)}, {})  # a 20 % drop since the close was planned
    close = OrderIntent("sb-slip-002", "SOL", MarketKind.PERP, Side.SELL, Decimal("10"),
                        reduce_only=True, reference_price=Decimal(100))
    report = ExecutionReport()
    assert executor.submit(close, "d1", report) is not None
    assert report.blocked == 0 and ex.fetch_positions() == []


def test_a_journalled_order_is_settled_not_guarded(tmp_path: Path) -> None:
    """After a crash the intent may already be on the venue: only a lookup may settle it."""
    _ex, store, executor, log = paper_rig(tmp_path, sol="110")
    intent = long_open()
    store.journal_intent(intent, "d1")
    report = ExecutionReport()
    assert executor.submit(intent, "d1", report) is not None  # unknown to the venue: sent
    assert report.blocked == 0 and not log.named("risk.blocked")


def test_a_fill_beyond_the_limit_is_logged(tmp_path: Path) -> None:
    # The paper exchange fills 5 bp worse than its mark; a 1 bp limit makes that visible.
    _ex, _store, executor, log = paper_rig(tmp_path, sol="100", limit=0.0001)
    assert executor.submit(long_open(), "d1", ExecutionReport()) is not None
    (event,) = log.named("execution.slippage")
    assert Decimal(event["average_price"]) > Decimal(100)
    assert event["deviation"] > 0.0001


def test_through_ccxt_a_moved_market_sends_no_order(tmp_path: Path) -> None:
    key, secret = "emu-slip-key-0001", "emu-slip-secret-0001"
    with BinanceEmulator(key, secret) as emu:
        ex = CcxtExchange("binance", "demo", api_key=SecretStr(key),
                          api_secret=SecretStr(secret), tokens=["BTC", "SOL"],
                          perp_tokens=["SOL"], max_leverage=3, retry=FAST, rate_limit_ms=1,
                          timeout_ms=2000, session_hook=lambda e: route_to(e, emu))
        try:
            ex.load_markets()
            log = RecordingLog()
            executor = Executor(ex, StateStore(tmp_path / "s.sqlite3"), log,
                                max_slippage=LIMIT)
            emu.set_price("SOLUSDT", "160")  # planned at 150, the venue is now 6.7 % higher
            emu.clear_requests()
            report = ExecutionReport()
            planned = long_open(planned="150")
            assert executor.submit(planned, "d1", report) is None
            assert emu.requests_for("POST") == []  # not even leverage or margin mode
            assert emu.book.positions.get("SOLUSDT") is None or \
                emu.book.positions["SOLUSDT"].qty == 0
            emu.set_price("SOLUSDT", "151")
            assert executor.submit(planned, "d1", ExecutionReport()) is not None
            assert emu.book.positions["SOLUSDT"].qty == Decimal(10)
        finally:
            ex.close()
