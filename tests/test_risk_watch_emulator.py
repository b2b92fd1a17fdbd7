"""The risk rules of ``test_risk_watch.py`` again, through real ccxt and real HTTP.

The paper exchange proves the rules; this file proves they survive the wire: the production
``CcxtExchange`` (demo mode, unmodified ccxt, signed requests) talks to the Binance emulator,
and the production ``Executor``, ``RiskWatch``, ``read_portfolio`` and ``check_overlay`` run
unchanged over a real SQLite store. Every test asserts on what the *venue* holds afterwards
(its positions, algo orders, fills and the requests it recorded), not only on return values,
because a risk rule that logs the right event but leaves the position open is worse than none.

Binance keeps spot and USD-M futures USDT in separate wallets; the adapter sums them into
``cash``, so equity here is spot USDT + futures wallet + spot holdings + unrealised PnL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.models import (
    MarketKind,
    OrderIntent,
    OrderStatus,
    OrderType,
    OverlayLeg,
    Portfolio,
    PositionSide,
    Regime,
    Side,
)
from bot.domain.risk import check_overlay
from bot.domain.risk_limits import RiskLimits
from bot.exchange.ccxt_exchange import CcxtExchange, RetryPolicy
from bot.service.cycle import read_portfolio
from bot.service.executor import ExecutionReport, Executor
from bot.service.risk_watch import RiskWatch, clear_kill_switch
from bot.store.repo import StateStore
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.exchange_emulator.book import PERP_FEE
from tests.test_risk_watch import RecordingLog

KEY, SECRET = "emu-risk-key-0123", "emu-risk-secret-4567"
TOKENS = ["BTC", "SOL"]
FAST = RetryPolicy(read_attempts=3, base_delay=0.01, max_delay=0.05, rate_limit_delay=0.05,
                   max_rate_limit_wait=5.0, lookup_attempts=2, lookup_delay=0.01)
LIMITS = RiskLimits()  # production defaults: 3x cap, 8% stop, 25% drawdown, 30% APR funding
PERP_WRITES = ("/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v1/leverage",
               "/fapi/v1/marginType")


@dataclass
class Rig:
    emu: BinanceEmulator
    ex: CcxtExchange
    store: StateStore
    executor: Executor
    watch: RiskWatch
    log: RecordingLog

    def portfolio(self) -> Portfolio:
        return read_portfolio(self.ex, TOKENS)

    def live_algos(self) -> list[Any]:
        """Stops the venue still holds (``NEW``): the ground truth for 'protected'."""
        return [a for a in self.emu.book.algos.values() if a.status == "NEW"]

    def open_regular(self) -> list[Any]:
        return [o for o in self.emu.book.orders.values() if o.status == "NEW"]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The daemon's pieces as production wires them (adapter cap = the risk cap, as
    ``bot.service.venue`` does), with only the transport rerouted to 127.0.0.1."""
    with BinanceEmulator(KEY, SECRET) as emu:
        ex = CcxtExchange(
            "binance", "demo", api_key=SecretStr(KEY), api_secret=SecretStr(SECRET),
            tokens=TOKENS, perp_tokens=["SOL"], max_leverage=LIMITS.max_leverage, retry=FAST,
            rate_limit_ms=1, timeout_ms=2000, session_hook=lambda e: route_to(e, emu))
        ex.load_markets()
        store = StateStore(tmp_path / "s.sqlite3")
        log = RecordingLog()
        executor = Executor(ex, store, log)
        watch = RiskWatch(ex, store, executor, LIMITS, log)
        emu.clear_requests()
        yield Rig(emu, ex, store, executor, watch, log)
        ex.close()


