"""The Binance emulator itself: auth, dialect, order rules, stops, faults, transport.

Signed requests here are built by hand (not by ccxt) so the emulator's signature check is
tested independently of the client it serves; the last tests check that unmodified ccxt,
routed with ``route_to``, maps the emulator's answers to the same exceptions as production.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import ccxt
import pytest
import requests

from tests.exchange_emulator import BinanceEmulator, route_to

KEY, SECRET = "emu-key", "emu-secret"


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


def call(emu: BinanceEmulator, method: str, path: str, params: dict[str, Any] | None = None,
         signed: bool = True, key: str = KEY, secret: str = SECRET,
         stamp: int | None = None) -> requests.Response:
    """Binance's documented signing: HMAC-SHA256 of the query (or form body) string."""
    query = dict(params or {})
    headers = {}
    if signed:
        query["timestamp"] = stamp if stamp is not None else int(time.time() * 1000)
        text = urlencode(query)
        query_text = text + "&signature=" + hmac.new(secret.encode(), text.encode(),
                                                     hashlib.sha256).hexdigest()
        headers["X-MBX-APIKEY"] = key
    else:
        query_text = urlencode(query)
    url = emu.base_url + path
    if method in ("POST", "PUT"):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return requests.request(method, url, data=query_text, headers=headers, timeout=5)
    return requests.request(method, url + ("?" + query_text if query_text else ""),
                            headers=headers, timeout=5)


def market(emu: BinanceEmulator, side: str, qty: str, cid: str, **extra: str) -> Any:
    return call(emu, "POST", "/fapi/v1/order", {"symbol": "SOLUSDT", "side": side,
                                                "type": "MARKET", "quantity": qty,
                                                "newClientOrderId": cid, **extra})


# -- authentication --------------------------------------------------------------------------

def test_signed_request_with_the_right_key_and_secret_passes(emu: BinanceEmulator) -> None:
    answer = call(emu, "GET", "/fapi/v3/account")
    assert answer.status_code == 200
    assert answer.json()["assets"][0]["walletBalance"] == "10000"


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"secret": "wrong"}, 400, -1022),
    ({"key": "someone-else"}, 401, -2015),
    ({"key": ""}, 401, -2014),
    ({"stamp": 1}, 400, -1021),
])
def test_bad_credentials_or_stale_timestamps_are_refused(emu: BinanceEmulator,
                                                         kwargs: dict[str, Any], status: int,
                                                         code: int) -> None:
    answer = call(emu, "GET", "/fapi/v3/account", **kwargs)
    assert (answer.status_code, answer.json()["code"]) == (status, code)


def test_tampered_parameters_break_the_signature(emu: BinanceEmulator) -> None:
    text = urlencode({"symbol": "SOLUSDT", "timestamp": int(time.time() * 1000)})
    sig = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    tampered = text.replace("SOLUSDT", "BTCUSDT") + "&signature=" + sig
    answer = requests.get(f"{emu.base_url}/fapi/v3/positionRisk?{tampered}",
                          headers={"X-MBX-APIKEY": KEY}, timeout=5)
    assert answer.json()["code"] == -1022


# -- dialect ------------------------------------------------------------------------------

