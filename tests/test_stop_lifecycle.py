"""Issue #10, cases 4-8: stops, risk steps and fees, through real ccxt and the emulators.

Each test reproduces a way the order path lost protection or money at fcf230a and asserts
on what the venue (and the journal) hold afterwards:

4. a stop whose answer stays unconfirmed must not replace the confirmed one;
5. a leg's stop goes on right after the leg, so a later leg's failure cannot leave it bare;
6. one failed read (funding) must not cost the stop watchdog its turn, and a swallowed
   error elsewhere must not reset the failure count behind the kill switch;
7. a funding exit must not cancel the stop of a position its close did not close;
8. an order recovered by lookup carries its fee, and each part fill its own part of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.models import MarketKind, OrderIntent, OrderResult, OrderStatus, OrderType, Side
from bot.domain.planner import Plan
from bot.domain.risk_limits import RiskLimits
from bot.exchange.ccxt_exchange import CcxtExchange, RetryPolicy
from bot.service.cycle import read_portfolio
from bot.service.executor import ExecutionReport, Executor
from bot.service.risk_watch import RiskWatch
from bot.store.repo import StateStore
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.exchange_emulator.bybit_server import BYBIT_HOSTS, BybitEmulator
from tests.test_risk_watch import RecordingLog

KEY, SECRET = "lifecycle-key-9f8e", "lifecycle-secret-7d6c"
FAST = RetryPolicy(read_attempts=2, base_delay=0.01, max_delay=0.02, rate_limit_delay=0.02,
                   max_rate_limit_wait=1.0, lookup_attempts=2, lookup_delay=0.01)
PERPS = ["SOL", "ARB"]


@dataclass
class Rig:
    emu: Any
    ex: CcxtExchange
    store: StateStore
    executor: Executor
    watch: RiskWatch
    log: RecordingLog

    def live_stops(self, symbol: str) -> list[Any]:
        """Stops the venue holds for ``symbol`` (Binance algo orders or Bybit conditionals)."""
        if isinstance(self.emu, BinanceEmulator):
            return [a for a in self.emu.book.algos.values()
                    if a.symbol == symbol and a.status == "NEW"]
        return [o for o in self.emu.book.orders.values() if o.symbol == symbol
                and o.conditional and o.status in ("New", "Untriggered")]


def _rig(emu: Any, ex: CcxtExchange, tmp_path: Path) -> Rig:
    ex.load_markets()
    store = StateStore(tmp_path / "lifecycle.sqlite3")
    log = RecordingLog()
    executor = Executor(ex, store, log)
    watch = RiskWatch(ex, store, executor, RiskLimits(), log)
    emu.clear_requests()
    return Rig(emu, ex, store, executor, watch, log)


@pytest.fixture
def binance(tmp_path: Path) -> Iterator[Rig]:
    with BinanceEmulator(KEY, SECRET) as emu:
        ex = CcxtExchange("binance", "demo", api_key=SecretStr(KEY),
                          api_secret=SecretStr(SECRET), tokens=["BTC", *PERPS],
                          perp_tokens=PERPS, max_leverage=3, retry=FAST, rate_limit_ms=1,
                          timeout_ms=2000, session_hook=lambda e: route_to(e, emu))
        rig = _rig(emu, ex, tmp_path)
        yield rig
        rig.store.close()
        ex.close()


@pytest.fixture
def bybit(tmp_path: Path) -> Iterator[Rig]:
    with BybitEmulator(KEY, SECRET) as emu:
        ex = CcxtExchange("bybit", "demo", api_key=SecretStr(KEY),
                          api_secret=SecretStr(SECRET), tokens=["BTC", "SOL"],
                          perp_tokens=["SOL"], max_leverage=3, retry=FAST, rate_limit_ms=1,
                          timeout_ms=2000,
                          session_hook=lambda e: route_to(e, emu, hosts=BYBIT_HOSTS))
        rig = _rig(emu, ex, tmp_path)
        yield rig
        rig.store.close()
        ex.close()


def long_open(cid: str, token: str, amount: str) -> OrderIntent:
    return OrderIntent(cid, token, MarketKind.PERP, Side.BUY, Decimal(amount),
                       leverage=Decimal(2), reason="test leg")


def open_protected(rig: Rig, token: str, amount: str, cid: str) -> None:
    report = ExecutionReport()
    assert rig.executor.submit(long_open(cid, token, amount), "d1", report) is not None
    rig.executor.protect({token}, {token: 0.08}, 0.08, f"salt-{cid}", report)
    assert report.stops_placed == 1


# -- 4. an unconfirmed stop never replaces a confirmed one ---------------------------------

def test_a_stop_acknowledged_then_rejected_leaves_the_old_stop_in_force(bybit: Rig) -> None:
    """Bybit acknowledges a create with ids only and may reject it afterwards. The new,
    larger stop's answer cannot be confirmed (its read-back fails, then shows it
    rejected): the position must keep the stop it had, not end with none."""
    open_protected(bybit, "SOL", "2", "sb-open-1")
    (old,) = bybit.live_stops("SOLUSDT")
    report = ExecutionReport()
    assert bybit.executor.submit(long_open("sb-open-2", "SOL", "1"), "d2", report) is not None
    bybit.emu.inject_ack_then_reject(when=lambda p: p.get("orderFilter") == "StopOrder"
                                     or bool(p.get("triggerPrice")))
    rejected = lambda p: any(o.status == "Rejected"  # noqa: E731 - after the create only
                             for o in bybit.emu.book.orders.values())
    bybit.emu.inject_status(503, times=4, path="/v5/order/realtime").when = rejected
    bybit.executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "salt-2", report)

    assert [o.order_id for o in bybit.live_stops("SOLUSDT")] == [old.order_id], \
        "the confirmed stop was cancelled for one that never went live"
    assert report.stops_placed == 0
    assert [e["token"] for e in bybit.log.named("stoploss.unconfirmed")] == ["SOL"]


# -- 5. each leg is protected before the next one is sent ----------------------------------

def test_a_failing_second_leg_does_not_leave_the_first_unprotected(binance: Rig) -> None:
    """Two perp opens; the second one's pre-send price read fails for good (the adapter
    raises after its retries). The first leg, already filled, must carry its stop."""
    binance.emu.inject_status(503, times=None, path="/fapi/v1/ticker/24hr",
                              method="GET").when = lambda p: p.get("symbol") == "SOLUSDT"
    plan = Plan((long_open("sb-leg-arb", "ARB", "200"), long_open("sb-leg-sol", "SOL", "2")),
                (), {"ARB": 0.08, "SOL": 0.08})
    binance.executor.execute(plan, "d-two-legs", 0.08)

    assert binance.emu.book.positions["ARBUSDT"].qty == Decimal(200)
    (stop,) = binance.live_stops("ARBUSDT")
    assert stop.qty == Decimal(200) and stop.side == "SELL"
    assert "SOLUSDT" not in binance.emu.book.positions
    (row,) = [o for o in binance.store.orders() if o.client_id == "sb-leg-sol"]
    assert row.status == OrderStatus.UNKNOWN.value  # settled by the next reconciliation


def test_each_leg_gets_its_stop_before_the_next_leg_is_sent(binance: Rig) -> None:
    plan = Plan((long_open("sb-leg-arb", "ARB", "200"), long_open("sb-leg-sol", "SOL", "2")),
                (), {"ARB": 0.08, "SOL": 0.08})
    binance.executor.execute(plan, "d-order", 0.08)
    writes = [(r.path, r.params.get("symbol")) for r in binance.emu.requests
              if r.method == "POST" and r.path in ("/fapi/v1/order", "/fapi/v1/algoOrder")]
    assert writes == [("/fapi/v1/order", "ARBUSDT"), ("/fapi/v1/algoOrder", "ARBUSDT"),
                      ("/fapi/v1/order", "SOLUSDT"), ("/fapi/v1/algoOrder", "SOLUSDT")]


# -- 6. guarded risk steps, failure counting -----------------------------------------------

def test_a_failing_funding_read_does_not_stop_the_watchdog(binance: Rig) -> None:
    """The stop vanished and the venue's funding endpoints fail: the watchdog still puts a
    stop back, and the run reports the failed step instead of raising."""
    open_protected(binance, "SOL", "2", "sb-open-f")
    (stop,) = binance.ex.fetch_open_orders(trigger=True)
    binance.ex.cancel_order(stop)
    for path in ("/fapi/v1/premiumIndex", "/fapi/v1/fundingInfo"):
        binance.emu.inject_status(503, times=None, path=path)
    failed = binance.watch.run(read_portfolio(binance.ex, ["BTC", *PERPS]), "rw-funding-down")

    assert failed == ["funding_exit"]
    (live,) = binance.live_stops("SOLUSDT")
    assert live.qty == Decimal(2)
    assert [e["step"] for e in binance.log.named("risk.step_failed")] == ["funding_exit"]


def test_a_stop_the_venue_keeps_refusing_ends_with_the_position_closed(binance: Rig) -> None:
    open_protected(binance, "SOL", "2", "sb-open-r")
    (stop,) = binance.ex.fetch_open_orders(trigger=True)
    binance.ex.cancel_order(stop)
    binance.emu.inject_error(-2021, "Order would immediately trigger.",
                             path="/fapi/v1/algoOrder", method="POST", times=99)
    portfolio = read_portfolio(binance.ex, ["BTC", *PERPS])
    for tick in range(3):
        binance.watch.run(portfolio, f"rw-refused-{tick}")
        assert binance.emu.book.positions["SOLUSDT"].qty == Decimal(2)
    binance.watch.run(portfolio, "rw-refused-3")
    assert "SOLUSDT" not in binance.emu.book.positions
    (gave_up,) = binance.log.named("stoploss.unplaceable")
    assert gave_up["token"] == "SOL" and gave_up["attempts"] == 3


# -- 7. funding exit keeps the stop until the close is confirmed ---------------------------

def test_a_funding_exit_whose_close_is_refused_keeps_the_stop(binance: Rig) -> None:
    open_protected(binance, "SOL", "2", "sb-open-x")
    (stop,) = binance.live_stops("SOLUSDT")
    binance.emu.book.instruments["SOLUSDT"].funding_rate = Decimal("0.0005")  # ~110% APR
    binance.emu.inject_error(-2022, "ReduceOnly Order is rejected.",
                             path="/fapi/v1/order", method="POST", times=99)
    binance.watch.run(read_portfolio(binance.ex, ["BTC", *PERPS]), "rw-fx")

    assert [e["token"] for e in binance.log.named("funding.exit")] == ["SOL"]
    assert binance.emu.book.positions["SOLUSDT"].qty == Decimal(2), "the close was refused"
    assert binance.live_stops("SOLUSDT") == [stop], "its stop must stay"
    assert binance.emu.count("DELETE", "/fapi/v1/algoOrder") == 0, \
        "the stop was cancelled (and only put back later) while the position stayed open"


# -- 8. fees -------------------------------------------------------------------------------

def test_an_order_recovered_after_503_is_journalled_with_its_fee(binance: Rig) -> None:
    binance.emu.inject_accept_then_fail("/fapi/v1/order")
    result = binance.executor.submit(long_open("sb-fee-1", "SOL", "2"), "d-fee",
                                     ExecutionReport())
    assert result is not None and result.status is OrderStatus.FILLED
    (trade,) = [t for t in binance.emu.book.trades if t.symbol == "SOLUSDT"]
    assert trade.commission > 0
    (row,) = [o for o in binance.store.orders() if o.client_id == "sb-fee-1"]
    assert row.fee == trade.commission
    (fill,) = [f for f in binance.store.fills() if f.client_id == "sb-fee-1"]
    assert fill.fee == trade.commission


def test_each_part_fill_books_only_its_own_part_of_the_fee(tmp_path: Path) -> None:
    """Venues report the order's cumulative fee (and average price); a fill row must hold
    what that part cost, so the fills add up to the order."""
    store = StateStore(tmp_path / "fees.sqlite3")
    intent = OrderIntent("sb-parts", "SOL", MarketKind.SPOT, Side.BUY, Decimal(10))
    assert store.journal_intent(intent, "d1")

    def answer(filled: str, average: str, fee: str, status: OrderStatus) -> OrderResult:
        return OrderResult("sb-parts", "42", "SOL", MarketKind.SPOT, Side.BUY,
                           OrderType.MARKET, status, Decimal(10), Decimal(filled),
                           Decimal(average), Decimal(fee))

    store.journal_result(answer("4", "100", "0.4", OrderStatus.PARTIALLY_FILLED))
    store.journal_result(answer("10", "101.2", "1.012", OrderStatus.FILLED))
    fills = store.fills()
    assert [(f.amount, f.price, f.fee) for f in fills] == [
        (Decimal(4), Decimal(100), Decimal("0.4")), (Decimal(6), Decimal(102), Decimal("0.612"))]
    assert sum(f.fee for f in fills) == Decimal("1.012")
    store.close()


# -- issue #11, case 3: money moved by the user is not a loss ------------------------------

def test_a_transfer_out_of_the_futures_wallet_does_not_trip_the_kill_switch(
        binance: Rig) -> None:
    """A 42 % cut of the account (USDT moved out of the USD-M wallet by the user) read as a
    42 % drawdown and tripped the kill switch. It is a withdrawal: the high-water mark moves
    with it, and a real loss afterwards is still measured from there."""
    portfolio = lambda: read_portfolio(binance.ex, ["BTC", *PERPS])  # noqa: E731
    binance.watch.run(portfolio(), "rw-before")
    before = portfolio().equity()
    binance.emu.book.wallet -= before * Decimal("0.42")  # the user's transfer out
    binance.watch.run(portfolio(), "rw-after")
    assert binance.store.active_kill_switch() is None
    (flow,) = binance.log.named("equity.external_flow")
    assert flow["kind"] == "withdrawal"
    assert Decimal(flow["amount"]) == -(before * Decimal("0.42")).quantize(Decimal("0.01"))
    assert Decimal(binance.store.get("risk.high_water")) == portfolio().equity()
