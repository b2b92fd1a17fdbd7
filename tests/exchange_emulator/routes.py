"""The emulator's REST routes: ``(method, path) -> Route``, one small function per endpoint.

Each handler gets the book, the request parameters (query and form body merged, signature
removed) and the server time in ms, and returns JSON-ready data or raises ``VenueError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.exchange_emulator import dialect as d
from tests.exchange_emulator.book import SPOT_FEE, Book, Instrument, VenueError

Handler = Callable[[Book, dict[str, str], int], Any]
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000,
               "4h": 14_400_000, "1d": 86_400_000}


@dataclass(frozen=True)
class Route:
    handler: Handler
    signed: bool


def _instruments(book: Book, p: dict[str, str], market: str) -> list[Instrument]:
    """``symbol=X`` -> [X]; ``symbols=["X","Y"]`` -> those; nothing -> every listed one."""
    if "symbol" in p:
        return [book.instrument(p["symbol"], market)]
    if "symbols" in p:
        return [book.instrument(sym, market) for sym in json.loads(p["symbols"])]
    return [i for i in book.instruments.values() if (i.spot if market == "spot" else i.perp)]


def _one_or_many(p: dict[str, str], items: list[dict[str, Any]]) -> Any:
    return items[0] if "symbol" in p else items


def _per_symbol(fn: Callable[[Instrument, int], dict[str, Any]], market: str) -> Handler:
    def handler(book: Book, p: dict[str, str], now: int) -> Any:
        return _one_or_many(p, [fn(i, now) for i in _instruments(book, p, market)])
    return handler


def _klines(market: str) -> Handler:
    def handler(book: Book, p: dict[str, str], now: int) -> Any:
        inst = book.instrument(p.get("symbol"), market)
        interval = INTERVAL_MS.get(p.get("interval", ""))
        if interval is None:
            raise VenueError(-1120, "Invalid interval.")
        return d.klines(inst, interval, min(int(p.get("limit", "500")), 1500), now)
    return handler


def _open_interest_hist(book: Book, p: dict[str, str], now: int) -> Any:
    """``GET /futures/data/openInterestHist`` (USD-M "Open Interest Statistics"): ``symbol``,
    ``period`` (5m ... 1d), ``limit`` (default 30, at most 500), oldest first, each
    ``{symbol, sumOpenInterest, sumOpenInterestValue, timestamp}`` with the amounts as
    strings, as Binance answers. The readings come from ``book.open_interest[symbol]`` (base
    units, newest last; a test sets them), else a flat 1,000 per period."""
    inst = book.instrument(p.get("symbol"), "perp")
    step = INTERVAL_MS.get(p.get("period", ""))
    if step is None:
        raise VenueError(-1130, "Data sent for parameter 'period' is not valid.")
    limit = min(int(p.get("limit", "30")), 500)
    readings = getattr(book, "open_interest", {}).get(inst.symbol) or [Decimal(1000)]
    last = now - now % step
    rows = []
    for i in range(limit):
        back = limit - 1 - i
        amount = Decimal(readings[max(0, len(readings) - 1 - back)])
        rows.append({"symbol": inst.symbol, "sumOpenInterest": d.s(amount),
                     "sumOpenInterestValue": d.s(amount * inst.price),
                     "timestamp": last - back * step})
    return rows


def _new_order(market: str) -> Handler:
    def handler(book: Book, p: dict[str, str], now: int) -> Any:
        order = book.new_order(market, p)
        if market == "spot":
            return d.spot_order(order, full=p.get("newOrderRespType", "FULL") == "FULL")
        return d.perp_order(order)
    return handler


def _get_order(market: str, cancel: bool = False) -> Handler:
    def handler(book: Book, p: dict[str, str], now: int) -> Any:
        inst = book.instrument(p.get("symbol"), market)
        if "orderId" not in p and "origClientOrderId" not in p:
            raise VenueError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                             "but both were empty/null!")
        order = book.find_order(market, inst.symbol, p.get("orderId"),
                                p.get("origClientOrderId"))
        if cancel:
            book.cancel_order(order)
        return d.spot_order(order) if market == "spot" else d.perp_order(order)
    return handler


def _open_orders(market: str) -> Handler:
    def handler(book: Book, p: dict[str, str], now: int) -> Any:
        symbol = book.instrument(p["symbol"], market).symbol if "symbol" in p else None
        orders = [o for o in book.orders.values() if o.market == market and o.status == "NEW"
                  and (symbol is None or o.symbol == symbol)]
        return [d.spot_order(o) if market == "spot" else d.perp_order(o) for o in orders]
    return handler


def _trades(market: str) -> Handler:
    def handler(book: Book, p: dict[str, str], now: int) -> Any:
        inst = book.instrument(p.get("symbol"), market)
        trades = [t for t in book.trades if t.market == market and t.symbol == inst.symbol
                  and ("orderId" not in p or str(t.order_id) == p["orderId"])]
        return [d.spot_trade(t) if market == "spot" else d.user_trade(t) for t in trades]
    return handler


def _algo_lookup(book: Book, p: dict[str, str]) -> Any:
    if "algoId" not in p and "clientAlgoId" not in p:
        raise VenueError(-1102, "Param 'algoId' or 'clientAlgoId' must be sent.")
    return book.find_algo(p.get("algoId"), p.get("clientAlgoId"))


def _cancel_algo(book: Book, p: dict[str, str], now: int) -> Any:
    algo = book.cancel_algo(_algo_lookup(book, p))
    return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200",
            "msg": "success"}


def _open_algos(book: Book, p: dict[str, str], now: int) -> Any:
    symbol = book.instrument(p["symbol"], "perp").symbol if "symbol" in p else None
    return [d.algo_order(a) for a in book.algos.values()
            if a.status == "NEW" and (symbol is None or a.symbol == symbol)]


def _position_risk(book: Book, p: dict[str, str], now: int) -> Any:
    symbol = book.instrument(p["symbol"], "perp").symbol if "symbol" in p else None
    return [d.position_risk(book, sym, pos) for sym, pos in book.positions.items()
            if symbol is None or sym == symbol]


def _leverage(book: Book, p: dict[str, str], now: int) -> Any:
    inst = book.instrument(p.get("symbol"), "perp")
    try:
        lev = int(p.get("leverage", ""))
    except ValueError:
        raise VenueError(-1102, "Mandatory parameter 'leverage' was not sent, was empty/null, "
                         "or malformed.") from None
    if not 1 <= lev <= inst.max_leverage:
        raise VenueError(-4028, f"Leverage {lev} is not valid")
    book.leverage[inst.symbol] = lev
    return {"leverage": lev, "maxNotionalValue": "50000", "symbol": inst.symbol}


def _margin_type(book: Book, p: dict[str, str], now: int) -> Any:
    inst = book.instrument(p.get("symbol"), "perp")
    wanted = p.get("marginType", "")
    if wanted not in ("ISOLATED", "CROSSED"):
        raise VenueError(-1102, "Mandatory parameter 'marginType' was not sent, was empty/null,"
                         " or malformed.")
    if book.margin_type[inst.symbol] == wanted:
        raise VenueError(-4046, "No need to change margin type.")
    if inst.symbol in book.positions:
        raise VenueError(-4048, "Margin type cannot be changed if there exists position.")
    book.margin_type[inst.symbol] = wanted
    return {"code": 200, "msg": "success"}


def _funding_rate_history(book: Book, p: dict[str, str], now: int) -> Any:
    symbol = book.instrument(p["symbol"], "perp").symbol if "symbol" in p else None
    rows = [{"symbol": sym, "fundingRate": d.s(rate), "fundingTime": t,
             "markPrice": d.s(book.instruments[sym].price)}
            for sym, rate, t in book.funding_history if symbol is None or sym == symbol]
    return rows[-int(p.get("limit", "100")):]


def _funding_info(book: Book, p: dict[str, str], now: int) -> Any:
    """Like Binance, only symbols whose interval or caps were adjusted are listed."""
    return [d.funding_info(i) for i in book.instruments.values()
            if i.perp and i.funding_interval_hours != 8]


def _transfer(book: Book, p: dict[str, str], now: int) -> Any:
    return {"tranId": book.transfer(p.get("type", ""), p.get("asset", ""),
                                    Decimal(p.get("amount") or "0"), now)}


def _transfer_history(book: Book, p: dict[str, str], now: int) -> Any:
    since = int(p.get("startTime", "0"))
    rows = [{"asset": "USDT", "amount": format(amount, "f"), "type": kind,
             "status": "CONFIRMED", "tranId": tran_id, "timestamp": at}
            for tran_id, kind, amount, at in book.transfers
            if kind == p.get("type") and at >= since]
    return {"total": len(rows), "rows": rows}


def _api_restrictions(book: Book, p: dict[str, str], now: int) -> Any:
    """``GET /sapi/v1/account/apiRestrictions``: what the key may do. Withdrawals are off
    unless a test sets ``book.enable_withdrawals`` (a key made for trading should never have
    them; the daemon warns when it does)."""
    return {"ipRestrict": False, "createTime": now - 86_400_000,
            "enableReading": True, "enableSpotAndMarginTrading": True,
            "enableFutures": True, "enableMargin": False, "enableVanillaOptions": False,
            "enableInternalTransfer": False, "permitsUniversalTransfer": False,
            "enableWithdrawals": bool(getattr(book, "enable_withdrawals", False))}


def _account_config(book: Book, p: dict[str, str], now: int) -> Any:
    """``GET /fapi/v1/accountConfig``: the USD-M account's fee tier (ccxt's
    ``fetch_trading_fees`` maps it onto its published tier table). Tier 0 unless a test sets
    ``book.fee_tier``."""
    return {"feeTier": int(getattr(book, "fee_tier", 0)), "canTrade": True,
            "canDeposit": True, "canWithdraw": False, "dualSidePosition": False,
            "multiAssetsMargin": False, "tradeGroupId": -1, "updateTime": 0}


def _trade_fee(book: Book, p: dict[str, str], now: int) -> Any:
    """``GET /sapi/v1/asset/tradeFee``: the spot fee per symbol (the one the book charges)."""
    rate = str(SPOT_FEE)
    return [{"symbol": i.symbol, "makerCommission": rate, "takerCommission": rate}
            for i in _instruments(book, p, "spot")]


def _public(fn: Handler) -> Route:
    return Route(fn, signed=False)


def _signed(fn: Handler) -> Route:
    return Route(fn, signed=True)


def _time(book: Book, p: dict[str, str], now: int) -> Any:
    return {"serverTime": now}


ROUTES: dict[tuple[str, str], Route] = {
    # spot
    ("GET", "/api/v3/ping"): _public(lambda b, p, n: {}),
    ("GET", "/api/v3/time"): _public(_time),
    ("GET", "/api/v3/exchangeInfo"): _public(lambda b, p, n: d.exchange_info(b, "spot", n)),
    ("GET", "/api/v3/ticker/24hr"): _public(_per_symbol(d.ticker_24hr, "spot")),
    ("GET", "/api/v3/ticker/price"): _public(_per_symbol(d.ticker_price, "spot")),
    ("GET", "/api/v3/klines"): _public(_klines("spot")),
    ("GET", "/api/v3/account"): _signed(lambda b, p, n: d.spot_account(b, n)),
    ("POST", "/api/v3/order"): _signed(_new_order("spot")),
    ("GET", "/api/v3/order"): _signed(_get_order("spot")),
    ("DELETE", "/api/v3/order"): _signed(_get_order("spot", cancel=True)),
    ("GET", "/api/v3/openOrders"): _signed(_open_orders("spot")),
    ("GET", "/api/v3/myTrades"): _signed(_trades("spot")),
    # wallet (not on Binance's demo hosts: live only)
    ("POST", "/sapi/v1/asset/transfer"): _signed(_transfer),
    ("GET", "/sapi/v1/asset/transfer"): _signed(_transfer_history),
    ("GET", "/sapi/v1/asset/tradeFee"): _signed(_trade_fee),
    ("GET", "/sapi/v1/account/apiRestrictions"): _signed(_api_restrictions),
    # USD-M futures: market data
    ("GET", "/fapi/v1/ping"): _public(lambda b, p, n: {}),
    ("GET", "/fapi/v1/time"): _public(_time),
    ("GET", "/fapi/v1/exchangeInfo"): _public(lambda b, p, n: d.exchange_info(b, "perp", n)),
    ("GET", "/fapi/v1/ticker/24hr"): _public(_per_symbol(d.ticker_24hr, "perp")),
    ("GET", "/fapi/v1/ticker/price"): _public(_per_symbol(d.ticker_price, "perp")),
    ("GET", "/fapi/v2/ticker/price"): _public(_per_symbol(d.ticker_price, "perp")),
    ("GET", "/fapi/v1/klines"): _public(_klines("perp")),
    ("GET", "/fapi/v1/premiumIndex"): _public(_per_symbol(d.premium_index, "perp")),
    ("GET", "/fapi/v1/fundingRate"): _public(_funding_rate_history),
    ("GET", "/fapi/v1/fundingInfo"): _public(_funding_info),
    ("GET", "/futures/data/openInterestHist"): _public(_open_interest_hist),
    # USD-M futures: account
    ("GET", "/fapi/v3/account"): _signed(lambda b, p, n: d.futures_account(b, n)),
    ("GET", "/fapi/v2/account"): _signed(lambda b, p, n: d.futures_account(b, n)),
    ("GET", "/fapi/v1/accountConfig"): _signed(_account_config),
    ("GET", "/fapi/v2/balance"): _signed(lambda b, p, n: d.futures_balance(b, n)),
    ("GET", "/fapi/v3/balance"): _signed(lambda b, p, n: d.futures_balance(b, n)),
    ("GET", "/fapi/v3/positionRisk"): _signed(_position_risk),
    ("GET", "/fapi/v1/leverageBracket"): _signed(
        lambda b, p, n: _one_or_many(p, [d.leverage_bracket(i)
                                         for i in _instruments(b, p, "perp")])),
    ("POST", "/fapi/v1/leverage"): _signed(_leverage),
    ("POST", "/fapi/v1/marginType"): _signed(_margin_type),
    # USD-M futures: orders
    ("POST", "/fapi/v1/order"): _signed(_new_order("perp")),
    ("GET", "/fapi/v1/order"): _signed(_get_order("perp")),
    ("DELETE", "/fapi/v1/order"): _signed(_get_order("perp", cancel=True)),
    ("GET", "/fapi/v1/openOrders"): _signed(_open_orders("perp")),
    ("GET", "/fapi/v1/userTrades"): _signed(_trades("perp")),
    ("POST", "/fapi/v1/algoOrder"): _signed(lambda b, p, n: d.algo_order(b.new_algo(p))),
    ("GET", "/fapi/v1/algoOrder"): _signed(lambda b, p, n: d.algo_order(_algo_lookup(b, p))),
    ("DELETE", "/fapi/v1/algoOrder"): _signed(_cancel_algo),
    ("GET", "/fapi/v1/openAlgoOrders"): _signed(_open_algos),
}

__all__ = ["ROUTES", "Route"]