def test_exchange_info_carries_filters_and_order_types(emu: BinanceEmulator) -> None:
    sol = next(s for s in call(emu, "GET", "/fapi/v1/exchangeInfo", signed=False).json()
               ["symbols"] if s["symbol"] == "SOLUSDT")
    filters = {f["filterType"]: f for f in sol["filters"]}
    assert {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL"} <= filters.keys()
    assert filters["MIN_NOTIONAL"]["notional"] == "5"
    assert "STOP_MARKET" in sol["orderTypes"]
    spot = call(emu, "GET", "/api/v3/exchangeInfo", signed=False).json()["symbols"]
    assert {s["symbol"] for s in spot} >= {"BTCUSDT", "SOLUSDT", "ARBUSDT"}


def test_funding_info_lists_only_adjusted_intervals(emu: BinanceEmulator) -> None:
    info = call(emu, "GET", "/fapi/v1/fundingInfo", signed=False).json()
    assert {(i["symbol"], i["fundingIntervalHours"]) for i in info} == {
        ("SOLUSDT", 4), ("ARBUSDT", 1)}


# -- order rules ---------------------------------------------------------------------------

def test_market_order_fills_at_the_current_price_and_opens_a_position(
        emu: BinanceEmulator) -> None:
    call(emu, "POST", "/fapi/v1/leverage", {"symbol": "SOLUSDT", "leverage": 3})
    order = market(emu, "BUY", "2", "c-1").json()
    assert (order["status"], order["avgPrice"], order["executedQty"]) == ("FILLED", "150", "2")
    position = call(emu, "GET", "/fapi/v3/positionRisk").json()[0]
    assert (position["positionAmt"], position["entryPrice"]) == ("2", "150")
    assert emu.book.wallet == Decimal("10000") - Decimal("300") * Decimal("0.0005")


@pytest.mark.parametrize(("qty", "extra", "code"), [
    ("0.02", {}, -4164),                      # 3 USDT < 5 USDT notional floor
    ("0.015", {}, -1013),                     # not on the 0.01 lot step
    ("1", {"reduceOnly": "true"}, -2022),     # nothing to reduce
    ("2000", {}, -2019),                      # 300k notional at 20x > 10k wallet
])
def test_order_rules_refuse_with_binance_codes(emu: BinanceEmulator, qty: str,
                                               extra: dict[str, str], code: int) -> None:
    answer = market(emu, "BUY", qty, "c-x", **extra)
    assert answer.json()["code"] == code
    assert emu.book.orders == {}


def test_duplicate_client_ids_are_refused_among_open_orders_only(emu: BinanceEmulator) -> None:
    params = {"symbol": "SOLUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1",
              "price": "100", "timeInForce": "GTC", "newClientOrderId": "dup"}
    assert call(emu, "POST", "/fapi/v1/order", params).status_code == 200
    assert call(emu, "POST", "/fapi/v1/order", params).json()["code"] == -4116
    assert market(emu, "BUY", "1", "filled-once").status_code == 200
    assert market(emu, "BUY", "1", "filled-once").status_code == 200  # Binance's real rule


def test_stop_triggers_when_the_price_crosses_and_closes_the_position(
        emu: BinanceEmulator) -> None:
    market(emu, "BUY", "2", "entry")
    algo = call(emu, "POST", "/fapi/v1/algoOrder", {
        "algoType": "CONDITIONAL", "symbol": "SOLUSDT", "side": "SELL", "type": "STOP_MARKET",
        "quantity": "2", "triggerPrice": "140", "reduceOnly": "true",
        "clientAlgoId": "stop-1"}).json()
    assert algo["algoStatus"] == "NEW"
    assert emu.set_price("SOL", "141") == []
    assert emu.set_price("SOL", "139.5") == [algo["algoId"]]
    done = call(emu, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "stop-1"}).json()
    assert done["algoStatus"] == "FINISHED" and done["actualOrderId"]
    child = call(emu, "GET", "/fapi/v1/order", {"symbol": "SOLUSDT",
                                                "orderId": done["actualOrderId"]}).json()
    assert (child["status"], child["reduceOnly"], child["avgPrice"]) == ("FILLED", True, "139.5")
    assert call(emu, "GET", "/fapi/v3/positionRisk").json() == []
    assert call(emu, "GET", "/fapi/v1/openAlgoOrders").json() == []


def test_stop_that_would_fire_at_once_is_refused(emu: BinanceEmulator) -> None:
    answer = call(emu, "POST", "/fapi/v1/algoOrder", {
        "algoType": "CONDITIONAL", "symbol": "SOLUSDT", "side": "SELL", "type": "STOP_MARKET",
        "quantity": "1", "triggerPrice": "151", "reduceOnly": "true"})
    assert answer.json()["code"] == -2021


