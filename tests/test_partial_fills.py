"""Partial fills through real ccxt and the Binance emulator: the journal records what filled,
the stop covers the position as it stands, and the next cycle trades only the remainder.

The emulator's ``Instrument.depth`` caps what one market order can take from the book; the
rest expires (Binance answers ``EXPIRED`` with a partial ``executedQty``). The planner and
executor run unchanged: the "next tick" is a second decision (a later ``as_of``, so new
client ids) planned from the portfolio the venue reports.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

from bot.domain.models import Decision, MarketKind, OrderStatus, OverlayLeg, PositionSide
from bot.domain.planner import plan_orders
from tests.exchange_emulator import BinanceEmulator
from tests.test_planner import decision
from tests.test_risk_watch_emulator import Rig, rig  # noqa: F401 (the fixture)

LONG = OverlayLeg("SOL", PositionSide.LONG, 0.2, 2.0, 0.08, "amplify test")


def later(d: Decision, days: int) -> Decision:
    """The same targets decided ``days`` later: a new decision id, so new client ids."""
    return dataclasses.replace(d, as_of=d.as_of + timedelta(days=days),
                               decision_id=f"{days:02d}" + d.decision_id[2:])


def sol_position(emu: BinanceEmulator) -> Decimal:
    position = emu.book.positions.get("SOLUSDT")
    return position.qty if position is not None else Decimal(0)


def live_stop_sizes(emu: BinanceEmulator) -> list[Decimal]:
    return [a.qty for a in emu.book.algos.values() if a.status == "NEW"]


def test_a_partially_filled_open_is_protected_then_topped_up(rig: Rig) -> None:  # noqa: F811
    emu, ex, store = rig.emu, rig.ex, rig.store
    emu.book.instruments["SOLUSDT"].depth = Decimal("4")  # a thin book: 4 SOL per order
    first = decision({"BTC": 1.0}, (LONG,))
    plan = plan_orders(first, rig.portfolio(), ex.load_markets(), (LONG,),
                       plan_id=store.begin_plan(first.decision_id))
    (open_leg,) = [i for i in plan.intents if i.market is MarketKind.PERP]
    assert open_leg.amount > Decimal("4")  # the plan wants more than the book holds

    rig.executor.execute(plan, first.decision_id, 0.08)
    assert sol_position(emu) == Decimal("4")
    assert live_stop_sizes(emu) == [Decimal("4")]  # the stop covers what is held, no more
    (row,) = [o for o in store.orders() if o.client_id == open_leg.client_id]
    assert OrderStatus(row.status) is OrderStatus.EXPIRED and row.filled == Decimal("4")
    assert sum(f.amount for f in store.fills() if f.client_id == open_leg.client_id) == 4
    assert rig.log.named("order.partially_filled")[0]["filled"] == "4"

    emu.book.instruments["SOLUSDT"].depth = None  # liquidity is back by the next tick
    second = later(first, 1)
    plan = plan_orders(second, rig.portfolio(), ex.load_markets(), (LONG,),
                       plan_id=store.begin_plan(second.decision_id))
    (top_up,) = [i for i in plan.intents if i.market is MarketKind.PERP]
    assert top_up.client_id != open_leg.client_id and not top_up.reduce_only
    assert abs(top_up.amount + 4 - open_leg.amount) <= Decimal("0.05")  # only the remainder
    rig.executor.execute(plan, second.decision_id, 0.08)
    held = sol_position(emu)
    assert held == 4 + top_up.amount
    assert live_stop_sizes(emu) == [held]  # the old stop was replaced, not doubled

    sent = [r.params["newClientOrderId"] for r in emu.requests_for("POST", "/fapi/v1/order")]
    assert len(sent) == len(set(sent)) == 2
    # the journal's fills add up to the venue's position
    assert sum(f.amount for f in store.fills() if f.market == "perp") == held


def test_a_partially_filled_spot_buy_is_finished_next_cycle(rig: Rig) -> None:  # noqa: F811
    emu, ex, store = rig.emu, rig.ex, rig.store
    emu.book.instruments["BTCUSDT"].depth = Decimal("0.01")
    first = decision({"BTC": 0.5, "SOL": 0.5})
    plan = plan_orders(first, rig.portfolio(), ex.load_markets(), (),
                       plan_id=store.begin_plan(first.decision_id))
    buys = {i.token: i for i in plan.intents}
    assert buys["BTC"].amount > Decimal("0.01")
    rig.executor.execute(plan, first.decision_id, 0.08)
    btc_after_first = emu.book.spot["BTC"]
    assert btc_after_first == Decimal("0.01") * (1 - Decimal("0.001"))  # net of the fee
    assert emu.book.spot["SOL"] > 0  # the other leg was unaffected

    emu.book.instruments["BTCUSDT"].depth = None
    second = later(first, 1)
    plan = plan_orders(second, rig.portfolio(), ex.load_markets(), (),
                       plan_id=store.begin_plan(second.decision_id))
    (rest,) = [i for i in plan.intents if i.token == "BTC"]
    assert rest.amount < buys["BTC"].amount  # the remainder, not the whole order again
    rig.executor.execute(plan, second.decision_id, 0.08)
    assert emu.book.spot["BTC"] > btc_after_first
    venue_fills = sum(t.qty for t in emu.book.trades if t.symbol == "BTCUSDT")
    journal_fills = sum(f.amount for f in store.fills() if f.token == "BTC")
    assert journal_fills == venue_fills

