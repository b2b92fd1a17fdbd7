"""``CcxtExchange`` against the Binance emulator: unmodified ccxt, real HTTP, real signatures.

Nothing leaves 127.0.0.1: ``route_to`` reroutes the transport while ccxt keeps the real host
names (so its error mapping is production's), and the TLS test tunnels through a local
CONNECT proxy to an emulator holding a certificate from a throwaway CA.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.models import MarketKind, OrderIntent, OrderStatus, OrderType, Side
from bot.exchange.ccxt_exchange import CcxtExchange, CredentialsRejected, RetryPolicy
from bot.exchange.port import ExchangePort, ExchangeUnavailable, OrderRejected, OutcomeUnknown
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.exchange_emulator.tls import ConnectProxy, make_ca_and_server_cert

KEY, SECRET = "emu-api-key-0123", "emu-api-secret-s3cr3t-4567"
SPOT_TOKENS = ("BTC", "ETH", "SOL", "LINK", "AAVE", "UNI")
PERP_TOKENS = ("SOL", "ARB", "BTC")
FAST = RetryPolicy(read_attempts=3, base_delay=0.01, max_delay=0.05, rate_limit_delay=0.05,
                   max_rate_limit_wait=5.0, lookup_attempts=2, lookup_delay=0.01)
SPOT, PERP = MarketKind.SPOT, MarketKind.PERP


def make(emu: BinanceEmulator, mode: str = "demo", **overrides: Any) -> CcxtExchange:
    settings: dict[str, Any] = {
        "api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET), "tokens": SPOT_TOKENS,
        "perp_tokens": PERP_TOKENS, "max_leverage": 5, "retry": FAST, "rate_limit_ms": 1,
        "timeout_ms": 1000, "session_hook": lambda exchange: route_to(exchange, emu),
    }
    settings.update(overrides)
    return CcxtExchange("binance", mode, **settings)


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


@pytest.fixture
def adapter(emu: BinanceEmulator) -> Iterator[CcxtExchange]:
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


def test_the_adapter_is_an_exchange_port(adapter: CcxtExchange) -> None:
    port: ExchangePort = adapter  # checked by mypy: every port method with its signature
    assert port.name == "binance" and port.now().tzinfo is not None


# -- markets and modes ---------------------------------------------------------------------

def test_demo_mode_talks_to_demo_hosts_and_loads_markets_once(emu: BinanceEmulator) -> None:
    exchange = make(emu, tokens=(*SPOT_TOKENS, "NOPE"), perp_tokens=(*PERP_TOKENS, "ETH2"))
    markets = exchange.load_markets()
    assert {r.host for r in emu.requests} == {"demo-api.binance.com", "demo-fapi.binance.com"}
    assert not any(r.path.startswith("/sapi") for r in emu.requests)
    assert exchange.dropped == {("NOPE", SPOT): "NOPE/USDT is not listed",
                                ("ETH2", PERP): "ETH2/USDT:USDT is not listed"}
    sol = markets[("SOL", PERP)]
    assert (sol.amount_step, sol.price_step, sol.min_notional) == (
        Decimal("0.01"), Decimal("0.01"), Decimal(5))
    assert markets[("BTC", PERP)].min_notional == 100
    assert markets[("BTC", SPOT)].amount_step == Decimal("0.00001")
    assert sol.max_leverage == 5 and markets[("SOL", SPOT)].max_leverage is None
    seen = len(emu.requests)
    exchange.load_markets()
    assert len(emu.requests) == seen  # cached
    exchange.load_markets(reload=True)
    assert len(emu.requests) > seen


def test_live_mode_talks_to_live_hosts(emu: BinanceEmulator) -> None:
    make(emu, mode="live").load_markets()
    assert {r.host for r in emu.requests} == {"api.binance.com", "fapi.binance.com"}


def test_binance_testnet_refuses_perps_but_routes_spot_to_the_spot_testnet(
        emu: BinanceEmulator) -> None:
    with pytest.raises(ValueError, match="demo"):
        make(emu, mode="testnet")
    make(emu, mode="testnet", perp_tokens=()).load_markets()
    assert {r.host for r in emu.requests} == {"testnet.binance.vision"}


def test_constructor_refuses_a_leverage_cap_above_five(emu: BinanceEmulator) -> None:
    with pytest.raises(ValueError, match="max_leverage"):
        make(emu, max_leverage=6)


# -- the perp life cycle -----------------------------------------------------------------

def test_3x_long_with_exchange_side_stop_is_closed_when_the_price_crosses_it(
        adapter: CcxtExchange, emu: BinanceEmulator) -> None:
    adapter.set_margin_mode("SOL", "isolated")
    adapter.set_margin_mode("SOL", "isolated")  # -4046 "no need to change" is success
    adapter.set_leverage("SOL", Decimal(3))
    entry = adapter.place_order(order("sb-en-1", "SOL", PERP, Side.BUY, "20",
                                      leverage=Decimal(3)))
    assert (entry.status, entry.filled, entry.average_price) == (
        OrderStatus.FILLED, Decimal(20), Decimal(150))
    assert entry.fee == Decimal("1.5")  # 3000 * 5 bps, read from the fills
    guard = adapter.place_order(stop("sb-st-1", "SOL", Side.SELL, "20", "138"))
    assert (guard.order_type, guard.status, guard.trigger_price) == (
        OrderType.STOP_MARKET, OrderStatus.OPEN, Decimal(138))

    [position] = adapter.fetch_positions()
    assert (position.token, position.amount, position.entry_price) == (
        "SOL", Decimal(20), Decimal(150))
    assert (position.leverage, position.stop_price) == (Decimal(3), Decimal(138))
    assert position.liquidation_price is not None and position.liquidation_price < 138
    assert [o.client_id for o in adapter.fetch_open_orders(trigger=True)] == ["sb-st-1"]
    assert adapter.fetch_open_orders() == []

    [sent] = emu.requests_for("POST", "/fapi/v1/algoOrder")
    assert sent.params | {"clientAlgoId": "sb-st-1", "type": "STOP_MARKET",
                          "reduceOnly": "true", "triggerPrice": "138",
                          "workingType": "MARK_PRICE"} == sent.params
    assert emu.count("POST", "/fapi/v1/order", newClientOrderId="sb-en-1") == 1
    assert emu.book.margin_type["SOLUSDT"] == "ISOLATED"

    emu.set_price("SOL", "137.5")
    assert adapter.fetch_positions() == []
    assert adapter.fetch_open_orders(trigger=True) == []
    fired = adapter.fetch_order_by_client_id("sb-st-1", "SOL", PERP, trigger=True)
    assert fired is not None
    assert (fired.status, fired.filled, fired.average_price) == (
        OrderStatus.TRIGGERED, Decimal(20), Decimal("137.5"))
    assert adapter.fetch_order_by_client_id("sb-st-1", "SOL", PERP) is None  # not a plain id
    assert adapter.fetch_order_by_client_id("nope", "SOL", PERP, trigger=True) is None


def test_cancelling_a_stop_goes_to_the_algo_endpoint(adapter: CcxtExchange,
                                                     emu: BinanceEmulator) -> None:
    adapter.place_order(order("e", "SOL", PERP, Side.BUY, "1"))
    guard = adapter.place_order(stop("s", "SOL", Side.SELL, "1", "140"))
    adapter.cancel_order(guard)
    assert emu.count("DELETE", "/fapi/v1/algoOrder", algoId=guard.exchange_id) == 1
    assert adapter.fetch_open_orders(trigger=True) == []
    [position] = adapter.fetch_positions()
    assert position.stop_price is None
    with pytest.raises(OrderRejected, match="unknown or not open"):
        adapter.cancel_order(guard)


def test_funding_is_hourly_per_each_markets_own_interval(adapter: CcxtExchange) -> None:
    rates = adapter.fetch_funding_rates(["SOL", "ARB", "BTC", "ETH"])
    assert {t: r.interval_hours for t, r in rates.items()} == {"SOL": 4, "ARB": 1, "BTC": 8}
    assert rates["SOL"].hourly_rate == pytest.approx(0.0001 / 4)
    assert rates["ARB"].hourly_rate == pytest.approx(0.0001)
    assert rates["BTC"].next_settlement is not None
    assert adapter.funding_unknown == set()


# -- spot --------------------------------------------------------------------------------

def test_spot_rebalance_across_six_symbols(adapter: CcxtExchange, emu: BinanceEmulator) -> None:
    prices = adapter.fetch_prices(SPOT_TOKENS, SPOT)
    assert prices["SOL"] == 150 and prices["UNI"] == 8
    buys = {"BTC": "0.01", "ETH": "0.2", "SOL": "4", "LINK": "40", "AAVE": "6", "UNI": "75"}
    for token, amount in buys.items():
        result = adapter.place_order(order(f"rb-{token}", token, SPOT, Side.BUY, amount))
        assert (result.status, result.filled) == (OrderStatus.FILLED, Decimal(amount))
        assert result.fee == Decimal(amount) * Decimal("0.001") * prices[token]
    adapter.place_order(order("rb-SOL-out", "SOL", SPOT, Side.SELL, "1.5"))
    balances = adapter.fetch_balances()
    assert balances.total["SOL"] == Decimal("4") * Decimal("0.999") - Decimal("1.5")
    assert balances.total["UNI"] == Decimal("74.925")
    spent = sum(Decimal(a) * prices[t] for t, a in buys.items()) - Decimal(225) * Decimal("0.999")
    assert balances.total["USDT"] == Decimal(20000) - spent
    wallets = adapter.fetch_wallet_balances()
    assert wallets[PERP].total == {"USDT": Decimal(10000)}
    for token in buys:
        assert emu.count("POST", "/api/v3/order", newClientOrderId=f"rb-{token}") == 1


def test_resting_spot_limit_order_is_listed_and_cancelled(adapter: CcxtExchange) -> None:
    resting = adapter.place_order(order("lim-1", "ETH", SPOT, Side.BUY, "0.1",
                                        order_type=OrderType.LIMIT, price=Decimal("2500")))
    assert resting.status is OrderStatus.OPEN
    assert [o.client_id for o in adapter.fetch_open_orders()] == ["lim-1"]
    adapter.cancel_order(resting)
    found = adapter.fetch_order_by_client_id("lim-1", "ETH", SPOT)
    assert found is not None and found.status is OrderStatus.CANCELED


# -- refused before sending ---------------------------------------------------------------

def test_orders_under_the_minimums_are_refused_without_sending(adapter: CcxtExchange,
                                                              emu: BinanceEmulator) -> None:
    with pytest.raises(OrderRejected, match="notional"):
        adapter.place_order(order("tiny-1", "SOL", PERP, Side.BUY, "0.03"))  # 4.5 < 5 USDT
    with pytest.raises(OrderRejected, match="notional"):
        adapter.place_order(order("tiny-2", "BTC", PERP, Side.BUY, "0.001"))  # 60 < 100 USDT
    with pytest.raises(OrderRejected, match="precision"):
        adapter.place_order(order("tiny-3", "ETH", SPOT, Side.BUY, "0.00005"))  # < step
    assert emu.requests_for("POST") == []


def test_reduce_only_orders_are_exempt_from_the_notional_floor(adapter: CcxtExchange,
                                                               emu: BinanceEmulator) -> None:
    adapter.place_order(order("open", "SOL", PERP, Side.BUY, "1"))
    closed = adapter.place_order(order("trim", "SOL", PERP, Side.SELL, "0.02",
                                       reduce_only=True))
    assert closed.status is OrderStatus.FILLED


def test_leverage_above_the_cap_is_refused_before_any_request(emu: BinanceEmulator) -> None:
    exchange = make(emu)  # markets not even loaded yet
    with pytest.raises(OrderRejected, match="leverage 6"):
        exchange.set_leverage("SOL", Decimal(6))
    with pytest.raises(OrderRejected, match="leverage 6"):
        exchange.place_order(order("lev", "SOL", PERP, Side.BUY, "1", leverage=Decimal(6)))
    with pytest.raises(OrderRejected, match="whole"):
        exchange.set_leverage("SOL", Decimal("2.5"))
    assert emu.requests == []
    capped = make(emu, max_leverage=2)
    with pytest.raises(OrderRejected, match=r"\[1, 2\]"):
        capped.set_leverage("SOL", Decimal(3))
    assert emu.requests == []


def test_an_attached_stop_loss_is_refused_where_the_venue_would_drop_it(
        adapter: CcxtExchange, emu: BinanceEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter.venue, "stop_params",
                        lambda intent, trigger: {"stopLoss": {"triggerPrice": trigger}})
    with pytest.raises(OrderRejected, match="cannot attach"):
        adapter.place_order(stop("att-1", "SOL", Side.SELL, "1", "140"))
    assert emu.requests == []


def test_a_failed_periodic_market_refresh_keeps_the_known_markets(emu: BinanceEmulator) -> None:
    exchange = make(emu, markets_ttl_seconds=0)
    exchange.load_markets()
    emu.inject_status(503, times=None, path="/fapi/v1/exchangeInfo")
    assert exchange.fetch_funding_rates(["SOL"])["SOL"].interval_hours == 4
    with pytest.raises(ExchangeUnavailable):
        exchange.load_markets(reload=True)


# -- unknown outcomes, duplicates, venue refusals -------------------------------------------

def test_accepted_then_503_yields_exactly_one_order(adapter: CcxtExchange,
                                                    emu: BinanceEmulator) -> None:
    emu.inject_accept_then_fail("/fapi/v1/order")
    result = adapter.place_order(order("once-1", "SOL", PERP, Side.BUY, "2"))
    assert (result.client_id, result.status, result.filled) == (
        "once-1", OrderStatus.FILLED, Decimal(2))
    assert emu.count("POST", "/fapi/v1/order", newClientOrderId="once-1") == 1
    assert [o.client_id for o in emu.book.orders.values()] == ["once-1"]
    assert emu.book.positions["SOLUSDT"].qty == 2


def test_accepted_then_503_on_a_stop_finds_it_by_client_algo_id(adapter: CcxtExchange,
                                                                 emu: BinanceEmulator) -> None:
    adapter.place_order(order("e", "SOL", PERP, Side.BUY, "2"))
    emu.inject_accept_then_fail("/fapi/v1/algoOrder", status=502)
    guard = adapter.place_order(stop("st-once", "SOL", Side.SELL, "2", "140"))
    assert guard.status is OrderStatus.OPEN and guard.order_type is OrderType.STOP_MARKET
    assert emu.count("POST", "/fapi/v1/algoOrder", clientAlgoId="st-once") == 1
    assert emu.count("GET", "/fapi/v1/algoOrder", clientAlgoId="st-once") == 1


def test_a_response_lost_to_a_timeout_is_recovered_by_client_id(emu: BinanceEmulator) -> None:
    exchange = make(emu, timeout_ms=300)
    emu.inject_timeout(1.0, path="/fapi/v1/order", after_processing=True)
    result = exchange.place_order(order("slow-1", "SOL", PERP, Side.BUY, "1"))
    assert result.status is OrderStatus.FILLED
    assert emu.count("POST", "/fapi/v1/order", newClientOrderId="slow-1") == 1


@pytest.mark.parametrize("fault", ["timeout", "status"])
def test_a_failed_send_that_left_no_order_is_outcome_unknown_not_a_resend(
        emu: BinanceEmulator, fault: str) -> None:
    exchange = make(emu, timeout_ms=300)
    if fault == "timeout":
        emu.inject_timeout(1.0, path="/fapi/v1/order")
    else:
        emu.inject_status(503, path="/fapi/v1/order")
    with pytest.raises(OutcomeUnknown, match="not found by client id"):
        exchange.place_order(order("lost-1", "SOL", PERP, Side.BUY, "1"))
    assert emu.count("POST", "/fapi/v1/order") == 1
    assert emu.count("GET", "/fapi/v1/order", origClientOrderId="lost-1") == FAST.lookup_attempts


def test_duplicate_client_id_returns_the_existing_order() -> None:
    with BinanceEmulator(KEY, SECRET, duplicate_scope="all") as emu:
        exchange = make(emu)
        first = exchange.place_order(order("dup-1", "SOL", PERP, Side.BUY, "1"))
        again = exchange.place_order(order("dup-1", "SOL", PERP, Side.BUY, "1"))
        assert again.exchange_id == first.exchange_id
        assert [r.status for r in emu.requests_for("POST", "/fapi/v1/order")] == [200, 400]
        assert emu.book.positions["SOLUSDT"].qty == 1


@pytest.mark.parametrize(("kind", "token", "amount", "extra", "match"), [
    (PERP, "SOL", "1000", {}, "InsufficientFunds"),                  # -2019
    (PERP, "ARB", "10", {"reduce_only": True}, "ReduceOnly"),        # -2022
    (SPOT, "BTC", "1", {}, "insufficient balance"),                  # -2010
])
def test_venue_refusals_are_order_rejected_and_never_retried(
        adapter: CcxtExchange, emu: BinanceEmulator, kind: MarketKind, token: str,
        amount: str, extra: dict[str, Any], match: str) -> None:
    adapter.set_leverage("SOL", Decimal(1))
    emu.clear_requests()
    with pytest.raises(OrderRejected, match=match):
        adapter.place_order(order("no-1", token, kind, Side.BUY if not extra else Side.SELL,
                                  amount, **extra))
    assert len(emu.requests_for("POST")) == 1
    assert emu.requests_for("GET", "/fapi/v1/order") == []


# -- rate limits and transient read failures -----------------------------------------------

def test_429_bursts_make_the_adapter_wait_and_nothing_is_lost(adapter: CcxtExchange,
                                                              emu: BinanceEmulator) -> None:
    emu.inject_rate_limit(times=2, retry_after=1, path="/fapi/v1/order", method="POST")
    started = time.monotonic()
    result = adapter.place_order(order("burst-1", "SOL", PERP, Side.BUY, "1"))
    assert time.monotonic() - started >= 2.0
    assert result.status is OrderStatus.FILLED
    sends = emu.requests_for("POST", "/fapi/v1/order", newClientOrderId="burst-1")
    assert [r.status for r in sends] == [429, 429, 200]
    assert len(emu.book.orders) == 1
    for refused in sends[:2]:  # nothing reached the venue before Retry-After had passed
        later = [r for r in emu.requests if r.at > refused.at]
        assert later[0].at - refused.at >= 0.95


def test_a_429_on_one_read_pauses_the_next_call_too(adapter: CcxtExchange,
                                                    emu: BinanceEmulator) -> None:
    emu.inject_rate_limit(retry_after=1, path="/api/v3/ticker/price")
    assert adapter.fetch_prices(["SOL"], SPOT) == {"SOL": Decimal(150)}
    [refused, retried] = emu.requests_for("GET", "/api/v3/ticker/price")
    assert (refused.status, retried.status) == (429, 200)
    assert retried.at - refused.at >= 0.95


def test_reads_retry_5xx_then_give_up_as_exchange_unavailable(adapter: CcxtExchange,
                                                              emu: BinanceEmulator) -> None:
    emu.inject_status(502, times=2, path="/fapi/v3/account")
    assert adapter.fetch_balances().total["USDT"] == 20000
    assert emu.count("GET", "/fapi/v3/account") == 3
    emu.inject_status(500, times=None, path="/fapi/v3/positionRisk")
    with pytest.raises(ExchangeUnavailable, match="3 times"):
        adapter.fetch_positions()
    assert emu.count("GET", "/fapi/v3/positionRisk") == FAST.read_attempts


# -- credentials and secrets -----------------------------------------------------------------

def test_a_wrong_secret_is_a_credentials_error_and_is_not_retried(emu: BinanceEmulator) -> None:
    exchange = make(emu, api_secret=SecretStr("the-wrong-secret-value"))
    with pytest.raises(CredentialsRejected, match="-1022") as caught:
        exchange.fetch_balances()
    assert emu.count("GET", "/api/v3/account") == 1
    assert "the-wrong-secret-value" not in f"{caught.value!s} {caught.value!r}"
    with pytest.raises(CredentialsRejected):
        exchange.place_order(order("auth-1", "SOL", PERP, Side.BUY, "1"))


def test_secrets_never_appear_in_repr_or_error_messages(emu: BinanceEmulator) -> None:
    exchange = make(emu, api_key=KEY, api_secret=SECRET)  # plain strings work too
    assert KEY not in repr(exchange) and SECRET not in repr(exchange)
    assert "binance" in repr(exchange) and "demo" in repr(exchange)
    emu.inject_error(-2010, f"echoing {KEY} and {SECRET}", path="/api/v3/order")
    with pytest.raises(OrderRejected) as caught:
        exchange.place_order(order("leak-1", "SOL", SPOT, Side.BUY, "1"))
    text = f"{caught.value!s} {caught.value!r}"
    assert KEY not in text and SECRET not in text and "**********" in text
    emu.inject_status(500, times=None, path="/fapi/v1/time")
    with pytest.raises(ExchangeUnavailable) as unavailable:
        exchange.now()
    assert SECRET not in str(unavailable.value)


def test_proxy_credentials_are_scrubbed_from_adapter_errors(emu: BinanceEmulator) -> None:
    """A venue echoing the proxy URL (or its password, encoded or not) leaks nothing."""
    proxy = "http://svc:pr%40xy-s3cret@proxy.corp.invalid:3128"
    exchange = make(emu, https_proxy=proxy)
    emu.inject_error(-2010, f"via {proxy}: pr@xy-s3cret / pr%40xy-s3cret",
                     path="/api/v3/order")
    with pytest.raises(OrderRejected) as caught:
        exchange.place_order(order("leak-2", "SOL", SPOT, Side.BUY, "1"))
    text = str(caught.value)
    assert "s3cret" not in text and "**********" in text


# -- proxies and CA bundles --------------------------------------------------------------------

def test_https_proxy_and_ca_bundle_reach_the_real_host_name_over_tls(tmp_path: Path) -> None:
    ca_bundle, tls = make_ca_and_server_cert(tmp_path)
    emu = BinanceEmulator(KEY, SECRET).start(tls=tls)
    try:
        with ConnectProxy(emu.port) as proxy:
            settings: dict[str, Any] = {"session_hook": None, "https_proxy": proxy.url,
                                        "tokens": (), "perp_tokens": ("SOL",)}
            trusted = make(emu, mode="live", ca_bundle=ca_bundle, **settings)
            assert trusted.fetch_balances().total == {"USDT": Decimal(10000)}
            assert set(proxy.tunnels) == {"fapi.binance.com:443"}
            assert {r.host for r in emu.requests} == {"fapi.binance.com"}
            untrusted = make(emu, mode="live", **settings)
            with pytest.raises(ExchangeUnavailable):
                untrusted.load_markets()
    finally:
        emu.stop()


def test_trust_env_honours_https_proxy_and_requests_ca_bundle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_bundle, tls = make_ca_and_server_cert(tmp_path)
    emu = BinanceEmulator(KEY, SECRET).start(tls=tls)
    try:
        with ConnectProxy(emu.port) as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            exchange = make(emu, mode="demo", session_hook=None, trust_env=True, tokens=(),
                            perp_tokens=("SOL",))
            assert ("SOL", PERP) in exchange.load_markets()
            assert set(proxy.tunnels) == {"demo-fapi.binance.com:443"}
    finally:
        emu.stop()


def test_debug_logging_never_carries_the_api_key(emu: BinanceEmulator,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    exchange = make(emu)
    exchange.fetch_balances()
    assert emu.count("GET", "/fapi/v3/account") == 1
    assert KEY not in caplog.text and SECRET not in caplog.text


# -- other venues: how they are constructed (driven end to end in test_ccxt_{bybit,okx}.py) --

def capture(venue: str, mode: str, **extra: Any) -> dict[MarketKind, Any]:
    """Build the adapter with a factory that keeps the ccxt instances (no request is made)."""
    import ccxt

    built: list[Any] = []

    def factory(cls: str, config: dict[str, Any]) -> Any:
        built.append(getattr(ccxt, cls)(config))
        return built[-1]

    CcxtExchange(venue, mode, api_key="k" * 8, api_secret="s" * 8, tokens=("SOL",),
                 perp_tokens=("SOL",), exchange_factory=factory, **extra)
    return dict(zip((SPOT, PERP), built, strict=True))


def test_bybit_testnet_and_demo_are_different_hosts() -> None:
    testnet = capture("bybit", "testnet")
    demo = capture("bybit", "demo")
    assert "api-testnet." in str(testnet[PERP].urls["api"])
    assert "api-demo." in str(demo[PERP].urls["api"])
    assert testnet[PERP].options["maxRetriesOnFailure"] == 0


def test_okx_demo_keeps_the_live_host_and_sends_the_simulated_header() -> None:
    okx = capture("okx", "demo", password="p" * 8)
    assert okx[PERP].headers.get("x-simulated-trading") == "1"
    assert okx[SPOT].options["defaultType"] == "spot"


def test_binance_instances_are_configured_for_safety() -> None:
    built = capture("binance", "demo", trust_env=True)
    spot, perp = built[SPOT], built[PERP]
    assert (type(spot).__name__, type(perp).__name__) == ("binance", "binanceusdm")
    assert perp.enableRateLimit and perp.options["maxRetriesOnFailure"] == 0
    assert perp.options["fetchCurrencies"] is False and spot.options["fetchMargins"] is False
    assert "demo-fapi.binance.com" in perp.urls["api"]["fapiPrivate"]
    assert perp.session.trust_env is True


def test_unknown_venue_or_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported venue"):
        CcxtExchange("kraken", "live")
    with pytest.raises(ValueError, match="mode"):
        CcxtExchange("binance", "paper")