def test_closing_a_position_drops_its_reduce_only_stops(emu: BinanceEmulator) -> None:
    market(emu, "BUY", "1", "entry")
    call(emu, "POST", "/fapi/v1/algoOrder", {
        "algoType": "CONDITIONAL", "symbol": "SOLUSDT", "side": "SELL", "type": "STOP_MARKET",
        "quantity": "1", "triggerPrice": "140", "reduceOnly": "true", "clientAlgoId": "s"})
    market(emu, "SELL", "1", "exit", reduceOnly="true")
    assert call(emu, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "s"}).json()[
        "algoStatus"] == "CANCELED"


def test_spot_buy_pays_the_fee_in_the_base_asset(emu: BinanceEmulator) -> None:
    order = call(emu, "POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "BUY",
                                                "type": "MARKET", "quantity": "0.5"}).json()
    assert order["fills"][0]["commissionAsset"] == "ETH"
    assert emu.book.spot["ETH"] == Decimal("0.4995")
    assert emu.book.spot["USDT"] == Decimal("8500")


# -- faults and recording ----------------------------------------------------------------------

def test_rate_limit_fault_answers_429_with_retry_after_and_changes_nothing(
        emu: BinanceEmulator) -> None:
    emu.inject_rate_limit(retry_after=7, path="/fapi/v1/order")
    answer = market(emu, "BUY", "1", "c")
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert answer.json()["code"] == -1003
    assert emu.book.orders == {}
    assert market(emu, "BUY", "1", "c").status_code == 200  # the fault fired once


def test_accept_then_fail_records_the_order_but_answers_503(emu: BinanceEmulator) -> None:
    emu.inject_accept_then_fail("/fapi/v1/order")
    assert market(emu, "BUY", "1", "lost").status_code == 503
    assert [o.client_id for o in emu.book.orders.values()] == ["lost"]


@pytest.mark.parametrize("after", [False, True])
def test_reset_fault_drops_the_connection_before_or_after_processing(emu: BinanceEmulator,
                                                                     after: bool) -> None:
    emu.inject_reset(path="/fapi/v1/order", after_processing=after)
    with pytest.raises(requests.ConnectionError):
        market(emu, "BUY", "1", "reset-1")
    assert [o.client_id for o in emu.book.orders.values()] == (["reset-1"] if after else [])
    assert market(emu, "BUY", "1", "reset-2").status_code == 200  # one fault, then normal


def test_frozen_market_data_is_stale_while_the_account_moves_on(emu: BinanceEmulator) -> None:
    emu.freeze_market_data(lag_seconds=4 * 86_400)
    emu.set_price("SOL", 120)
    ticker = call(emu, "GET", "/fapi/v1/ticker/price", {"symbol": "SOLUSDT"}, signed=False)
    assert ticker.json()["price"] == "150"
    candles = call(emu, "GET", "/api/v3/klines", {"symbol": "SOLUSDT", "interval": "1d",
                                                  "limit": "2"}, signed=False).json()
    assert time.time() * 1000 - candles[-1][0] > 4 * 86_400_000
    server = call(emu, "GET", "/fapi/v1/time", signed=False).json()["serverTime"]
    assert abs(server - time.time() * 1000) < 5_000  # the venue's clock is never lagged
    assert market(emu, "BUY", "1", "fill-1").json()["avgPrice"] == "120"
    emu.thaw_market_data()
    ticker = call(emu, "GET", "/fapi/v1/ticker/price", {"symbol": "SOLUSDT"}, signed=False)
    assert ticker.json()["price"] == "120"


def test_timeout_fault_answers_late(emu: BinanceEmulator) -> None:
    emu.inject_timeout(0.3, path="/fapi/v1/time")
    started = time.monotonic()
    assert call(emu, "GET", "/fapi/v1/time", signed=False).status_code == 504
    assert time.monotonic() - started >= 0.3


