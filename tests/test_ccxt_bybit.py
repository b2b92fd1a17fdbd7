"""``CcxtExchange("bybit", ...)`` against the Bybit v5 emulator: unmodified ccxt, real HTTP.

The emulator (``tests/exchange_emulator/bybit_*``) verifies v5 signatures, keeps a unified
account (one wallet for spot and USDT perps) and answers with Bybit's retCodes, so ccxt maps
refusals to the same exception classes as against the live venue. ``route_to`` keeps the
real host names (``api-demo.bybit.com``, ``api-testnet.bybit.com``) and moves the bytes to
127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from pydantic import SecretStr

from bot.domain.models import MarketKind, OrderIntent, OrderStatus, OrderType, Side
from bot.exchange.ccxt_exchange import CcxtExchange, CredentialsRejected, RetryPolicy
from bot.exchange.port import ExchangeError, ExchangePort, OrderRejected, OutcomeUnknown
from tests.exchange_emulator.bybit_models import now_ms
from tests.exchange_emulator.bybit_server import BYBIT_HOSTS, BybitEmulator
from tests.exchange_emulator.transport import route_to

KEY, SECRET = "bybit-emu-key-0123", "bybit-emu-secret-s3cr3t-4567"
SPOT_TOKENS = ("BTC", "ETH", "SOL", "LINK", "ARB", "NOPE")  # ARB: perp only; NOPE: nowhere
PERP_TOKENS = ("SOL", "ARB", "BTC", "ETH2")
FAST = RetryPolicy(read_attempts=3, base_delay=0.01, max_delay=0.05, rate_limit_delay=0.05,
                   max_rate_limit_wait=5.0, lookup_attempts=2, lookup_delay=0.01)
SPOT, PERP = MarketKind.SPOT, MarketKind.PERP
CREATE, REALTIME, HISTORY = "/v5/order/create", "/v5/order/realtime", "/v5/order/history"


def make(emu: BybitEmulator, mode: str = "demo", **overrides: Any) -> CcxtExchange:
    settings: dict[str, Any] = {
        "api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET), "tokens": SPOT_TOKENS,
        "perp_tokens": PERP_TOKENS, "max_leverage": 5, "retry": FAST, "rate_limit_ms": 1,
        "timeout_ms": 2000,
        "session_hook": lambda exchange: route_to(exchange, emu, hosts=BYBIT_HOSTS),
    }
    settings.update(overrides)
    return CcxtExchange("bybit", mode, **settings)


@pytest.fixture
def emu() -> Iterator[BybitEmulator]:
    with BybitEmulator(KEY, SECRET) as emulator:
        yield emulator


@pytest.fixture
def adapter(emu: BybitEmulator) -> Iterator[CcxtExchange]:
    exchange = make(emu)
    exchange.load_markets()
    emu.clear_requests()
    yield exchange
    exchange.close()


def order(cid: str, token: str, kind: MarketKind, side: Side, amount: str,
          **extra: Any) -> OrderIntent:
    return OrderIntent(cid, token, kind, side, Decimal(amount), **extra)


def stop(cid: str, token: str, side: Side, amount: str, trigger: str) -> OrderIntent:
    return order(cid, token, PERP, side, amount, order_type=OrderType.STOP_MARKET,
                 trigger_price=Decimal(trigger), reduce_only=True)


def ret_codes(emu: BybitEmulator, method: str, path: str, **params: str) -> list[int | None]:
    return [r.ret_code for r in emu.requests_for(method, path, **params)]


# -- markets and environments --------------------------------------------------------------

def test_demo_loads_spot_and_linear_only_and_maps_the_tokens(emu: BybitEmulator) -> None:
    exchange = make(emu)
    port: ExchangePort = exchange  # every port method with its signature (checked by mypy)
    markets = port.load_markets()
    assert {r.host for r in emu.requests} == {"api-demo.bybit.com"}
    categories = sorted(r.params.get("category", "") for r in emu.requests
                        if r.path == "/v5/market/instruments-info")
    assert categories == ["linear", "linear", "spot"]  # Trading + PreLaunch linear lists
    assert not any(r.api_key for r in emu.requests)  # no private call to load markets
    assert exchange.symbols(SPOT) == ["BTC/USDT", "ETH/USDT", "LINK/USDT", "SOL/USDT"]
    assert exchange.symbols(PERP) == ["ARB/USDT:USDT", "BTC/USDT:USDT", "SOL/USDT:USDT"]
    assert exchange.dropped == {("ARB", SPOT): "ARB/USDT is not listed",
                                ("NOPE", SPOT): "NOPE/USDT is not listed",
                                ("ETH2", PERP): "ETH2/USDT:USDT is not listed"}
    sol = markets[("SOL", PERP)]
    assert (sol.amount_step, sol.min_amount, sol.price_step, sol.min_notional) == (
        Decimal("0.1"), Decimal("0.1"), Decimal("0.01"), Decimal(5))
    assert sol.max_leverage == 5 and sol.contract_size == 1
    btc = markets[("BTC", SPOT)]
    assert (btc.amount_step, btc.min_amount, btc.min_notional) == (
        Decimal("0.000001"), Decimal("0.000048"), Decimal(5))
    assert markets[("SOL", SPOT)].max_leverage is None


def test_testnet_uses_the_testnet_host_without_account_detection_calls(
        emu: BybitEmulator) -> None:
    exchange = make(emu, mode="testnet")
    exchange.load_markets()
    exchange.place_order(order("tn-1", "SOL", PERP, Side.BUY, "1"))
    exchange.fetch_balances()
    assert {r.host for r in emu.requests} == {"api-testnet.bybit.com"}
    paths = {r.path for r in emu.requests}
    assert not paths & {"/v5/asset/coin/query-info", "/v5/user/query-api", "/v5/account/info"}
    assert emu.count("POST", CREATE, orderLinkId="tn-1") == 1


def test_a_demo_key_on_testnet_is_a_credentials_error_and_not_retried() -> None:
    hosts = {"api-demo.bybit.com": KEY, "api-testnet.bybit.com": "a-testnet-only-key"}
    with BybitEmulator(KEY, SECRET, host_keys=hosts) as emu:
        assert make(emu, mode="demo").fetch_balances().total["USDT"] == 10000
        emu.clear_requests()
        with pytest.raises(CredentialsRejected, match="10003") as caught:
            make(emu, mode="testnet").fetch_balances()
        assert emu.count("GET", "/v5/account/wallet-balance") == 1
        assert SECRET not in str(caught.value)


def test_a_wrong_secret_fails_the_signature_check(emu: BybitEmulator) -> None:
    with pytest.raises(CredentialsRejected, match="10004"):
        make(emu, api_secret=SecretStr("not-the-secret-at-all")).fetch_balances()


def test_a_skewed_local_clock_is_compensated(emu: BybitEmulator) -> None:
    emu.book.clock = lambda: now_ms() + 20_000  # the venue runs 20 s ahead of us
    exchange = make(emu)
    exchange.load_markets()
    assert exchange.fetch_balances().total["USDT"] == 10000
    assert ret_codes(emu, "GET", "/v5/account/wallet-balance") == [0]


def test_funding_is_hourly_from_each_markets_funding_interval(adapter: CcxtExchange,
                                                              emu: BybitEmulator) -> None:
    for symbol, rate in (("SOLUSDT", "0.0004"), ("ARBUSDT", "0.0002"), ("BTCUSDT", "0.0008")):
        emu.book.instruments[symbol].funding_rate = Decimal(rate)
    rates = adapter.fetch_funding_rates(["SOL", "ARB", "BTC", "ETH"])
    assert {t: r.interval_hours for t, r in rates.items()} == {"SOL": 4, "ARB": 1, "BTC": 8}
    assert rates["SOL"].hourly_rate == pytest.approx(0.0001)
    assert rates["ARB"].hourly_rate == pytest.approx(0.0002)
    assert rates["BTC"].hourly_rate == pytest.approx(0.0001)
    settle = rates["SOL"].next_settlement
    assert settle is not None and settle.hour % 4 == 0 and settle.minute == 0
    assert adapter.funding_unknown == set()
    assert ret_codes(emu, "GET", "/v5/market/tickers", category="linear") == [0]


# -- the perp life cycle -------------------------------------------------------------------

def test_3x_long_with_a_conditional_stop_is_closed_when_the_price_crosses_it(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    adapter.set_margin_mode("SOL", "isolated")
    adapter.set_leverage("SOL", Decimal(3))
    entry = adapter.place_order(order("sb-en-1", "SOL", PERP, Side.BUY, "20",
                                      leverage=Decimal(3)))
    assert (entry.status, entry.filled, entry.average_price, entry.side) == (
        OrderStatus.FILLED, Decimal(20), Decimal(150), Side.BUY)
    assert entry.fee == Decimal("1.65")  # 3000 USDT * 5.5 bps, from cumFeeDetail
    guard = adapter.place_order(stop("sb-st-1", "SOL", Side.SELL, "20", "138"))
    assert (guard.order_type, guard.status, guard.side, guard.trigger_price) == (
        OrderType.STOP_MARKET, OrderStatus.OPEN, Side.SELL, Decimal(138))
    assert guard.reduce_only and guard.client_id == "sb-st-1"

    [sent] = emu.requests_for("POST", CREATE, orderLinkId="sb-st-1")
    assert sent.params | {"category": "linear", "side": "Sell", "orderType": "Market",
                          "qty": "20", "triggerPrice": "138", "triggerDirection": "2",
                          "triggerBy": "MarkPrice", "reduceOnly": "true"} == sent.params
    assert emu.requests_for("POST", "/v5/account/set-margin-mode")[0].params == {
        "setMarginMode": "ISOLATED_MARGIN"}
    assert emu.book.margin_mode == "ISOLATED_MARGIN" and emu.book.leverage["SOLUSDT"] == 3

    [position] = adapter.fetch_positions()
    assert (position.token, position.amount, position.entry_price, position.leverage) == (
        "SOL", Decimal(20), Decimal(150), Decimal(3))
    assert position.stop_price == Decimal(138)
    assert position.liquidation_price is not None and position.liquidation_price < 138
    assert [o.client_id for o in adapter.fetch_open_orders(trigger=True)] == ["sb-st-1"]
    assert adapter.fetch_open_orders() == []

    emu.set_price("SOL", "137.5")
    assert adapter.fetch_positions() == []
    assert adapter.fetch_open_orders(trigger=True) == []
    fired = adapter.fetch_order_by_client_id("sb-st-1", "SOL", PERP, trigger=True)
    assert fired is not None
    assert (fired.status, fired.filled, fired.average_price, fired.exchange_id) == (
        OrderStatus.TRIGGERED, Decimal(20), Decimal("137.5"), guard.exchange_id)
    assert adapter.fetch_order_by_client_id("sb-st-1", "SOL", PERP) is None  # a stop's id
    # fees 1.65 + 20 * 137.5 * 0.00055, loss 20 * 12.5
    assert adapter.fetch_balances().total["USDT"] == Decimal("9746.8375")


def test_a_shorts_stop_triggers_on_a_rising_price(adapter: CcxtExchange,
                                                  emu: BybitEmulator) -> None:
    adapter.place_order(order("sh-1", "SOL", PERP, Side.SELL, "5"))
    guard = adapter.place_order(stop("sh-st", "SOL", Side.BUY, "5", "160"))
    assert guard.status is OrderStatus.OPEN and guard.side is Side.BUY
    assert emu.requests_for("POST", CREATE, orderLinkId="sh-st")[0].params[
        "triggerDirection"] == "1"
    [position] = adapter.fetch_positions()
    assert (position.amount, position.stop_price) == (Decimal(-5), Decimal(160))
    emu.set_price("SOL", "161")
    assert adapter.fetch_positions() == []


def test_positions_of_several_perps_come_from_one_request(adapter: CcxtExchange,
                                                          emu: BybitEmulator) -> None:
    adapter.place_order(order("p-sol", "SOL", PERP, Side.BUY, "2"))
    adapter.place_order(order("p-arb", "ARB", PERP, Side.SELL, "100"))
    adapter.place_order(order("p-btc", "BTC", PERP, Side.BUY, "0.01"))
    emu.clear_requests()
    positions = adapter.fetch_positions()
    assert [(p.token, p.amount) for p in positions] == [
        ("ARB", Decimal(-100)), ("BTC", Decimal("0.01")), ("SOL", Decimal(2))]
    assert [r.params for r in emu.requests_for("GET", "/v5/position/list")] == [
        {"settleCoin": "USDT", "limit": "200", "category": "linear"}]


def test_leverage_already_set_is_success_and_fractional_leverage_is_sent(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    adapter.set_leverage("SOL", Decimal(3))
    adapter.set_leverage("SOL", Decimal(3))  # 110043 "Set leverage not modified"
    adapter.set_margin_mode("SOL", "isolated")
    adapter.set_margin_mode("ARB", "isolated")  # account-wide on a unified account
    assert ret_codes(emu, "POST", "/v5/position/set-leverage") == [0, 110043]
    adapter.set_leverage("ARB", Decimal("2.5"))
    assert emu.book.leverage == {"BTCUSDT": 10, "ETHUSDT": 10, "SOLUSDT": 3, "LINKUSDT": 10,
                                 "ARBUSDT": Decimal("2.5")}
    with pytest.raises(OrderRejected, match="leverage 6"):
        adapter.set_leverage("SOL", Decimal(6))
    assert emu.count("POST", "/v5/position/set-leverage") == 3


def test_cancelling_a_stop_is_seen_by_the_lookup(adapter: CcxtExchange,
                                                 emu: BybitEmulator) -> None:
    adapter.place_order(order("c-en", "SOL", PERP, Side.BUY, "1"))
    guard = adapter.place_order(stop("c-st", "SOL", Side.SELL, "1", "140"))
    adapter.cancel_order(guard)
    assert emu.count("POST", "/v5/order/cancel", orderId=guard.exchange_id) == 1
    # v5 cancels a conditional order by id; ccxt would forward a "trigger" flag verbatim
    assert all("trigger" not in r.params for r in emu.requests_for("POST", "/v5/order/cancel"))
    assert adapter.fetch_open_orders(trigger=True) == []
    [position] = adapter.fetch_positions()
    assert position.stop_price is None
    found = adapter.fetch_order_by_client_id("c-st", "SOL", PERP, trigger=True)
    assert found is not None and found.status is OrderStatus.CANCELED
    with pytest.raises(OrderRejected, match="unknown or not open"):
        adapter.cancel_order(guard)


def test_open_orders_keep_stops_and_plain_orders_apart(adapter: CcxtExchange,
                                                       emu: BybitEmulator) -> None:
    adapter.place_order(order("o-en", "SOL", PERP, Side.BUY, "1"))
    adapter.place_order(stop("o-st", "SOL", Side.SELL, "1", "120"))
    adapter.place_order(order("o-lim", "ETH", SPOT, Side.BUY, "0.1",
                              order_type=OrderType.LIMIT, price=Decimal("2500")))
    adapter.place_order(order("o-plim", "BTC", PERP, Side.BUY, "0.001",
                              order_type=OrderType.LIMIT, price=Decimal("50000")))
    emu.clear_requests()
    assert sorted(o.client_id for o in adapter.fetch_open_orders()) == ["o-lim", "o-plim"]
    assert [o.client_id for o in adapter.fetch_open_orders(trigger=True)] == ["o-st"]
    assert emu.count("GET", REALTIME) == 3  # spot + linear plain, linear stops


def test_open_orders_follow_the_cursor_past_one_page(adapter: CcxtExchange,
                                                     emu: BybitEmulator) -> None:
    for n in range(55):
        emu.book.create_order({"category": "spot", "symbol": "SOLUSDT", "side": "Buy",
                               "orderType": "Limit", "qty": "0.1", "price": "100",
                               "orderLinkId": f"rest-{n}"})
    assert len(adapter.fetch_open_orders()) == 55
    assert emu.count("GET", REALTIME, category="spot") == 2


# -- spot and the unified wallet -------------------------------------------------------------

def test_spot_rebalance_across_several_symbols(adapter: CcxtExchange,
                                               emu: BybitEmulator) -> None:
    prices = adapter.fetch_prices(SPOT_TOKENS, SPOT)
    assert prices == {"BTC": 60000, "ETH": 3000, "SOL": 150, "LINK": 15}
    buys = {"BTC": "0.01", "ETH": "0.2", "SOL": "4", "LINK": "40"}
    for token, amount in buys.items():
        result = adapter.place_order(order(f"rb-{token}", token, SPOT, Side.BUY, amount))
        assert (result.status, result.filled, result.side) == (
            OrderStatus.FILLED, Decimal(amount), Side.BUY)
        assert result.fee == Decimal(amount) * Decimal("0.001") * prices[token]  # paid in coin
        [sent] = emu.requests_for("POST", CREATE, orderLinkId=f"rb-{token}")
        assert (sent.params["marketUnit"], sent.params["qty"]) == ("baseCoin", amount)
    sold = adapter.place_order(order("rb-SOL-out", "SOL", SPOT, Side.SELL, "1.5"))
    assert sold.fee == Decimal("0.225")  # 225 USDT * 0.1 %, paid in USDT
    balances = adapter.fetch_balances()
    assert balances.total["SOL"] == Decimal("4") * Decimal("0.999") - Decimal("1.5")
    assert balances.total["LINK"] == Decimal("39.96")
    spent = sum(Decimal(a) * prices[t] for t, a in buys.items()) - Decimal(225) * Decimal("0.999")
    assert balances.total["USDT"] == Decimal(10000) - spent
    assert balances.spot_quote_free == balances.free["USDT"] == balances.total["USDT"]


def test_wallet_balances_are_read_from_the_unified_account() -> None:
    with BybitEmulator(KEY, SECRET, balances={"USDT": "10000", "BTC": "0.5"}) as emu:
        exchange = make(emu)
        exchange.set_leverage("SOL", Decimal(3))
        exchange.place_order(order("w-1", "SOL", PERP, Side.BUY, "20"))  # margin 1000
        emu.set_price("SOL", "160")  # +200 unrealised: not part of the wallet
        emu.clear_requests()
        wallets = exchange.fetch_wallet_balances()
        assert list(wallets) == [SPOT]  # one wallet even with perps configured
        total = Decimal(10000) - Decimal("1.65")
        assert wallets[SPOT].total == {"USDT": total, "BTC": Decimal("0.5")}
        assert wallets[SPOT].free == {"USDT": total - 1000, "BTC": Decimal("0.5")}
        assert [r.params for r in emu.requests] == [{"accountType": "UNIFIED"}]


# -- refused before sending ---------------------------------------------------------------

def test_orders_under_the_minimums_are_refused_without_any_order_request(
        emu: BybitEmulator) -> None:
    emu.book.instruments["BTCUSDT"].perp_min_notional = Decimal(100)
    exchange = make(emu)
    with pytest.raises(OrderRejected, match="notional"):
        exchange.place_order(order("tiny-1", "BTC", PERP, Side.BUY, "0.001"))  # 60 < 100
    with pytest.raises(OrderRejected, match="notional"):
        exchange.place_order(order("tiny-2", "SOL", SPOT, Side.BUY, "0.02"))  # 3 < 5 USDT
    with pytest.raises(OrderRejected, match="minimum"):
        exchange.place_order(order("tiny-3", "ETH", SPOT, Side.BUY, "0.0005"))  # < 0.00062
    with pytest.raises(OrderRejected, match="precision"):
        exchange.place_order(order("tiny-4", "SOL", PERP, Side.BUY, "0.05"))  # < step 0.1
    assert emu.requests_for("POST") == []
    assert emu.book.orders == {}


# -- unknown outcomes, duplicates, refusals, rate limits -----------------------------------

def test_accepted_then_503_leaves_exactly_one_order(adapter: CcxtExchange,
                                                    emu: BybitEmulator) -> None:
    emu.inject_accept_then_fail(CREATE)
    result = adapter.place_order(order("once-1", "SOL", PERP, Side.BUY, "2"))
    assert (result.client_id, result.status, result.filled) == (
        "once-1", OrderStatus.FILLED, Decimal(2))
    assert [r.status for r in emu.requests_for("POST", CREATE)] == [503]
    assert [o.link_id for o in emu.book.orders.values()] == ["once-1"]
    assert emu.book.positions["SOLUSDT"].qty == 2
    assert emu.count("GET", REALTIME, orderLinkId="once-1", openOnly="1") == 1


def test_a_filled_order_is_read_back_while_order_history_still_lags(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    emu.book.history_lag_ms = 60_000  # "the data returned from this endpoint may delay"
    result = adapter.place_order(order("lag-1", "SOL", PERP, Side.BUY, "2"))
    assert (result.status, result.filled, result.average_price) == (
        OrderStatus.FILLED, Decimal(2), Decimal(150))
    assert emu.count("GET", HISTORY) == 0


def test_accepted_then_502_on_a_stop_finds_it_among_conditional_orders(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    adapter.place_order(order("e", "SOL", PERP, Side.BUY, "2"))
    emu.inject_accept_then_fail(CREATE, status=502)
    guard = adapter.place_order(stop("st-once", "SOL", Side.SELL, "2", "140"))
    assert (guard.status, guard.order_type, guard.trigger_price) == (
        OrderStatus.OPEN, OrderType.STOP_MARKET, Decimal(140))
    assert emu.count("POST", CREATE, orderLinkId="st-once") == 1
    assert emu.count("GET", REALTIME, orderLinkId="st-once", orderFilter="StopOrder") == 1


def test_an_accepted_order_that_cannot_be_read_back_is_returned_unknown(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    adapter.place_order(order("e", "SOL", PERP, Side.BUY, "2"))
    emu.inject_status(503, times=None, path=REALTIME)
    guard = adapter.place_order(stop("st-blind", "SOL", Side.SELL, "2", "140"))
    assert (guard.status, guard.side, guard.order_type, guard.trigger_price) == (
        OrderStatus.UNKNOWN, Side.SELL, OrderType.STOP_MARKET, Decimal(140))
    assert guard.exchange_id == next(o.order_id for o in emu.book.orders.values()
                                     if o.link_id == "st-blind")
    assert emu.count("POST", CREATE, orderLinkId="st-blind") == 1


def test_an_internal_error_after_the_order_was_placed_is_looked_up_not_refused(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    emu.inject_error(10016, "Internal error.", path=CREATE, after_processing=True)
    result = adapter.place_order(order("ie-1", "SOL", PERP, Side.BUY, "2"))
    assert (result.status, result.filled) == (OrderStatus.FILLED, Decimal(2))
    assert ret_codes(emu, "POST", CREATE) == [10016]
    assert [o.link_id for o in emu.book.orders.values()] == ["ie-1"]


def test_a_server_timeout_with_no_order_is_outcome_unknown_and_not_resent(
        adapter: CcxtExchange, emu: BybitEmulator) -> None:
    emu.inject_error(10000, "Server Timeout", path=CREATE)
    with pytest.raises(OutcomeUnknown, match="not found by client id"):
        adapter.place_order(order("to-1", "SOL", PERP, Side.BUY, "2"))
    assert ret_codes(emu, "POST", CREATE) == [10000]
    assert emu.count("GET", HISTORY, orderLinkId="to-1") == FAST.lookup_attempts
    assert emu.book.orders == {}


@pytest.mark.parametrize(("kind", "token", "amount", "code"), [
    (PERP, "SOL", "1", 110072),
    (SPOT, "SOL", "1", 170141),
])
def test_a_duplicate_client_id_returns_the_existing_order(
        adapter: CcxtExchange, emu: BybitEmulator, kind: MarketKind, token: str, amount: str,
        code: int) -> None:
    first = adapter.place_order(order("dup-1", token, kind, Side.BUY, amount))
    again = adapter.place_order(order("dup-1", token, kind, Side.BUY, amount))
    assert again.exchange_id == first.exchange_id and again.status is OrderStatus.FILLED
    assert ret_codes(emu, "POST", CREATE) == [0, code]
    assert len(emu.book.orders) == 1


@pytest.mark.parametrize(("kind", "token", "side", "amount", "extra", "match"), [
    (PERP, "SOL", Side.BUY, "1000", {}, "InsufficientFunds.*110007"),
    (PERP, "ARB", Side.SELL, "10", {"reduce_only": True}, "InvalidOrder.*110017"),
    (SPOT, "BTC", Side.BUY, "1", {}, "InsufficientFunds.*170131"),
])
def test_venue_refusals_are_order_rejected_and_never_retried(
        adapter: CcxtExchange, emu: BybitEmulator, kind: MarketKind, token: str, side: Side,
        amount: str, extra: dict[str, Any], match: str) -> None:
    adapter.set_leverage("SOL", Decimal(1))
    emu.clear_requests()
    with pytest.raises(OrderRejected, match=match):
        adapter.place_order(order("no-1", token, kind, side, amount, **extra))
    assert len(emu.requests_for("POST")) == 1
    assert emu.requests_for("GET", REALTIME) == emu.requests_for("GET", HISTORY) == []


def test_a_10006_rate_limit_waits_for_bybits_reset_timestamp(adapter: CcxtExchange,
                                                             emu: BybitEmulator) -> None:
    emu.inject_rate_limit(reset_ms=800, path=CREATE)
    result = adapter.place_order(order("burst-1", "SOL", PERP, Side.BUY, "1"))
    assert result.status is OrderStatus.FILLED
    sends = emu.requests_for("POST", CREATE, orderLinkId="burst-1")
    assert [r.ret_code for r in sends] == [10006, 0]
    # FAST.rate_limit_delay is 0.05 s: the pause came from X-Bapi-Limit-Reset-Timestamp
    later = [r for r in emu.requests if r.at > sends[0].at]
    assert later[0].at - sends[0].at >= 0.7
    assert len(emu.book.orders) == 1


def test_an_ip_rate_limit_403_on_a_read_is_retried(adapter: CcxtExchange,
                                                   emu: BybitEmulator) -> None:
    emu.inject_ip_limit(path="/v5/market/tickers")
    assert adapter.fetch_prices(["SOL"], SPOT) == {"SOL": Decimal(150)}
    assert [r.status for r in emu.requests_for("GET", "/v5/market/tickers")] == [403, 200]


def test_secrets_never_appear_in_error_messages(emu: BybitEmulator) -> None:
    exchange = make(emu, api_key=KEY, api_secret=SECRET)
    emu.inject_error(170131, f"echoing {KEY} and {SECRET}", path=CREATE)
    with pytest.raises(OrderRejected) as caught:
        exchange.place_order(order("leak-1", "SOL", SPOT, Side.BUY, "1"))
    text = f"{caught.value!s} {caught.value!r}"
    assert KEY not in text and SECRET not in text and "**********" in text
    emu.inject_status(500, times=None, path="/v5/market/time")
    with pytest.raises(ExchangeError) as unavailable:
        exchange.now()
    assert SECRET not in str(unavailable.value)


# -- the emulator with ccxt's defaults (endpoints the adapter does not call) ------------------

def test_plain_ccxt_reads_klines_funding_history_trades_and_detects_the_unified_account(
        emu: BybitEmulator) -> None:
    exchange = route_to(ccxt.bybit({"apiKey": KEY, "secret": SECRET,
                                    "options": {"fetchMarkets": {"types": ["linear"]}}}),
                        emu, hosts=BYBIT_HOSTS)
    exchange.set_sandbox_mode(True)
    exchange.load_markets()  # asset/coin/query-info first: ccxt's default on testnet
    assert exchange.currencies["SOL"]["id"] == "SOL"
    candles = exchange.fetch_ohlcv("SOL/USDT:USDT", "1h", limit=3)
    assert [c[4] for c in candles] == [150, 150, 150]
    assert candles[1][0] - candles[0][0] == 3_600_000
    emu.settle_funding("SOL")
    [paid] = exchange.fetch_funding_rate_history("SOL/USDT:USDT")
    assert (paid["fundingRate"], paid["symbol"]) == (0.0001, "SOL/USDT:USDT")
    exchange.create_order("SOL/USDT:USDT", "market", "buy", 2, None, {"clientOrderId": "pl-1"})
    [trade] = exchange.fetch_my_trades("SOL/USDT:USDT")
    assert (trade["amount"], trade["price"], trade["fee"]["cost"]) == (2, 150, 0.165)
    assert {"/v5/user/query-api", "/v5/account/info"} <= {r.path for r in emu.requests}
    assert exchange.options["enableUnifiedAccount"] is True