def open_long(rig: Rig, amount: str = "30", leverage: str = "3") -> None:
    """The cycle's entry path: executor.submit (margin mode, leverage, market order), then
    executor.protect places the 8% exchange-side stop."""
    intent = OrderIntent("sb-test-open", "SOL", MarketKind.PERP, Side.BUY, Decimal(amount),
                         leverage=Decimal(leverage))
    report = ExecutionReport()
    result = rig.executor.submit(intent, "d1", report)
    assert result is not None and result.status is OrderStatus.FILLED
    rig.executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", report)
    assert report.stops_placed == 1
    assert rig.emu.book.positions["SOLUSDT"].qty == Decimal(amount)
    assert len(rig.live_algos()) == 1


def set_funding(emu: BinanceEmulator, token: str, rate: str) -> None:
    """The rate the venue announces per settlement (SOL settles every 4h on the emulator)."""
    emu.book.instruments[f"{token}USDT"].funding_rate = Decimal(rate)


def test_a_price_path_through_the_stop_closes_at_the_loss_the_stop_implies(rig: Rig) -> None:
    """The stop lives on the venue, so no bot code runs while the price falls: the emulator
    fires it and the realised loss must be what an 8% stop on 30 SOL means, nothing more."""
    open_long(rig)
    (stop,) = rig.live_algos()
    assert (stop.trigger_price, stop.qty, stop.side) == (Decimal(138), Decimal(30), "SELL")
    assert stop.reduce_only and stop.working_type == "MARK_PRICE"
    wallet_before = rig.emu.book.wallet
    fired: list[int] = []
    for price in ("147", "142.3", "138.01", "138", "131"):  # touches the trigger, then gaps on
        fired += rig.emu.set_price("SOL", price)
    assert fired == [stop.algo_id] and stop.status == "FINISHED"
    assert rig.emu.book.positions == {}
    assert rig.ex.fetch_positions() == [] and rig.ex.fetch_open_orders(trigger=True) == []

    (exit_fill,) = [t for t in rig.emu.book.trades if t.order_id == stop.actual_order_id]
    assert (exit_fill.side, exit_fill.qty, exit_fill.price) == ("SELL", Decimal(30), Decimal(138))
    (entry_fill,) = [t for t in rig.emu.book.trades
                     if t.side == "BUY" and t.symbol == "SOLUSDT"]
    implied = entry_fill.qty * entry_fill.price * Decimal("0.08")  # 30 * 150 * 8% = 360
    assert exit_fill.realized_pnl == -implied
    loss = wallet_before - rig.emu.book.wallet
    assert abs(loss - implied) <= exit_fill.qty * exit_fill.price * PERP_FEE + Decimal("0.01")
    # The adapter reads the same story back: the stop TRIGGERED with its child's fill.
    seen = rig.ex.fetch_order_by_client_id(stop.client_algo_id, "SOL", MarketKind.PERP,
                                           trigger=True)
    assert seen is not None and seen.status is OrderStatus.TRIGGERED
    assert (seen.filled, seen.average_price) == (Decimal(30), Decimal(138))


def test_a_stop_cancelled_on_the_venue_is_replaced_within_one_watch_tick(rig: Rig) -> None:
    """Someone (or something) cancels the stop on the venue; the next watch tick must notice
    from the venue's own state and put a live stop back, once."""
    open_long(rig)
    (stop,) = rig.ex.fetch_open_orders(trigger=True)
    rig.ex.cancel_order(stop)
    assert rig.live_algos() == [] and rig.ex.fetch_positions()[0].stop_price is None
    rig.emu.clear_requests()

    rig.watch.run(rig.portfolio(), salt="rw-1")
    assert [f["token"] for f in rig.log.named("stoploss.missing")] == ["SOL"]
    (placed,) = rig.emu.requests_for("POST", "/fapi/v1/algoOrder")
    assert placed.params["clientAlgoId"] != stop.client_id
    (live,) = rig.live_algos()
    assert (live.client_algo_id, live.trigger_price, live.qty) == (
        placed.params["clientAlgoId"], Decimal(138), Decimal(30))
    assert live.reduce_only and live.side == "SELL"
    assert rig.ex.fetch_positions()[0].stop_price == Decimal(138)

    rig.watch.run(rig.portfolio(), salt="rw-2")
    assert len(rig.log.named("stoploss.missing")) == 1, "a protected position is left alone"
    assert rig.emu.count("POST", "/fapi/v1/algoOrder") == 1 and len(rig.live_algos()) == 1


