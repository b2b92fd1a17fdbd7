"""Risk rules through the real paper exchange and a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.domain.models import (
    FundingRate,
    MarketKind,
    OrderIntent,
    OverlayLeg,
    Portfolio,
    PositionSide,
    Regime,
    Side,
)
from bot.domain.planner import Plan
from bot.domain.risk import check_overlay
from bot.domain.risk_limits import RiskLimits
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.exchange.port import ExchangeUnavailable, OrderRejected
from bot.service.cycle import read_portfolio
from bot.service.executor import ExecutionReport, Executor
from bot.service.risk_watch import RiskWatch, clear_kill_switch
from bot.store.repo import StateStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class RecordingLog:
    """Collects (event, fields) pairs: the log stream is an output the tests read."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    debug = info = warning = error = exception = _record

    def named(self, event: str) -> list[dict[str, Any]]:
        return [f for e, f in self.events if e == event]


@pytest.fixture
def rig(tmp_path: Path) -> tuple[PaperExchange, StateStore, Executor, RiskWatch, RecordingLog]:
    ex = PaperExchange(PaperConfig(starting_cash=Decimal(10000)), ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(100)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    executor = Executor(ex, store, log)
    watch = RiskWatch(ex, store, executor, RiskLimits(), log)
    return ex, store, executor, watch, log


def portfolio(ex: PaperExchange) -> Portfolio:
    return read_portfolio(ex, ["BTC", "SOL"])


def open_long(ex: PaperExchange, executor: Executor, amount: str = "30",
              leverage: str = "3") -> None:
    intent = OrderIntent("sb-test-open", "SOL", MarketKind.PERP, Side.BUY, Decimal(amount),
                         leverage=Decimal(leverage))
    report = ExecutionReport()
    assert executor.submit(intent, "d1", report) is not None
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", report)
    assert report.stops_placed == 1


def test_stop_hit_closes_the_position_with_the_expected_loss(rig: Any) -> None:
    ex, _store, executor, _watch, _log = rig
    open_long(ex, executor)
    cash_before = ex.fetch_balances().total["USDT"]
    (stop,) = ex.fetch_open_orders(trigger=True)
    assert stop.trigger_price == Decimal("92.046")  # 8% under the 100.05 entry (slippage)
    events = ex.update_market(T0 + timedelta(days=1), {"SOL": Decimal(95)}, {},
                              {"SOL": (Decimal(90), Decimal(101))})
    assert [e.kind for e in events] == ["stop_triggered"]
    assert ex.fetch_positions() == []
    loss = cash_before - ex.fetch_balances().total["USDT"]
    # 30 SOL from 100.05 to the stop 92.046 less 5 bps slippage, plus the exit fee.
    exit_price = Decimal("92.046") * (1 - Decimal("0.0005"))
    expected = 30 * (Decimal("100.05") - exit_price) + 30 * exit_price * Decimal("0.0005")
    assert abs(loss - expected) < Decimal("0.01")


def test_a_cancelled_stop_is_replaced_within_one_watch_tick(rig: Any) -> None:
    ex, _store, executor, watch, log = rig
    open_long(ex, executor)
    (stop,) = ex.fetch_open_orders(trigger=True)
    ex.cancel_order(stop)
    assert ex.fetch_positions()[0].stop_price is None
    watch.run(portfolio(ex), salt="rw-1")
    assert log.named("stoploss.missing")[0]["token"] == "SOL"
    assert ex.fetch_positions()[0].stop_price is not None
    assert len(ex.fetch_open_orders(trigger=True)) == 1
    watch.run(portfolio(ex), salt="rw-2")
    assert len(log.named("stoploss.missing")) == 1, "a protected position is left alone"


def test_excessive_funding_closes_the_leveraged_long_with_hysteresis(rig: Any) -> None:
    ex, _store, executor, watch, log = rig
    open_long(ex, executor)
    hot = FundingRate("SOL", hourly_rate=0.0005 / 8 * 10, interval_hours=8)  # ~55% APR
    assert hot.annualised > 0.30
    ex.update_market(T0 + timedelta(hours=8), {"SOL": Decimal(100)}, {"SOL": hot})
    watch.run(portfolio(ex), salt="rw-f")
    assert log.named("funding.exit")[0]["token"] == "SOL"
    assert ex.fetch_positions() == []
    assert ex.fetch_open_orders(trigger=True) == [], "the stop goes with the position"
    assert watch.funding_blocked() == {"SOL"}
    leg = OverlayLeg("SOL", PositionSide.LONG, 0.1, 2.0, 0.08, "enter")
    kept, blocks = check_overlay((leg,), RiskLimits(), Regime.BULL,
                                 funding_blocked=frozenset(watch.funding_blocked()))
    assert kept == () and blocks[0].rule == "funding_hysteresis"
    calm = FundingRate("SOL", hourly_rate=0.0001 / 8, interval_hours=8)  # ~11% APR
    ex.update_market(T0 + timedelta(hours=16), {"SOL": Decimal(100)}, {"SOL": calm})
    watch.run(portfolio(ex), salt="rw-g")
    assert watch.funding_blocked() == set()


def test_a_short_receiving_funding_is_kept(rig: Any) -> None:
    ex, _store, executor, watch, log = rig
    intent = OrderIntent("sb-test-short", "SOL", MarketKind.PERP, Side.SELL, Decimal(10),
                         leverage=Decimal(2))
    report = ExecutionReport()
    executor.submit(intent, "d1", report)
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", report)
    hot = FundingRate("SOL", hourly_rate=0.001, interval_hours=8)
    ex.update_market(T0 + timedelta(hours=8), {"SOL": Decimal(100)}, {"SOL": hot})
    watch.run(portfolio(ex), salt="rw-s")
    assert log.named("funding.exit") == []
    assert ex.fetch_positions()[0].amount == Decimal(-10)


def test_drawdown_trips_the_kill_switch_and_leaves_no_leverage_or_orders(rig: Any) -> None:
    ex, store, executor, watch, log = rig
    report = ExecutionReport()
    executor.submit(OrderIntent("sb-test-btc", "BTC", MarketKind.SPOT, Side.BUY,
                                Decimal("0.2")), "d1", report)
    open_long(ex, executor, amount="10", leverage="2")
    watch.run(portfolio(ex), salt="rw-hw")  # records the high-water mark
    ex.update_market(T0 + timedelta(days=1), {"BTC": Decimal(26000), "SOL": Decimal(95)}, {},
                     {"SOL": (Decimal(94), Decimal(96))})
    watch.run(portfolio(ex), salt="rw-dd")
    tripped = log.named("killswitch.tripped")
    assert tripped and "drawdown" in tripped[0]["reason"]
    trip = store.active_kill_switch()  # durable, with the numbers that tripped it
    assert trip is not None and trip.reason == tripped[0]["reason"]
    assert trip.high_water is not None and trip.equity is not None
    assert trip.equity <= trip.high_water * Decimal("0.75")
    # Stamped on the venue's clock: the simulated day in a replay, not the wall clock
    # (issue #11, case 4).
    assert trip.tripped_at == T0 + timedelta(days=1)
    assert ex.fetch_positions() == []
    assert ex.fetch_open_orders(trigger=True) == [] and ex.fetch_open_orders() == []
    assert ex.fetch_balances().total["BTC"] == Decimal("0.2"), "spot is left alone"
    leg = OverlayLeg("SOL", PositionSide.SHORT, 0.05, 2.0, 0.08, "hedge")
    kept, blocks = check_overlay((leg,), RiskLimits(), Regime.BULL, killed=watch.killed)
    assert kept == () and blocks[0].rule == "killswitch"
    assert clear_kill_switch(store) is not None
    assert store.active_kill_switch() is None
    assert [t.cleared_by for t in store.kill_switch_history()] == ["resume"]


def test_eight_x_is_clipped_to_the_cap_and_never_sent(rig: Any) -> None:
    ex, _store, executor, _watch, _log = rig
    leg = OverlayLeg("SOL", PositionSide.LONG, 0.1, 8.0, 0.08, "enter")
    (kept,), (block,) = check_overlay((leg,), RiskLimits(max_leverage=3), Regime.BULL)
    assert kept.leverage == 3.0 and block.rule == "leverage_cap"
    # And should an 8x request reach the executor anyway, the venue boundary refuses it:
    report = ExecutionReport()
    assert executor.submit(OrderIntent("sb-test-8x", "SOL", MarketKind.PERP, Side.BUY,
                                       Decimal(1), leverage=Decimal(8)), "d1", report) is None
    assert report.rejected == 1 and ex.fetch_positions() == []


def test_a_position_near_liquidation_is_closed_even_when_the_stop_watchdog_fails(
        rig: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop vanished and the venue will not list stops (the watchdog's read fails): the
    liquidation buffer, a step of its own, still closes the position."""
    ex, _store, executor, watch, log = rig
    ex.set_leverage("SOL", Decimal(3))
    open_long(ex, executor, amount="10", leverage="3")
    for stop in ex.fetch_open_orders(trigger=True):
        ex.cancel_order(stop)
    liq = ex.fetch_positions()[0].liquidation_price
    assert liq is not None
    near = liq * Decimal("1.05")  # 5% above liquidation, inside the 10% buffer
    ex.update_market(T0 + timedelta(hours=1), {"SOL": near}, {},
                     {"SOL": (near, Decimal(100))})
    listing = ex.fetch_open_orders

    def stops_unreadable(trigger: bool = False) -> list[Any]:
        if trigger:
            raise ExchangeUnavailable("openAlgoOrders failed 5 times")
        return listing(trigger=False)

    monkeypatch.setattr(ex, "fetch_open_orders", stops_unreadable)
    assert watch.run(portfolio(ex), salt="rw-liq") == ["stop_watchdog"]
    assert [f["step"] for f in log.named("risk.step_failed")] == ["stop_watchdog"]
    blocked = [f for f in log.named("risk.blocked") if f["rule"] == "liquidation_buffer"]
    assert blocked and blocked[0]["token"] == "SOL"
    assert ex.fetch_positions() == []


def test_reprotecting_with_the_same_salt_never_recovers_a_dead_stop(rig: Any) -> None:
    """Re-running a decision after its stop was cancelled must leave a live stop, not a
    'recovered' cancelled one (found against the emulator, holds for every venue)."""
    ex, _store, executor, _watch, _log = rig
    open_long(ex, executor)
    (first,) = ex.fetch_open_orders(trigger=True)
    ex.cancel_order(first)
    report = ExecutionReport()
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", report)
    (live,) = ex.fetch_open_orders(trigger=True)
    assert live.client_id == f"{first.client_id}-1"
    assert ex.fetch_positions()[0].stop_price == live.trigger_price


def test_an_unprotected_position_past_its_stop_level_is_closed_not_restopped(
        tmp_path: Path) -> None:
    """Found by the state machine: a short's stop was cancelled, the price then rose 25%
    past where the stop sat. Re-placing the stop is impossible (it would fire at once, the
    venue refuses it), so the watchdog does what the stop would have done, on a thin book
    that needs several orders."""
    ex = PaperExchange(PaperConfig(starting_cash=Decimal(10000), depth_notional=Decimal(400)),
                       ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(100)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    executor = Executor(ex, store, log)
    watch = RiskWatch(ex, store, executor, RiskLimits(), log)
    report = ExecutionReport()
    short = OrderIntent("sb-test-short", "SOL", MarketKind.PERP, Side.SELL, Decimal(4),
                        leverage=Decimal(1))
    assert executor.submit(short, "d1", report) is not None
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", report)
    (stop,) = ex.fetch_open_orders(trigger=True)
    ex.cancel_order(stop)
    ex.update_market(T0 + timedelta(hours=1), {"SOL": Decimal(125)}, {})
    watch.run(portfolio(ex), salt="rw-crossed")
    assert ex.fetch_positions() == []  # 4 SOL at 125 = 500 USDT: two orders on a 400 book
    (missing,) = log.named("stoploss.missing")
    assert missing["action"] == "close"
    assert len(log.named("order.partially_filled")) == 1
    assert ex.fetch_open_orders(trigger=True) == []
    store.close()


def test_a_stop_smaller_than_its_position_is_resized(rig: Any) -> None:
    """Found by the state machine: a top-up filled, then placing its stop failed, so the old
    stop covered 10 of 15 SOL. A stop exists, yet a third of the position is unprotected."""
    ex, _store, executor, watch, log = rig
    open_long(ex, executor, amount="10", leverage="2")
    top_up = OrderIntent("sb-test-topup", "SOL", MarketKind.PERP, Side.BUY, Decimal(5),
                         leverage=Decimal(2))
    assert executor.submit(top_up, "d2", ExecutionReport()) is not None  # no protect()
    (old,) = ex.fetch_open_orders(trigger=True)
    assert old.amount == Decimal(10)
    watch.run(portfolio(ex), salt="rw-cover")
    (stop,) = ex.fetch_open_orders(trigger=True)
    assert stop.amount == Decimal(15) and stop.client_id != old.client_id
    (missing,) = log.named("stoploss.missing")
    assert (Decimal(missing["covered"]), missing["action"]) == (10, "replace")
    watch.run(portfolio(ex), salt="rw-cover-2")
    assert len(log.named("stoploss.missing")) == 1  # covered now: nothing more to do


class _StopRefusingPaper(PaperExchange):
    """A paper venue that refuses the next stop order (a real venue might, e.g. -2021)."""

    refuse_stops = 0

    def place_order(self, intent: OrderIntent) -> Any:
        if intent.trigger_price is not None and self.refuse_stops > 0:
            self.refuse_stops -= 1
            raise OrderRejected("injected: stop refused")
        return super().place_order(intent)


def test_restopping_places_the_new_stop_before_removing_the_old(tmp_path: Path) -> None:
    ex = _StopRefusingPaper(PaperConfig(starting_cash=Decimal(10000)), ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(100)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    executor = Executor(ex, store, RecordingLog())
    open_long(ex, executor, amount="10", leverage="2")
    (old,) = ex.fetch_open_orders(trigger=True)
    top_up = OrderIntent("sb-test-more", "SOL", MarketKind.PERP, Side.BUY, Decimal(5),
                         leverage=Decimal(2))
    assert executor.submit(top_up, "d2", ExecutionReport()) is not None
    ex.refuse_stops = 1
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d2", ExecutionReport())
    assert ex.fetch_open_orders(trigger=True) == [old]  # refused: the old stop stays
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d3", ExecutionReport())
    (new,) = ex.fetch_open_orders(trigger=True)
    assert new.amount == Decimal(15) and new.client_id != old.client_id
    store.close()


def test_a_replaced_stop_keeps_the_distance_its_leg_was_planned_with(rig: Any) -> None:
    """An ATR-sized 15 % stop, cancelled, comes back at 15 %, not the 8 % risk default."""
    ex, _store, executor, watch, log = rig
    intent = OrderIntent("sb-test-atr", "SOL", MarketKind.PERP, Side.BUY, Decimal(10),
                         leverage=Decimal(2))
    executor.execute(Plan((intent,), (), {"SOL": 0.15}), "d-atr", 0.08)
    (stop,) = ex.fetch_open_orders(trigger=True)
    (position,) = ex.fetch_positions()
    expected = position.entry_price * Decimal("0.85")
    assert stop.trigger_price is not None
    assert abs(stop.trigger_price - expected) <= Decimal("0.01")
    ex.cancel_order(stop)
    watch.run(portfolio(ex), salt="rw-atr")
    (again,) = ex.fetch_open_orders(trigger=True)
    assert again.trigger_price == stop.trigger_price
    assert log.named("stoploss.missing")[0]["action"] == "replace"
