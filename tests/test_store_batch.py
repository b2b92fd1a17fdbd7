"""A backtest step in one transaction (``StateStore.batch``) must read and write exactly as
the same calls committed one by one: the store's callers cannot tell the difference, and
the live daemon can never batch."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain.models import MarketKind, OrderIntent, OrderResult, OrderStatus, OrderType, Side
from bot.store.journal import JournalConflict
from bot.store.repo import StateStore


def test_a_durable_store_refuses_to_batch(tmp_path: Path) -> None:
    """The live daemon commits each order's intent before the send: never batched."""
    store = StateStore(tmp_path / "live.sqlite3")
    try:
        with pytest.raises(RuntimeError, match="throwaway"), store.batch():
            pass
    finally:
        store.close()


def test_a_batch_reads_its_own_writes_and_never_an_object_cached_before_them(
        tmp_path: Path) -> None:
    """A key written by a Core upsert after an earlier read is read back new, not from an
    object an earlier block of the same transaction loaded."""
    store = StateStore(tmp_path / "b.sqlite3", durable=False)
    try:
        store.put("k", 1)
        with store.batch():
            assert store.get("k") == 1
            store.put("k", 2)
            assert store.get("k") == 2
            trip = store.trip_kill_switch("drawdown", at=datetime(2024, 1, 2, tzinfo=UTC))
            assert store.active_kill_switch() is not None
            store.clear_kill_switch("test")
            assert store.active_kill_switch() is None
        assert trip.reason == "drawdown"  # returned objects stay readable after the commit
        assert store.get("k") == 2
    finally:
        store.close()


def test_a_block_that_raises_writes_nothing_and_the_batch_goes_on(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "b.sqlite3", durable=False)
    try:
        crv = OrderIntent("sb-same", "CRV", MarketKind.SPOT, Side.BUY, Decimal(2008))
        arb = OrderIntent("sb-same", "ARB", MarketKind.PERP, Side.SELL, Decimal(500),
                          reduce_only=True)
        stranger = OrderResult("sb-same", "77", "CRV", MarketKind.SPOT, Side.SELL,
                               OrderType.MARKET, OrderStatus.FILLED, Decimal(2028),
                               Decimal(2028), Decimal("0.48771"), Decimal(1))
        with store.batch():
            assert store.journal_intent(crv, "d1", "p1")
            with pytest.raises(JournalConflict):
                store.journal_intent(arb, "d1", "p2")
            with pytest.raises(JournalConflict):
                store.journal_result(stranger)
            store.put("after", True)
        (row,) = store.orders()
        assert (row.token, row.side, row.status, row.filled) == ("CRV", "buy", "pending", 0)
        assert store.fills() == []
        assert store.get("after") is True
    finally:
        store.close()


def test_a_batch_that_fails_leaves_nothing_of_its_step(tmp_path: Path) -> None:
    """A step either lands whole or not at all (the backtest stops on the error)."""
    store = StateStore(tmp_path / "b.sqlite3", durable=False)
    try:
        store.put("cursor", "day 1")
        with pytest.raises(ValueError), store.batch():
            store.put("cursor", "day 2")
            raise ValueError("the step failed")
        assert store.get("cursor") == "day 1"
    finally:
        store.close()