def test_funding_above_the_threshold_closes_the_leveraged_long(rig: Rig) -> None:
    """The venue announces 0.05% per 4h (~110% APR, above the 30% exit): the watch closes the
    long with a reduce-only market order, the venue drops its stop, and re-entry waits until
    funding falls below half the threshold."""
    open_long(rig)
    set_funding(rig.emu, "SOL", "0.0005")
    rig.emu.clear_requests()
    rig.watch.run(rig.portfolio(), salt="rw-f")

    (exit_event,) = rig.log.named("funding.exit")
    assert exit_event["token"] == "SOL" and exit_event["apr"] == pytest.approx(1.095)
    (close,) = rig.emu.requests_for("POST", "/fapi/v1/order")
    assert close.params | {"side": "SELL", "type": "MARKET", "quantity": "30",
                           "reduceOnly": "true"} == close.params
    assert rig.emu.book.positions == {} and rig.ex.fetch_positions() == []
    assert rig.live_algos() == [], "the stop goes with the position"
    assert rig.emu.count("POST", "/fapi/v1/algoOrder") == 0, "no stop for a flat position"
    assert rig.watch.funding_blocked() == {"SOL"}
    leg = OverlayLeg("SOL", PositionSide.LONG, 0.1, 2.0, 0.08, "enter")
    kept, blocks = check_overlay((leg,), LIMITS, Regime.BULL,
                                 funding_blocked=frozenset(rig.watch.funding_blocked()))
    assert kept == () and blocks[0].rule == "funding_hysteresis"

    set_funding(rig.emu, "SOL", "0.00001")  # ~2% APR: below half the threshold
    rig.watch.run(rig.portfolio(), salt="rw-g")
    assert rig.watch.funding_blocked() == set()
    assert [f["token"] for f in rig.log.named("funding.normalised")] == ["SOL"]