def test_error_fault_and_request_log(emu: BinanceEmulator) -> None:
    emu.inject_error(-2019, "Margin is insufficient.", path="/fapi/v1/order")
    assert market(emu, "BUY", "1", "c-9").json()["code"] == -2019
    [logged] = emu.requests_for("POST", "/fapi/v1/order", newClientOrderId="c-9")
    assert logged.status == 400 and logged.api_key == KEY and "signature" not in logged.params


# -- ccxt through the transport ----------------------------------------------------------------

def routed(emu: BinanceEmulator, secret: str = SECRET, demo: bool = True) -> Any:
    exchange = ccxt.binanceusdm({"apiKey": KEY, "secret": secret,
                                 "options": {"fetchCurrencies": False}})
    if demo:
        exchange.enable_demo_trading(True)
    return route_to(exchange, emu)


def test_route_to_keeps_the_real_host_names(emu: BinanceEmulator) -> None:
    routed(emu).load_markets()
    routed(emu, demo=False).load_markets()
    assert [r.host for r in emu.requests] == ["demo-fapi.binance.com", "fapi.binance.com"]


def test_route_to_refuses_hosts_it_does_not_know(emu: BinanceEmulator) -> None:
    exchange = route_to(ccxt.binanceusdm(), emu, hosts={"api.binance.com"})
    with pytest.raises(ccxt.NetworkError) as caught:
        exchange.fetch_time()
    assert "refuses host 'fapi.binance.com'" in str(caught.value.__cause__)
    assert emu.requests == []


@pytest.mark.parametrize(("code", "expected"), [
    (-4116, ccxt.InvalidOrder), (-2019, ccxt.InsufficientFunds),
    (-2022, ccxt.InvalidOrder), (-4164, ccxt.InvalidOrder),
])
def test_ccxt_maps_binance_codes_as_in_production(emu: BinanceEmulator, code: int,
                                                  expected: type[Exception]) -> None:
    exchange = routed(emu)
    exchange.load_markets()
    emu.inject_error(code, "injected", path="/fapi/v1/order")
    with pytest.raises(expected):
        exchange.create_order("SOL/USDT:USDT", "market", "buy", 1, None, {"clientOrderId": "x"})


def test_ccxt_sees_a_wrong_secret_as_authentication_error(emu: BinanceEmulator) -> None:
    exchange = routed(emu, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError):
        exchange.fetch_balance()


def test_ccxt_sees_429_as_ddos_protection_with_the_header(emu: BinanceEmulator) -> None:
    exchange = routed(emu)
    emu.inject_rate_limit(retry_after=3, path="/fapi/v1/time")
    with pytest.raises(ccxt.DDoSProtection):
        exchange.fetch_time()
    assert exchange.last_response_headers["Retry-After"] == "3"


def test_ccxt_market_data_endpoints_parse(emu: BinanceEmulator) -> None:
    exchange = routed(emu)
    assert exchange.fetch_ticker("SOL/USDT:USDT")["last"] == 150
    candles = exchange.fetch_ohlcv("SOL/USDT:USDT", "1h", limit=5)
    assert len(candles) == 5 and candles[-1][4] == 150
    exchange.fetch_positions()  # loads leverage brackets (signed) first
    emu.book.positions.clear()
    emu.settle_funding("SOL")
    [paid] = exchange.fetch_funding_rate_history("SOL/USDT:USDT")
    assert paid["fundingRate"] == 0.0001
    assert exchange.fetch_balance({"useV2": True})  # v2 account still answers
    assert exchange.fetch_time() > 0
    spot = route_to(ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]},
                                              "fetchCurrencies": False}}), emu)
    assert spot.fetch_ticker("ETH/USDT")["last"] == 3000
    assert len(spot.fetch_ohlcv("ETH/USDT", "1d", limit=3)) == 3
