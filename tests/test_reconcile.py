"""Restart reconciliation against the real paper exchange and a real SQLite journal.

Each test stops the write-ahead protocol at one point, as a crash would, then starts over:
reconcile, re-run the same decision, and check the venue holds exactly one order per client
id and the journal holds every fill exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.domain.models import MarketKind, OrderIntent, OrderType, Side
from bot.domain.risk_limits import RiskLimits
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.service.cycle import read_portfolio
from bot.service.executor import ExecutionReport, Executor
from bot.service.reconcile import reconcile
from bot.service.risk_watch import RiskWatch
from bot.store.repo import StateStore
from tests.test_risk_watch import RecordingLog

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BUY = OrderIntent("sb-0000000000000001-001", "SOL", MarketKind.SPOT, Side.BUY, Decimal(10))


@pytest.fixture
def venue() -> PaperExchange:
    ex = PaperExchange(PaperConfig(), ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(100)}, {})
    return ex


def restart(tmp_path: Path) -> tuple[StateStore, RecordingLog]:
    """A new process: a fresh store handle on the same file and a fresh log."""
    return StateStore(tmp_path / "s.sqlite3"), RecordingLog()


def venue_orders(ex: PaperExchange, client_id: str) -> int:
    return sum(1 for trigger in (False, True)
               if ex.fetch_order_by_client_id(client_id, "SOL", MarketKind.SPOT,
                                              trigger=trigger) is not None)


def test_crash_after_send_before_the_answer_is_journalled(tmp_path: Path,
                                                           venue: PaperExchange) -> None:
    store, _ = restart(tmp_path)
    store.journal_intent(BUY, "d1")
    venue.place_order(BUY)  # sent and filled; the process dies before journal_result
    store.close()

    store, log = restart(tmp_path)
    report = reconcile(venue, store, log)
    assert report.settled == [BUY.client_id]
    (row,) = store.orders()
    assert row.status == "filled" and row.filled == Decimal(10)
    assert len(store.fills()) == 1
    # The same decision re-run must not send the order again.
    Executor(venue, store, log).submit(BUY, "d1", ExecutionReport())
    assert log.named("order.submitted") == []
    assert log.named("order.recovered")[0]["client_id"] == BUY.client_id
    assert len(store.fills()) == 1
    assert venue.fetch_balances().total["SOL"] == Decimal(10)


def test_crash_after_journal_before_send(tmp_path: Path, venue: PaperExchange) -> None:
    store, _ = restart(tmp_path)
    store.journal_intent(BUY, "d1")  # dies before the request leaves
    store.close()

    store, log = restart(tmp_path)
    report = reconcile(venue, store, log)
    assert report.never_sent == [BUY.client_id]
    assert store.orders()[0].status == "expired"
    Executor(venue, store, log).submit(BUY, "d1", ExecutionReport())
    assert len(log.named("order.submitted")) == 1
    assert venue.fetch_balances().total["SOL"] == Decimal(10)
    assert store.orders()[0].status == "filled" and len(store.fills()) == 1


def test_unknown_position_is_adopted_then_protected(tmp_path: Path,
                                                     venue: PaperExchange) -> None:
    venue.set_leverage("SOL", Decimal(2))
    venue.place_order(OrderIntent("manual-1", "SOL", MarketKind.PERP, Side.BUY, Decimal(5)))
    store, log = restart(tmp_path)
    report = reconcile(venue, store, log)
    assert report.adopted == ["SOL"]
    assert log.named("reconcile.adopted")[0]["stop_price"] is None
    executor = Executor(venue, store, log)
    RiskWatch(venue, store, executor, RiskLimits(), log).run(
        read_portfolio(venue, ["BTC", "SOL"]), salt="rw-start")
    assert venue.fetch_positions()[0].stop_price is not None
    (stop,) = venue.fetch_open_orders(trigger=True)
    assert stop.order_type is OrderType.STOP_MARKET


def test_reconciling_twice_changes_nothing(tmp_path: Path, venue: PaperExchange) -> None:
    store, log = restart(tmp_path)
    store.journal_intent(BUY, "d1")
    venue.place_order(BUY)
    reconcile(venue, store, log)
    again: Any = reconcile(venue, store, RecordingLog())
    assert again.settled == [] and again.never_sent == []
    assert len(store.fills()) == 1