def test_a_25pct_drawdown_trips_the_kill_switch_and_leaves_no_leverage_or_orders(
        rig: Rig) -> None:
    """Drawdown must come from spot: the futures wallet alone cannot lose 25% of a two-wallet
    account before the stop fires. 0.15 BTC (9000 USDT) falls 60% while the 2x SOL long
    sits above its stop; the switch must flatten perps and cancel every order, spot and algo,
    yet sell no spot."""
    report = ExecutionReport()
    assert rig.executor.submit(OrderIntent("sb-test-btc", "BTC", MarketKind.SPOT, Side.BUY,
                                           Decimal("0.15")), "d1", report) is not None
    open_long(rig, amount="10", leverage="2")
    bid = OrderIntent("sb-test-bid", "BTC", MarketKind.SPOT, Side.BUY, Decimal("0.001"),
                      order_type=OrderType.LIMIT, price=Decimal(20000))
    assert rig.executor.submit(bid, "d1", report) is not None
    assert len(rig.open_regular()) == 1 and len(rig.live_algos()) == 1
    btc = rig.emu.book.spot["BTC"]
    assert btc == Decimal("0.14985")  # 0.15 less the 0.1% fee taken in BTC

    high = rig.portfolio().equity()
    # spot 1000 + futures 10000 - 0.75 entry fee + 0.14985 BTC at 60000
    assert high == Decimal("19990.25")
    rig.watch.run(rig.portfolio(), salt="rw-hw")  # records the high-water mark
    assert rig.log.named("killswitch.tripped") == []

    rig.emu.set_price("BTC", "24000")
    rig.emu.set_price("SOL", "140")  # stop is at 138: still open, 100 USDT under water
    assert rig.live_algos() and rig.emu.book.positions
    low = rig.portfolio().equity()
    assert low == Decimal("10999.25") + btc * 24000 - 100
    assert (high - low) / high >= Decimal("0.25")
    rig.emu.clear_requests()
    rig.watch.run(rig.portfolio(), salt="rw-dd")

    (tripped,) = rig.log.named("killswitch.tripped")
    assert "drawdown 27.5%" in tripped["reason"] and tripped["closed"] == 1
    assert tripped["equity"] == str(low.quantize(Decimal("0.01")))
    assert rig.emu.book.positions == {} and rig.ex.fetch_positions() == []
    assert rig.live_algos() == [] and rig.open_regular() == []
    assert rig.ex.fetch_open_orders(trigger=True) == [] and rig.ex.fetch_open_orders() == []
    assert rig.emu.count("DELETE", "/api/v3/order") == 1
    assert rig.emu.count("POST", "/api/v3/order") == 0, "no spot order after the trip"
    assert rig.emu.book.spot["BTC"] == btc, "spot is left alone"
    (close,) = rig.emu.requests_for("POST", "/fapi/v1/order")
    assert close.params["reduceOnly"] == "true" and close.params["quantity"] == "10"

    leg = OverlayLeg("SOL", PositionSide.SHORT, 0.05, 2.0, 0.08, "hedge")
    kept, blocks = check_overlay((leg,), LIMITS, Regime.BULL, killed=rig.watch.killed)
    assert kept == () and blocks[0].rule == "killswitch"
    rig.watch.run(rig.portfolio(), salt="rw-after")
    assert len(rig.log.named("killswitch.tripped")) == 1, "tripped once, stays tripped"
    assert clear_kill_switch(rig.store) is not None
    assert rig.store.active_kill_switch() is None


def test_an_eight_x_leg_is_clipped_and_never_reaches_the_venue(rig: Rig) -> None:
    """check_overlay clips 8x to the 3x cap; an 8x intent that reaches the executor anyway is
    refused by the adapter before any leverage change or order leaves for the venue."""
    leg = OverlayLeg("SOL", PositionSide.LONG, 0.1, 8.0, 0.08, "enter")
    (kept,), (block,) = check_overlay((leg,), LIMITS, Regime.BULL)
    assert kept.leverage == 3.0 and block.rule == "leverage_cap"

    report = ExecutionReport()
    intent = OrderIntent("sb-test-8x", "SOL", MarketKind.PERP, Side.BUY, Decimal(1),
                         leverage=Decimal(8))
    assert rig.executor.submit(intent, "d1", report) is None
    assert report.rejected == 1 and report.sent == 0
    (rejected,) = rig.log.named("order.rejected")
    assert "leverage 8 outside [1, 3.0] (not sent)" in rejected["reason"]
    assert rig.emu.count("POST", "/fapi/v1/leverage") == 0
    assert rig.emu.count("POST", "/fapi/v1/order") == 0
    assert rig.emu.count("POST", "/fapi/v1/algoOrder") == 0
    assert rig.emu.book.leverage["SOLUSDT"] == 20, "the venue's leverage is untouched"
    assert rig.emu.book.positions == {} and rig.emu.book.orders == {}


def test_a_refused_eight_x_intent_leaves_no_trace_on_the_venue(rig: Rig) -> None:
    """The stronger reading of 'never reaches the venue': not even an account setting may
    change for an intent that is refused for its leverage (a cross position on the symbol
    would also turn the refusal into a misleading margin-mode error)."""
    intent = OrderIntent("sb-test-8x", "SOL", MarketKind.PERP, Side.BUY, Decimal(1),
                         leverage=Decimal(8))
    assert rig.executor.submit(intent, "d1", ExecutionReport()) is None
    assert [(r.method, r.path) for r in rig.emu.requests if r.path in PERP_WRITES] == []
    assert rig.emu.book.margin_type["SOLUSDT"] == "CROSSED"
