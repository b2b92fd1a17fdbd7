"""The paper exchange: hand-computed fills, stops, funding and liquidations, plus invariants.

Numbers in the example tests are worked out by hand from the defaults (spot fee 10 bps, perp
fee 5 bps, slippage 5 bps, maintenance margin 0.5 %), so a change of formula shows up here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bot.domain.models import (
    QUOTE,
    FundingRate,
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    Side,
)
from bot.exchange.paper import PaperConfig, PaperEvent, PaperExchange
from bot.exchange.paper_orders import KEEP_FINISHED
from bot.exchange.port import ExchangePort, ExchangeUnavailable, OrderRejected

T0 = datetime(2024, 1, 1, tzinfo=UTC)
D = Decimal
SPOT, PERP = MarketKind.SPOT, MarketKind.PERP
BUY, SELL = Side.BUY, Side.SELL


def exchange(**prices: str) -> PaperExchange:
    ex = PaperExchange(PaperConfig(), ["SOL", "ETH", "UNI"], ["SOL", "ETH"])
    ex.update_market(T0, {t: D(p) for t, p in (prices or {"SOL": "100"}).items()}, {})
    return ex


def order(cid: str, token: str, market: MarketKind, side: Side, amount: str,
          **kw: object) -> OrderIntent:
    return OrderIntent(cid, token, market, side, D(amount), **kw)  # type: ignore[arg-type]


def stop(cid: str, token: str, side: Side, amount: str, trigger: str) -> OrderIntent:
    return OrderIntent(cid, token, PERP, side, D(amount), OrderType.STOP_MARKET,
                       trigger_price=D(trigger), reduce_only=True)


def cash(ex: PaperExchange) -> Decimal:
    return ex.fetch_balances().total[QUOTE]


def free(ex: PaperExchange) -> Decimal:
    return ex.fetch_balances().free[QUOTE]


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


# --------------------------------------------------------------------------------------------
# Port conformance and markets
# --------------------------------------------------------------------------------------------


def test_paper_exchange_is_an_exchange_port_with_a_simulated_clock() -> None:
    ex = PaperExchange(PaperConfig(), ["SOL"], ["SOL"])
    port: ExchangePort = ex
    assert port.name == "paper"
    with pytest.raises(ExchangeUnavailable):
        port.now()
    ex.update_market(T0, {"SOL": D(100)}, {})
    assert port.now() == T0
    with pytest.raises(ValueError, match="backwards"):
        ex.update_market(T0 - timedelta(seconds=1), {"SOL": D(100)}, {})
    with pytest.raises(ValueError, match="timezone"):
        ex.update_market(datetime(2024, 1, 2), {"SOL": D(100)}, {})


def test_steps_come_from_the_first_mark_and_then_stay() -> None:
    ex = PaperExchange(PaperConfig(), ["SOL", "BTC"], ["SOL"])
    assert ex.load_markets()[("SOL", SPOT)].amount_step == D("1E-8")  # not priced yet
    ex.update_market(T0, {"SOL": D(150), "BTC": D(60000)}, {})
    ex.update_market(hours(1), {"SOL": D(15), "BTC": D(60000)}, {})
    markets = ex.load_markets()
    assert set(markets) == {("SOL", SPOT), ("SOL", PERP), ("BTC", SPOT)}
    sol = markets[("SOL", PERP)]
    # 0.1 USDT / 150 = 0.00067 -> 1e-4 (worth 0.015 USDT); tick 10^(2-5)
    assert (sol.amount_step, sol.price_step) == (D("0.0001"), D("0.001"))
    assert sol.min_amount == sol.amount_step and sol.min_notional == D(5)
    assert sol.max_leverage == D(5) and markets[("SOL", SPOT)].max_leverage is None
    btc = markets[("BTC", SPOT)]
    assert (btc.amount_step, btc.price_step) == (D("0.000001"), D("0.1"))


# --------------------------------------------------------------------------------------------
# Spot
# --------------------------------------------------------------------------------------------


def test_spot_buy_and_sell_charge_slippage_and_fee_in_usdt() -> None:
    ex = exchange(SOL="100")
    res = ex.place_order(order("b1", "SOL", SPOT, BUY, "10"))
    # fill 100 * 1.0005 = 100.05; cost 1000.5; fee 10 bps = 1.0005
    assert (res.status, res.filled, res.average_price, res.fee) == (
        OrderStatus.FILLED, D(10), D("100.05"), D("1.0005"))
    assert res.exchange_id == "paper-1" and res.timestamp == T0
    bal = ex.fetch_balances()
    assert bal.total[QUOTE] == bal.free[QUOTE] == D("8998.4995")
    assert bal.total["SOL"] == D(10)

    res = ex.place_order(order("s1", "SOL", SPOT, SELL, "10"))
    # fill 99.95; proceeds 999.5; fee 0.9995 -> round trip cost 3.0 = 2 x (slippage + fee)
    assert (res.average_price, res.fee) == (D("99.95"), D("0.9995"))
    assert cash(ex) == D("9997.0000")
    assert "SOL" not in ex.fetch_balances().total


def test_a_thin_book_fills_part_of_a_market_order_and_expires_the_rest() -> None:
    ex = PaperExchange(PaperConfig(depth_notional=D(250)), ["SOL"], ["SOL"])
    ex.update_market(T0, {"SOL": D(100)}, {})
    res = ex.place_order(order("b1", "SOL", SPOT, BUY, "10"))
    # the book holds 250 USDT: 2.5 SOL fill at 100.05, fee 10 bps, the other 7.5 expire
    assert (res.status, res.amount, res.filled) == (OrderStatus.EXPIRED, D(10), D("2.5"))
    assert ex.fetch_balances().total["SOL"] == D("2.5")
    assert cash(ex) == D(10000) - D("2.5") * D("100.05") * (1 + D("0.001"))
    res = ex.place_order(order("p1", "SOL", PERP, SELL, "4"))
    assert (res.status, res.filled) == (OrderStatus.EXPIRED, D("2.5"))
    (position,) = ex.fetch_positions()
    assert position.amount == D("-2.5")
    small = ex.place_order(order("b2", "SOL", SPOT, BUY, "2"))  # 200 USDT fits the book
    assert (small.status, small.filled) == (OrderStatus.FILLED, D(2))
    kept = ex.fetch_order_by_client_id("b1", "SOL", SPOT)  # the venue remembers the partial
    assert kept is not None and (kept.status, kept.filled) == (OrderStatus.EXPIRED, D("2.5"))


def test_refused_orders_change_nothing() -> None:
    ex = exchange(SOL="100")
    ex.place_order(order("b1", "SOL", SPOT, BUY, "1"))
    before = ex.to_state()
    refused = [
        order("x1", "SOL", SPOT, BUY, "100"),  # 10005 + fee > free cash
        order("x2", "SOL", SPOT, SELL, "1.5"),  # more than held
        order("x3", "SOL", SPOT, BUY, "0.04"),  # notional 4 < 5
        order("x4", "SOL", SPOT, BUY, "0.0009"),  # below the 0.001 amount step
        order("x5", "DOGE", SPOT, BUY, "1"),  # unknown token
        order("x6", "UNI", PERP, BUY, "1"),  # UNI has no perp market
        order("x7", "SOL", SPOT, BUY, "1", order_type=OrderType.LIMIT, price=D(99)),
        order("x8", "SOL", PERP, BUY, "1000"),  # 1x margin 100050 > free cash
        order("", "SOL", SPOT, BUY, "1"),
    ]
    for intent in refused:
        with pytest.raises(OrderRejected):
            ex.place_order(intent)
    assert ex.to_state() == before
    # a refused order leaves no record, so its id is still free (as on Binance)
    assert ex.place_order(order("x1", "SOL", SPOT, BUY, "1")).status is OrderStatus.FILLED


def test_amount_is_truncated_to_the_step() -> None:
    ex = exchange(SOL="100")
    res = ex.place_order(order("b1", "SOL", SPOT, BUY, "1.23456"))
    assert res.amount == res.filled == D("1.234")


# --------------------------------------------------------------------------------------------
# Client ids
# --------------------------------------------------------------------------------------------


def test_duplicate_client_id_is_rejected_and_the_original_is_found() -> None:
    ex = exchange(SOL="100")
    first = ex.place_order(order("d1-leg0", "SOL", SPOT, BUY, "1"))
    before = ex.to_state()
    with pytest.raises(OrderRejected, match="duplicate client order id"):
        ex.place_order(order("d1-leg0", "SOL", SPOT, BUY, "1"))
    with pytest.raises(OrderRejected, match="duplicate client order id"):
        ex.place_order(order("d1-leg0", "SOL", PERP, SELL, "1"))
    assert ex.to_state() == before
    assert ex.fetch_order_by_client_id("d1-leg0", "SOL", SPOT) == first
    assert ex.fetch_order_by_client_id("d1-leg0", "SOL", PERP) is None
    assert ex.fetch_order_by_client_id("nope", "SOL", SPOT) is None


def test_finished_orders_are_forgotten_in_bounds_but_open_stops_and_recent_ids_stay() -> None:
    """A months-long paper run persists its book every step: finished orders beyond the
    newest KEEP_FINISHED go, so the state does not grow with the run (it did: 490k order
    encodes in one bundled backtest); open stops and recent client ids are kept."""
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(2))
    ex.place_order(order("p1", "SOL", PERP, BUY, "1"))
    ex.place_order(stop("p1-stop", "SOL", SELL, "1", "80"))
    for i in range(3 * KEEP_FINISHED):
        ex.place_order(order(f"s{i}", "SOL", SPOT, BUY if i % 2 == 0 else SELL, "0.1"))
    kept = ex.to_state()["orders"]["orders"]
    assert len(kept) <= 2 * KEEP_FINISHED
    assert "p1-stop" in {o["client_id"] for o in kept}
    assert ex.fetch_open_orders(trigger=True)[0].client_id == "p1-stop"
    last = f"s{3 * KEEP_FINISHED - 1}"
    assert ex.fetch_order_by_client_id(last, "SOL", SPOT) is not None
    with pytest.raises(OrderRejected, match="duplicate client order id"):
        ex.place_order(order(last, "SOL", SPOT, BUY, "0.1"))
    assert ex.fetch_order_by_client_id("s0", "SOL", SPOT) is None


def test_a_stop_placed_long_ago_and_cancelled_now_outlives_the_next_prune() -> None:
    """Pruning forgets the orders that *finished* longest ago. A stop held for weeks and
    cancelled by the venue when its position closed must still be found at the next
    reconcile, even if a prune falls in between (it was forgotten by placement order)."""
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(2))
    ex.place_order(order("p1", "SOL", PERP, BUY, "1"))
    ex.place_order(stop("p1-stop", "SOL", SELL, "1", "80"))
    for i in range(2 * KEEP_FINISHED - 4):  # placements 3 .. 2 * KEEP_FINISHED - 2
        ex.place_order(order(f"s{i}", "SOL", SPOT, BUY if i % 2 == 0 else SELL, "0.1"))
    ex.place_order(order("close", "SOL", PERP, SELL, "1", reduce_only=True))  # stop cancelled
    ex.place_order(order("next", "SOL", SPOT, BUY, "0.1"))  # 2 * KEEP_FINISHED: prunes
    found = ex.fetch_order_by_client_id("p1-stop", "SOL", PERP, trigger=True)
    assert found is not None and found.status is OrderStatus.CANCELED
    restored = PaperExchange.from_state(PaperConfig(), json.loads(json.dumps(ex.to_state())))
    for book in (ex, restored):
        for i in range(KEEP_FINISHED // 2):
            book.place_order(order(f"t{i}", "SOL", SPOT, BUY if i % 2 == 0 else SELL, "0.1"))
    assert ex.to_state() == restored.to_state()


# --------------------------------------------------------------------------------------------
# Perps: margin, reduce-only, leverage
# --------------------------------------------------------------------------------------------


def test_perp_margin_weighted_entry_and_flip() -> None:
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(2))
    ex.place_order(order("o1", "SOL", PERP, BUY, "10"))  # fill 100.05, fee 0.50025
    assert free(ex) == D(10000) - D("0.50025") - D("500.25")  # margin 1000.5 / 2
    ex.update_market(hours(1), {"SOL": D(110)}, {})
    ex.place_order(order("o2", "SOL", PERP, BUY, "10"))  # fill 110.055, fee 0.5502750
    (pos,) = ex.fetch_positions()
    assert pos.amount == D(20) and pos.entry_price == D("105.0525")
    assert pos.leverage == D(2) and pos.mark_price == D(110) and pos.opened_at == T0

    res = ex.place_order(order("o3", "SOL", PERP, SELL, "30"))  # fill 109.945, fee 1.649175
    (pos,) = ex.fetch_positions()
    assert pos.amount == D(-10) and pos.entry_price == D("109.945") and pos.opened_at == hours(1)
    realised = 20 * (D("109.945") - D("105.0525"))  # 97.85
    fees = D("0.50025") + D("0.5502750") + res.fee
    assert cash(ex) == D(10000) + realised - fees
    assert cash(ex) - free(ex) == D("1099.45") / 2  # only the new short's margin is posted


def test_reduce_only_may_not_open_increase_or_flip() -> None:
    ex = exchange(SOL="100")
    with pytest.raises(OrderRejected, match="reduce-only"):
        ex.place_order(order("r0", "SOL", PERP, SELL, "1", reduce_only=True))  # nothing open
    ex.place_order(order("o1", "SOL", PERP, BUY, "2"))
    before = ex.to_state()
    with pytest.raises(OrderRejected, match="reduce-only"):
        ex.place_order(order("r1", "SOL", PERP, BUY, "1", reduce_only=True))  # increase
    with pytest.raises(OrderRejected, match="flip"):
        ex.place_order(order("r2", "SOL", PERP, SELL, "3", reduce_only=True))  # flip
    assert ex.to_state() == before
    # reducing is fine, even below the notional floor (Binance waives it for reduce-only)
    res = ex.place_order(order("r3", "SOL", PERP, SELL, "0.01", reduce_only=True))
    assert res.status is OrderStatus.FILLED and res.reduce_only
    assert ex.fetch_positions()[0].amount == D("1.99")


def test_set_leverage_above_the_hard_cap_is_refused_before_any_change() -> None:
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(4))
    before = ex.to_state()
    for bad in (D(6), D("5.01"), D("0.5")):
        with pytest.raises(OrderRejected):
            ex.set_leverage("SOL", bad)
    assert ex.to_state() == before
    with pytest.raises(OrderRejected):
        ex.set_leverage("UNI", D(2))  # spot only
    ex.set_leverage("SOL", D(5))
    ex.place_order(order("o1", "SOL", PERP, BUY, "10"))
    assert cash(ex) - free(ex) == D("1000.5") / 5
    ex.set_margin_mode("SOL", "isolated")
    with pytest.raises(OrderRejected):
        ex.set_margin_mode("SOL", "cross")


def test_set_leverage_re_margins_an_open_position() -> None:
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(2))
    ex.place_order(order("o1", "SOL", PERP, BUY, "10"))
    ex.set_leverage("SOL", D(4))
    (pos,) = ex.fetch_positions()
    assert pos.leverage == D(4) and cash(ex) - free(ex) == D("1000.5") / 4
    assert pos.liquidation_price == D("100.05") * (1 - 1 / D(4) + D("0.005"))


def test_liquidation_price_formula_and_liquidation() -> None:
    ex = exchange(SOL="100", ETH="2000")
    mmr = D("0.005")
    ex.set_leverage("SOL", D(5))
    ex.set_leverage("ETH", D(3))
    ex.place_order(order("l1", "SOL", PERP, BUY, "10"))  # entry 100.05, margin 200.1
    ex.place_order(order("s1", "ETH", PERP, SELL, "1"))  # entry 1999.0
    ex.place_order(stop("l1-stop", "SOL", SELL, "10", "70"))  # below liquidation: useless
    long, short = sorted(ex.fetch_positions(), key=lambda p: p.token != "SOL")
    assert long.liquidation_price == D("80.54025")  # 100.05 x (1 - 1/5 + 0.005)
    assert short.liquidation_price == D(1999) * (1 + 1 / D(3) - mmr)
    assert long.stop_price == D(70)

    cash_before = cash(ex)
    events = ex.update_market(hours(1), {"SOL": D(85), "ETH": D(1990)},
                              {}, {"SOL": (D("80.5"), D(101))})
    assert events == [PaperEvent("liquidated", "SOL", D(-10), D("80.54025"), D("-200.1"),
                                 None, "range=(80.5, 101)")]
    assert cash(ex) == cash_before - D("200.1")
    assert [p.token for p in ex.fetch_positions()] == ["ETH"]
    assert ex.fetch_open_orders(trigger=True) == []
    got = ex.fetch_order_by_client_id("l1-stop", "SOL", PERP, trigger=True)
    assert got is not None and got.status is OrderStatus.CANCELED


def test_a_stop_that_would_fill_past_liquidation_is_a_liquidation() -> None:
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(5))
    ex.place_order(order("o1", "SOL", PERP, BUY, "10"))  # liquidation 80.54025, margin 200.1
    ex.place_order(stop("o1-stop", "SOL", SELL, "10", "80.6"))
    cash_before = cash(ex)
    (event,) = ex.update_market(hours(1), {"SOL": D(75)}, {})  # gap far through both
    assert (event.kind, event.price, event.cash_delta) == ("liquidated", D("80.54025"),
                                                          D("-200.1"))
    assert "past the liquidation price" in event.detail
    assert cash(ex) == free(ex) == cash_before - D("200.1")  # isolated: the margin, no more
    got = ex.fetch_order_by_client_id("o1-stop", "SOL", PERP, trigger=True)
    assert got is not None and got.status is OrderStatus.CANCELED


def test_funding_is_capped_at_the_isolated_margin() -> None:
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(5))
    ex.place_order(order("o1", "SOL", PERP, BUY, "10"))
    free_before = free(ex)
    rates = {"SOL": FundingRate("SOL", 0.05, 1.0)}  # 10 x 100 x 5 % x 24 h = 1200 > 200.1
    funding, liquidation = ex.update_market(hours(24), {"SOL": D(100)}, rates)
    assert (funding.kind, funding.cash_delta) == ("funding", D("-200.1"))
    assert "capped" in funding.detail
    # no margin left: 80.54025 + 200.1 / 10 = 100.55025 is above the mark
    assert (liquidation.kind, liquidation.price, liquidation.cash_delta) == (
        "liquidated", D("100.55025"), D(0))
    assert free(ex) == cash(ex) == free_before


# --------------------------------------------------------------------------------------------
# Stops
# --------------------------------------------------------------------------------------------


def test_three_x_long_stopped_out_by_the_price_path() -> None:
    ex = exchange(SOL="100")
    ex.set_leverage("SOL", D(3))
    ex.place_order(order("o1", "SOL", PERP, BUY, "30"))
    # fill 100.05, notional 3001.5, fee 5 bps = 1.50075, margin 3001.5 / 3 = 1000.5
    assert free(ex) == D(10000) - D("1.50075") - D("1000.5")
    placed = ex.place_order(stop("o1-stop", "SOL", SELL, "30", "95"))
    assert placed.status is OrderStatus.OPEN and placed.reduce_only
    assert ex.fetch_open_orders(trigger=True) == [placed]
    assert ex.fetch_open_orders() == []
    assert ex.fetch_order_by_client_id("o1-stop", "SOL", PERP) is None  # stops need trigger
    assert ex.fetch_positions()[0].stop_price == D(95)

    assert ex.update_market(hours(1), {"SOL": D(98)}, {}, {"SOL": (D(97), D(99))}) == []
    events = ex.update_market(hours(2), {"SOL": D("96.5")}, {}, {"SOL": (D(94), D(97))})

    fill = D(95) * (1 - D("0.0005"))  # trigger touched intraday: 94.9525
    realised = 30 * (fill - D("100.05"))  # -152.925
    exit_fee = 30 * fill * D("0.0005")  # 1.4242875
    assert [(e.kind, e.client_id, e.amount, e.price, e.fee, e.cash_delta) for e in events] == [
        ("stop_triggered", "o1-stop", D(-30), fill, exit_fee, realised - exit_fee)]
    loss = D("1.50075") + D("152.925") + D("1.4242875")
    assert cash(ex) == free(ex) == D(10000) - loss == D("9844.1499625")
    assert ex.fetch_positions() == []
    done = ex.fetch_order_by_client_id("o1-stop", "SOL", PERP, trigger=True)
    assert done is not None and done.status is OrderStatus.TRIGGERED
    assert (done.filled, done.average_price, done.fee) == (D(30), fill, exit_fee)


def test_a_gap_through_the_stop_fills_at_the_worse_mark() -> None:
    for ranges in ({"SOL": (D(89), D(92))}, None):
        ex = exchange(SOL="100")
        ex.place_order(order("o1", "SOL", PERP, BUY, "10"))
        ex.place_order(stop("o1-stop", "SOL", SELL, "10", "95"))
        events = ex.update_market(hours(4), {"SOL": D(90)}, {}, ranges)
        assert [(e.kind, e.price) for e in events] == [("stop_triggered", D("89.955"))]


def test_stops_are_validated_and_cancelled_with_their_position() -> None:
    ex = exchange(SOL="100")
    with pytest.raises(OrderRejected, match="no SOL position"):
        ex.place_order(stop("s0", "SOL", SELL, "1", "90"))
    ex.place_order(order("o1", "SOL", PERP, SELL, "5"))  # short
    for bad in (stop("s1", "SOL", SELL, "5", "110"),  # would increase the short
                stop("s2", "SOL", BUY, "5", "99"),  # already crossed (-2021)
                OrderIntent("s3", "SOL", SPOT, BUY, D(1), OrderType.STOP_MARKET,
                            trigger_price=D(110))):
        with pytest.raises(OrderRejected):
            ex.place_order(bad)
    a = ex.place_order(stop("s4", "SOL", BUY, "5", "110.00049"))  # rounded to the 0.001 tick
    b = ex.place_order(stop("s5", "SOL", BUY, "5", "120"))
    assert a.trigger_price == D("110.000")
    assert ex.fetch_positions()[0].stop_price == D(110)  # the one that fires first
    ex.cancel_order(b)
    with pytest.raises(OrderRejected):
        ex.cancel_order(b)
    ex.place_order(order("o2", "SOL", PERP, BUY, "5"))  # closes the short
    assert ex.fetch_open_orders(trigger=True) == []
    states = {cid: ex.fetch_order_by_client_id(cid, "SOL", PERP, trigger=True)
              for cid in ("s4", "s5")}
    assert {k: v.status for k, v in states.items() if v} == {
        "s4": OrderStatus.CANCELED, "s5": OrderStatus.CANCELED}


# --------------------------------------------------------------------------------------------
# Funding
# --------------------------------------------------------------------------------------------


def test_funding_at_a_four_hour_rate_over_a_day() -> None:
    ex = exchange(SOL="100", ETH="2000")
    ex.set_leverage("SOL", D(2))
    ex.place_order(order("l", "SOL", PERP, BUY, "10"))
    ex.place_order(order("s", "ETH", PERP, SELL, "1"))
    cash0, free0 = cash(ex), free(ex)
    liq0 = ex.fetch_positions()[1].liquidation_price
    # 0.04 % per 4 h settlement = 0.01 % per hour
    rates = {t: FundingRate(t, 0.0004 / 4, 4.0) for t in ("SOL", "ETH")}
    events: list[PaperEvent] = []
    for step in range(1, 7):
        events += ex.update_market(hours(4 * step), {"SOL": D(100), "ETH": D(2000)}, rates)
    sol = [e.cash_delta for e in events if e.token == "SOL"]
    eth = [e.cash_delta for e in events if e.token == "ETH"]
    assert sol == [D("-0.4")] * 6  # 10 x 100 x 0.0001 x 4 h: the long pays
    assert eth == [D("0.8")] * 6  # 1 x 2000 x 0.0001 x 4 h: the short receives
    assert cash(ex) == cash0 - D("2.4") + D("4.8")
    assert free(ex) == free0  # funding moves isolated margin, not free cash
    sol_pos = ex.fetch_positions()[1]
    assert sol_pos.token == "SOL" and liq0 is not None
    assert sol_pos.liquidation_price == liq0 + D("2.4") / 10  # thinner margin, closer liq
    assert ex.fetch_funding_rates(["SOL", "UNI"]) == {"SOL": rates["SOL"]}
    # a period without a rate (stale data left out by the driver) charges nothing
    assert ex.update_market(hours(28), {"SOL": D(100)}, {}) == []
    assert ex.fetch_funding_rates(["SOL", "ETH"]) == {}


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------


def test_state_round_trips_exactly_and_resumes_identically() -> None:
    ex = exchange(SOL="100", ETH="2000", UNI="7.5")
    ex.place_order(order("b1", "UNI", SPOT, BUY, "100"))
    ex.set_leverage("SOL", D(3))
    ex.place_order(order("p1", "SOL", PERP, BUY, "12.5"))
    ex.place_order(stop("p1-stop", "SOL", SELL, "12.5", "91"))
    ex.place_order(order("p2", "ETH", PERP, SELL, "0.5"))
    ex.update_market(hours(8), {"SOL": D("97.3")}, {"SOL": FundingRate("SOL", 1.25e-05, 8.0)})

    state = ex.to_state()
    restored = PaperExchange.from_state(PaperConfig(), json.loads(json.dumps(state)))
    assert restored.to_state() == state
    assert restored.fetch_positions() == ex.fetch_positions()
    assert restored.fetch_balances() == ex.fetch_balances()
    assert restored.load_markets() == ex.load_markets()
    assert restored.now() == ex.now()

    for venue in (ex, restored):
        venue.update_market(hours(16), {"SOL": D(90), "ETH": D(2100)},
                            {"SOL": FundingRate("SOL", 2e-05, 8.0)})
        venue.place_order(order("b2", "UNI", SPOT, SELL, "40"))
    assert restored.to_state() == ex.to_state()
    with pytest.raises(ValueError):
        PaperExchange.from_state(PaperConfig(), {**state, "version": 99})


# --------------------------------------------------------------------------------------------
# Invariants on random paths
# --------------------------------------------------------------------------------------------

TOL = D("1e-9")
# Mostly ordinary moves, often a crash or squeeze big enough for stops and 5x liquidations.
MOVES = st.one_of(st.decimals("-0.35", "0.35", places=3),
                  st.sampled_from([D("-0.3"), D("-0.19"), D("-0.08"), D("0.08"), D("0.25")]))
PRICES0 = {"SOL": D(100), "ETH": D(2000), "UNI": D(5)}


class PaperMachine(RuleBasedStateMachine):
    """Random orders, leverage changes, stops and price paths against the accounting identity.

    Equity = USDT wallet + spot at mark + unrealised PnL. An order may only cost its fee plus
    its slippage against the mark; a market update may only move equity by the price change
    on what was held, the funding paid, and what closing events realise beyond the mark.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ex = PaperExchange(PaperConfig(), ["SOL", "ETH", "UNI"], ["SOL", "ETH"])
        self.marks = dict(PRICES0)
        self.t = T0
        self.ex.update_market(self.t, self.marks, {})
        self.n = 0

    def equity(self) -> Decimal:
        bal = self.ex.fetch_balances()
        spot = sum((bal.total.get(t, D(0)) * m for t, m in self.marks.items()), D(0))
        upnl = sum((p.unrealized_pnl for p in self.ex.fetch_positions()), D(0))
        return bal.total[QUOTE] + spot + upnl

    def send(self, intent: OrderIntent) -> OrderResult | None:
        state, eq = self.ex.to_state(), self.equity()
        try:
            res = self.ex.place_order(intent)
        except OrderRejected:
            assert self.ex.to_state() == state
            return None
        cost = res.fee
        if res.average_price is not None:
            cost += res.filled * abs(res.average_price - self.marks[res.token])
        assert abs(self.equity() - (eq - cost)) <= TOL
        return res

    def cid(self) -> str:
        self.n += 1
        return f"c{self.n}"

    @rule(token=st.sampled_from(["SOL", "ETH", "UNI"]), side=st.sampled_from(list(Side)),
          frac=st.decimals("0", "1.5", places=3))
    def spot_order(self, token: str, side: Side, frac: Decimal) -> None:
        bal = self.ex.fetch_balances()
        base = bal.free[QUOTE] / self.marks[token] if side is BUY else bal.total.get(token, D(1))
        self.send(OrderIntent(self.cid(), token, SPOT, side, (frac * base).quantize(D("1e-6"))))

    @rule(token=st.sampled_from(["SOL", "ETH"]), side=st.sampled_from(list(Side)),
          frac=st.decimals("0", "4", places=3), reduce_only=st.booleans())
    def perp_order(self, token: str, side: Side, frac: Decimal, reduce_only: bool) -> None:
        amount = frac * free(self.ex) / self.marks[token]
        self.send(OrderIntent(self.cid(), token, PERP, side, amount.quantize(D("1e-6")),
                              reduce_only=reduce_only))

    @rule(token=st.sampled_from(["SOL", "ETH"]), side=st.sampled_from(list(Side)),
          lev=st.integers(1, 5), frac=st.decimals("0.05", "0.6", places=2),
          distance=st.none() | st.decimals("0.02", "0.25", places=2))
    def leveraged_entry(self, token: str, side: Side, lev: int, frac: Decimal,
                        distance: Decimal | None) -> None:
        """What the overlay does: set leverage, open, protect with a stop."""
        self.leverage(token, lev)
        amount = frac * free(self.ex) * lev / self.marks[token]
        res = self.send(OrderIntent(self.cid(), token, PERP, side, amount.quantize(D("1e-6"))))
        if res is not None and distance is not None:
            self.place_stop(token, distance, D(1))

    @rule(token=st.sampled_from(["SOL", "ETH"]), lev=st.integers(1, 6))
    def leverage(self, token: str, lev: int) -> None:
        state, eq = self.ex.to_state(), self.equity()
        try:
            self.ex.set_leverage(token, D(lev))
        except OrderRejected:
            assert self.ex.to_state() == state
        else:
            assert lev <= 5
        assert self.equity() == eq

    @rule(token=st.sampled_from(["SOL", "ETH"]), distance=st.decimals("0.01", "0.4", places=3),
          frac=st.decimals("0.1", "1.2", places=2))
    def place_stop(self, token: str, distance: Decimal, frac: Decimal) -> None:
        pos = {p.token: p for p in self.ex.fetch_positions()}.get(token)
        if pos is None:
            return
        long = pos.amount > 0
        trigger = self.marks[token] * (1 - distance if long else 1 + distance)
        self.send(OrderIntent(self.cid(), token, PERP, SELL if long else BUY,
                              abs(pos.amount) * frac, OrderType.STOP_MARKET,
                              trigger_price=trigger, reduce_only=True))

    @rule(pick=st.integers(0, 5))
    def cancel_stop(self, pick: int) -> None:
        stops = self.ex.fetch_open_orders(trigger=True)
        if stops:
            eq = self.equity()
            self.ex.cancel_order(stops[pick % len(stops)])
            assert self.equity() == eq

    @rule(hours_=st.integers(1, 24),
          moves=st.lists(MOVES, min_size=3, max_size=3),
          wicks=st.lists(st.decimals("0", "0.1", places=3), min_size=3, max_size=3),
          rates=st.lists(st.floats(-0.002, 0.002), min_size=2, max_size=2))
    def tick(self, hours_: int, moves: list[Decimal], wicks: list[Decimal],
             rates: list[float]) -> None:
        old = dict(self.marks)
        new = {t: max((old[t] * (1 + m)).quantize(D("0.0001")), D("0.0001"))
               for t, m in zip(old, moves, strict=True)}
        ranges = {t: (min(old[t], new[t]) * (1 - w), max(old[t], new[t]) * (1 + w))
                  for t, w in zip(old, wicks, strict=True)}
        funding = {t: FundingRate(t, r, 8.0) for t, r in zip(("SOL", "ETH"), rates, strict=True)}
        held = dict(self.ex.fetch_balances().total)
        positions = {p.token: p for p in self.ex.fetch_positions()}
        eq = self.equity()
        self.t += timedelta(hours=hours_)
        self.marks = new
        events = self.ex.update_market(self.t, new, funding, ranges)

        expected = eq + sum((held.get(t, D(0)) * (new[t] - old[t]) for t in old), D(0))
        expected += sum((p.amount * (new[t] - old[t]) for t, p in positions.items()), D(0))
        for e in events:
            expected += e.cash_delta
            if e.kind in ("stop_triggered", "liquidated"):
                # the position part that left the book took its unrealised PnL with it
                expected -= -e.amount * (new[e.token] - positions[e.token].entry_price)
            if e.kind == "funding" and "capped" not in e.detail:
                rate = D(repr(funding[e.token].hourly_rate))
                assert e.cash_delta == -(e.amount * new[e.token] * rate * hours_)
        assert abs(self.equity() - expected) <= TOL
        for e in events:
            if e.kind == "liquidated":
                assert e.cash_delta <= 0

    @rule()
    def restart(self) -> None:
        state = self.ex.to_state()
        self.ex = PaperExchange.from_state(PaperConfig(), json.loads(json.dumps(state)))
        assert self.ex.to_state() == state

    @invariant()
    def balances_never_negative(self) -> None:
        bal = self.ex.fetch_balances()
        assert bal.free[QUOTE] >= 0 and bal.total[QUOTE] >= bal.free[QUOTE]
        assert all(v > 0 for k, v in bal.total.items() if k != QUOTE)

    @invariant()
    def positions_are_alive_and_stops_protect_them(self) -> None:
        positions = {p.token: p for p in self.ex.fetch_positions()}
        for p in positions.values():
            assert p.liquidation_price is None or (
                p.liquidation_price < p.mark_price if p.amount > 0
                else p.liquidation_price > p.mark_price)
        for s in self.ex.fetch_open_orders(trigger=True):
            p = positions[s.token]
            assert (s.side is SELL) == (p.amount > 0)


PaperMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPaperInvariants = PaperMachine.TestCase
