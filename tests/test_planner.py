"""The planner trades only differences, in a safe order, and skips what the venue would refuse."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.models import (
    Bucket,
    Decision,
    MarketInfo,
    MarketKind,
    OverlayLeg,
    PerpPosition,
    Portfolio,
    PositionSide,
    Regime,
    Side,
)
from bot.domain.planner import client_order_id, plan_orders

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def markets(*tokens: str, min_notional: str = "5") -> dict[tuple[str, MarketKind], MarketInfo]:
    out = {}
    for t in tokens:
        for kind in MarketKind:
            out[(t, kind)] = MarketInfo(t, kind, Decimal("0.0001"), Decimal("0.01"),
                                        Decimal("0.0001"), Decimal(min_notional))
    return out


def decision(weights: dict[str, float], overlay: tuple[OverlayLeg, ...] = (),
             cash_reserve: float = 0.0) -> Decision:
    return Decision("d" * 16, T0, Regime.BULL, "rebalance", weights,
                    {Bucket.CORE: 1.0}, cash_reserve, overlay, (), None, (), 1.0)


PRICES = {"BTC": Decimal(40000), "ETH": Decimal(2000), "SOL": Decimal(100), "ARB": Decimal(1)}


def test_first_allocation_buys_each_target_from_cash() -> None:
    pf = Portfolio(Decimal(10000), {}, {}, PRICES)
    plan = plan_orders(decision({"BTC": 0.5, "ETH": 0.3, "SOL": 0.2}), pf,
                       markets("BTC", "ETH", "SOL"), (), plan_id="p1")
    assert [(i.token, i.side) for i in plan.intents] == [
        ("BTC", Side.BUY), ("ETH", Side.BUY), ("SOL", Side.BUY)]
    spent = sum(i.amount * PRICES[i.token] for i in plan.intents)
    assert Decimal(9900) <= spent <= Decimal(10000)


def test_only_the_difference_is_traded_and_sells_come_first() -> None:
    pf = Portfolio(Decimal(0), {"BTC": Decimal("0.125"), "SOL": Decimal(50)}, {}, PRICES)
    # equity 10000: BTC 5000 (target 6000), SOL 5000 (target 4000)
    plan = plan_orders(decision({"BTC": 0.6, "SOL": 0.4}), pf, markets("BTC", "SOL"), (),
                       plan_id="p1")
    assert [(i.token, i.side) for i in plan.intents] == [("SOL", Side.SELL), ("BTC", Side.BUY)]
    sell, buy = plan.intents
    assert sell.amount == Decimal(10)  # 1000 USDT of SOL, not the whole holding
    assert buy.amount * PRICES["BTC"] <= Decimal(1000)
    assert buy.amount * PRICES["BTC"] >= Decimal(990)


def test_tokens_dropped_from_targets_are_sold_entirely() -> None:
    pf = Portfolio(Decimal(0), {"ARB": Decimal("1234.5678")}, {}, PRICES)
    plan = plan_orders(decision({"BTC": 1.0}), pf, markets("BTC", "ARB"), (), plan_id="p1")
    assert plan.intents[0].token == "ARB" and plan.intents[0].amount == Decimal("1234.5678")


def test_below_min_notional_is_skipped_not_sent() -> None:
    pf = Portfolio(Decimal(100), {}, {}, PRICES)
    plan = plan_orders(decision({"BTC": 0.95, "SOL": 0.05}), pf,
                       markets("BTC", "SOL", min_notional="10"), (), plan_id="p1")
    assert [i.token for i in plan.intents] == ["BTC"]
    assert [s.token for s in plan.skipped] == ["SOL"]
    assert "below minimum" in plan.skipped[0].reason


def test_perp_reduce_goes_before_open() -> None:
    short = PerpPosition("SOL", Decimal(-5), Decimal(100), Decimal(2), Decimal(100))
    pf = Portfolio(Decimal(10000), {}, {"SOL": short}, PRICES)
    leg = OverlayLeg("ARB", PositionSide.LONG, 0.1, 3.0, 0.08, "enter L2")
    plan = plan_orders(decision({}, (leg,)), pf, markets("SOL", "ARB"), (leg,), plan_id="p1")
    perps = [i for i in plan.intents if i.market is MarketKind.PERP]
    assert [(i.token, i.side, i.reduce_only) for i in perps] == [
        ("SOL", Side.BUY, True), ("ARB", Side.BUY, False)]
    assert perps[1].leverage == Decimal("3.0")
    assert perps[1].amount == Decimal(1000)  # 10% of 10000 equity at price 1
    assert plan.stop_distance == {"ARB": 0.08}
    # Every order carries the price it was sized at, for the executor's slippage guard.
    assert [i.reference_price for i in perps] == [PRICES["SOL"], PRICES["ARB"]]


def test_spot_orders_carry_the_price_they_were_sized_at() -> None:
    pf = Portfolio(Decimal(0), {"BTC": Decimal("0.125"), "SOL": Decimal(50)}, {}, PRICES)
    plan = plan_orders(decision({"BTC": 0.8, "SOL": 0.2}), pf, markets("BTC", "SOL"), (),
                       plan_id="p1")
    assert plan.intents
    assert all(i.reference_price == PRICES[i.token] for i in plan.intents)


def test_client_ids_name_the_order_not_its_place_in_the_plan() -> None:
    """Issue #10: ids numbered by position gave a CRV buy's id to an ARB close once the plan
    changed. The id is a digest of the plan and what the order is."""
    base: dict[str, Any] = dict(purpose="open", token="SOL", market=MarketKind.PERP,
                                side=Side.BUY, amount=Decimal("1.50"), reduce_only=False)
    cid = client_order_id("p1", **base)
    assert cid == client_order_id("p1", **{**base, "amount": Decimal("1.5")})
    assert re.fullmatch(r"sb-[0-9a-f]{24}", cid) and len(cid) <= 32
    for change in ({"purpose": "reduce"}, {"token": "ARB"}, {"market": MarketKind.SPOT},
                   {"side": Side.SELL}, {"amount": Decimal("1.51")}, {"reduce_only": True}):
        assert client_order_id("p1", **{**base, **change}) != cid, change
    assert client_order_id("p2", **base) != cid


@settings(max_examples=60, deadline=None)
@given(
    cash=st.decimals(0, 100000, places=2),
    held=st.dictionaries(st.sampled_from(sorted(PRICES)), st.decimals(0, 50, places=4),
                         max_size=4),
    raw=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_plan_never_oversells_or_overspends(cash: Decimal, held: dict[str, Decimal],
                                             raw: list[float]) -> None:
    total = sum(raw)
    weights = {t: w / total for t, w in zip(sorted(PRICES), raw, strict=True)} if total else {
        "BTC": 1.0}
    pf = Portfolio(cash, held, {}, PRICES)
    plan = plan_orders(decision(weights), pf, markets(*PRICES), (), plan_id="p1")
    cash_after = cash
    for i in plan.intents:
        if i.side is Side.SELL:
            assert i.amount <= held.get(i.token, Decimal(0))
            cash_after += i.amount * PRICES[i.token]
    for i in plan.intents:
        if i.side is Side.BUY:
            cash_after -= i.amount * PRICES[i.token]
    assert cash_after >= 0
    sides = [i.side for i in plan.intents]
    assert sides == sorted(sides, key=lambda s: s is Side.BUY), "sells must precede buys"


def test_buys_fit_the_venues_free_cash_not_an_estimate() -> None:
    long = PerpPosition("SOL", Decimal(10), Decimal(50), Decimal(2), Decimal(100))
    # Margin posted at entry is 250, at mark it would look like 500: the venue's free cash
    # (cash minus margin it actually holds) is what buys may use.
    pf = Portfolio(Decimal(1000), {}, {"SOL": long}, PRICES, free_cash=Decimal(750))
    plan = plan_orders(decision({"BTC": 1.0}), pf, markets("BTC", "SOL"), (), plan_id="p1")
    spent = sum(i.amount * PRICES[i.token] for i in plan.intents if i.side is Side.BUY)
    assert Decimal(740) <= spent <= Decimal(750)
