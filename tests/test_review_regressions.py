"""Regressions for defects an independent review of the risk and execution code found.

Each test states the defect it pins. Venues here are small stand-ins for the one behaviour
at stake (an order still matching, a stop the venue answers as rejected), or the real paper
exchange where it can show the behaviour itself.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.domain.models import (
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from bot.domain.params import StrategyParams
from bot.domain.risk_limits import RiskLimits
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.service.executor import ExecutionReport, Executor
from bot.service.reconcile import reconcile
from bot.service.risk_watch import MAX_CLOSE_ROUNDS, RiskWatch
from bot.store.repo import StateStore
from tests.engine_fixtures import PLAYBOOK_START, playbook_market
from tests.test_engine_scenario import run
from tests.test_risk_watch import T0, RecordingLog, open_long, portfolio


class StillMatching:
    """A venue whose answer catches a market order mid-match (4 of 10), filled later."""

    def __init__(self) -> None:
        self.done = False

    def _order(self, status: OrderStatus, filled: int) -> OrderResult:
        return OrderResult("sb-pf-1", "x1", "SOL", MarketKind.PERP, Side.BUY, OrderType.MARKET,
                           status, Decimal(10), Decimal(filled), Decimal(100), Decimal(0))

    def set_leverage(self, *args: Any) -> None: ...

    def set_margin_mode(self, *args: Any) -> None: ...

    def fetch_prices(self, tokens: Any, market: Any) -> dict[str, Decimal]:
        return {"SOL": Decimal(100)}

    def place_order(self, intent: OrderIntent) -> OrderResult:
        return self._order(OrderStatus.PARTIALLY_FILLED, 4)

    def fetch_order_by_client_id(self, *args: Any, **kwargs: Any) -> OrderResult:
        return self._order(OrderStatus.FILLED, 10) if self.done else self._order(
            OrderStatus.PARTIALLY_FILLED, 4)

    def fetch_positions(self) -> list[Any]:
        return []

    def fetch_open_orders(self, trigger: bool = False) -> list[Any]:
        return []


def test_an_order_still_matching_is_followed_until_it_is_final(tmp_path: Path) -> None:
    """Was: PARTIALLY_FILLED counted as a finished partial and reconciliation skipped it, so
    the rest of the fill never reached the journal."""
    venue, store, log = StillMatching(), StateStore(tmp_path / "s.sqlite3"), RecordingLog()
    intent = OrderIntent("sb-pf-1", "SOL", MarketKind.PERP, Side.BUY, Decimal(10))
    Executor(venue, store, log).submit(intent, "d1", ExecutionReport())  # type: ignore[arg-type]
    assert not log.named("order.partially_filled")  # not final: nothing to report yet
    venue.done = True
    reconcile(venue, store, log)  # type: ignore[arg-type]
    (row,) = store.orders()
    assert (OrderStatus(row.status), row.filled) == (OrderStatus.FILLED, Decimal(10))
    assert sum(f.amount for f in store.fills()) == 10
    store.close()


class AnswersStopsRejected(PaperExchange):
    """A venue that acknowledges a stop and reports it REJECTED (no exception raised)."""

    reject = False

    def place_order(self, intent: OrderIntent) -> OrderResult:
        if self.reject and intent.order_type is OrderType.STOP_MARKET:
            return OrderResult(intent.client_id, "r-1", intent.token, intent.market,
                               intent.side, intent.order_type, OrderStatus.REJECTED,
                               intent.amount, Decimal(0), None, Decimal(0))
        return super().place_order(intent)


def test_a_stop_answered_as_rejected_does_not_replace_the_live_one(tmp_path: Path) -> None:
    """Was: any answer counted as placed, so the working stop was cancelled for a rejected
    one and the position was left with none."""
    ex = AnswersStopsRejected(PaperConfig(starting_cash=Decimal(10000)), ["SOL"], ["SOL"])
    ex.update_market(T0, {"SOL": Decimal(100)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    executor = Executor(ex, store, RecordingLog())
    open_long(ex, executor, amount="10", leverage="2")
    (old,) = ex.fetch_open_orders(trigger=True)
    ex.reject = True
    report = ExecutionReport()
    executor.protect({"SOL"}, {"SOL": 0.05}, 0.05, "d2", report)
    assert ex.fetch_open_orders(trigger=True) == [old] and report.stops_placed == 0
    store.close()


def test_a_spot_sell_is_never_held_back_by_the_slippage_guard(tmp_path: Path) -> None:
    """Was: spot sells were guarded like buys, so de-risking waited for a better price while
    the buys sized on its proceeds went out."""
    ex = PaperExchange(PaperConfig(starting_cash=Decimal(10000)), ["BTC"], [])
    ex.update_market(T0, {"BTC": Decimal(40000)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    executor = Executor(ex, store, log, max_slippage=0.02)
    buy = OrderIntent("sb-ss-1", "BTC", MarketKind.SPOT, Side.BUY, Decimal("0.1"),
                      reference_price=Decimal(40000))
    assert executor.submit(buy, "d1", ExecutionReport()) is not None
    ex.update_market(T0 + timedelta(hours=1), {"BTC": Decimal(38000)}, {})  # -5 %
    sell = OrderIntent("sb-ss-2", "BTC", MarketKind.SPOT, Side.SELL, Decimal("0.05"),
                       reference_price=Decimal(40000))
    assert executor.submit(sell, "d2", ExecutionReport()) is not None
    assert not log.named("risk.blocked")
    again = dataclasses.replace(buy, client_id="sb-ss-3")
    assert executor.submit(again, "d2", ExecutionReport()) is None  # buys still guarded
    store.close()


def test_a_kill_switch_close_the_book_cannot_finish_keeps_its_stop(tmp_path: Path) -> None:
    """Was: the trip cancelled every stop even when the close filled only in part, leaving
    the remainder unprotected until the next tick."""
    ex = PaperExchange(PaperConfig(starting_cash=Decimal(10000), depth_notional=Decimal(100)),
                       ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(100)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    executor = Executor(ex, store, log)
    watch = RiskWatch(ex, store, executor, RiskLimits(), log)
    for n in range(10):  # ten 1-SOL entries: the 100 USDT book fills one at a time
        intent = OrderIntent(f"sb-ks-{n}", "SOL", MarketKind.PERP, Side.BUY, Decimal(1),
                             leverage=Decimal(2))
        assert executor.submit(intent, "d1", ExecutionReport()) is not None
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", ExecutionReport())
    watch.run(portfolio(ex), salt="rw-hw")
    watch.trip(portfolio(ex).equity(), "test trip", "rw-trip", ExecutionReport())
    (left,) = ex.fetch_positions()
    assert 0 < left.amount < 10 - MAX_CLOSE_ROUNDS + 1  # rounds ran, the book ran out
    assert [s.token for s in ex.fetch_open_orders(trigger=True)] == ["SOL"]
    watch.run(portfolio(ex), salt="rw-next")  # the next tick closes the remainder
    assert ex.fetch_positions() == [] and ex.fetch_open_orders(trigger=True) == []
    store.close()


def test_an_atr_stop_never_sits_beyond_half_the_way_to_liquidation() -> None:
    """Was: at 4x an ATR stop could sit 25 % from entry, past the ~25 % liquidation."""
    params = StrategyParams(stop_mode="atr", stop_atr_floor=0.2, stop_atr_ceiling=0.3,
                            max_leverage=5.0, hedge_leverage=4.0, long_leverage=4.0)
    legs = run(playbook_market(), PLAYBOOK_START, days=2, params=params)[1][0].overlay
    assert {leg.side for leg in legs} == {PositionSide.SHORT, PositionSide.LONG}
    assert all(leg.stop_distance == 0.125 for leg in legs)  # 0.5 / 4x
    assert all("capped at 12.5%" in leg.reason for leg in legs)
