"""The state store: a real SQLite file, exact decimals, a journal that refuses duplicates."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.domain.models import (
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    PerpPosition,
    Portfolio,
    Side,
)
from bot.store.repo import StateStore

T0 = datetime(2024, 1, 2, tzinfo=UTC)


def intent(cid: str = "sb-x-001") -> OrderIntent:
    return OrderIntent(cid, "SOL", MarketKind.SPOT, Side.BUY, Decimal("1.23456789"))


def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "s.sqlite3"
    store = StateStore(path)
    store.put("k", {"a": 1})
    assert (path.stat().st_mode & 0o777) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_journal_refuses_a_second_intent_with_the_same_client_id(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    assert store.journal_intent(intent(), "d1") is True
    assert store.journal_intent(intent(), "d1") is False
    rows = store.orders()
    assert len(rows) == 1 and rows[0].status == "pending"
    assert rows[0].amount == Decimal("1.23456789")


def test_result_records_fill_once_with_exact_decimals(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    store.journal_intent(intent(), "d1")
    result = OrderResult("sb-x-001", "42", "SOL", MarketKind.SPOT, Side.BUY, OrderType.MARKET,
                         OrderStatus.FILLED, Decimal("1.23456789"), Decimal("1.23456789"),
                         Decimal("101.123456789012"), Decimal("0.0012"), timestamp=T0)
    store.journal_result(result)
    store.journal_result(result)  # the same answer twice must not double the fill
    fills = store.fills()
    assert len(fills) == 1
    assert fills[0].price == Decimal("101.123456789012")
    assert store.orders()[0].status == "filled"
    store.close()
    reopened = StateStore(tmp_path / "s.sqlite3")
    assert reopened.fills()[0].amount == Decimal("1.23456789")


def test_portfolio_snapshot_replaces_positions(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    perp = PerpPosition("ARB", Decimal(100), Decimal(1), Decimal(3), Decimal("1.1"),
                        stop_price=Decimal("0.92"))
    pf = Portfolio(Decimal(1000), {"BTC": Decimal("0.01")}, {"ARB": perp},
                   {"BTC": Decimal(40000), "ARB": Decimal("1.1")})
    store.record_portfolio(pf, T0)
    store.record_portfolio(Portfolio(Decimal(1000), {}, {}, {}), T0.replace(day=3))
    assert store.positions() == []
    curve = store.equity_curve()
    assert [p.equity for p in curve] == [Decimal("1410.0"), Decimal(1000)]
    assert curve[0].ts == T0
