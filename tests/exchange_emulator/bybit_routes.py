"""Bybit v5 REST routes of the emulator: ``(method, path) -> Route``, one handler each.

Each handler gets the book, the request fields (query string or JSON body) and the server
time in ms and returns the ``result`` object of Bybit's envelope, or raises ``BybitError``.
The JSON shapes of orders, positions and instruments live in ``bybit_dialect``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.exchange_emulator.bybit_book import BybitBook
from tests.exchange_emulator.bybit_dialect import (
    execution_json,
    linear_instrument,
    next_funding,
    order_json,
    position_json,
    s,
    spot_instrument,
)
from tests.exchange_emulator.bybit_models import (
    MAINT_MARGIN_RATE,
    QUOTE,
    ZERO,
    BybitError,
    BybitInstrument,
    BybitOrder,
    text,
)

Handler = Callable[[BybitBook, dict[str, Any], int], Any]
KLINE_MS = {"1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000,
            "60": 3_600_000, "120": 7_200_000, "240": 14_400_000, "360": 21_600_000,
            "720": 43_200_000, "D": 86_400_000, "W": 604_800_000}


@dataclass(frozen=True)
class Route:
    handler: Handler
    signed: bool


def _page(items: list[Any], p: dict[str, Any], default: int, most: int) -> dict[str, Any]:
    """``limit``/``cursor`` paging; the cursor is an opaque offset, "" on the last page."""
    limit = min(int(text(p, "limit") or default), most)
    start = int(text(p, "cursor") or 0)
    rest = items[start:start + limit]
    more = start + limit < len(items)
    return {"list": rest, "nextPageCursor": str(start + limit) if more else ""}


def _category(p: dict[str, Any], allowed: tuple[str, ...] = ("spot", "linear")) -> str:
    category = text(p, "category") or ""
    if category not in allowed:
        raise BybitError(10001, f"params error: category only support {','.join(allowed)}")
    return category


def _listed(book: BybitBook, category: str, p: dict[str, Any]) -> list[BybitInstrument]:
    if text(p, "symbol"):
        return [book.instrument(text(p, "symbol"), category)]
    return [i for i in book.instruments.values() if (i.spot if category == "spot" else i.perp)]


def _need_symbol_or_settle(category: str, p: dict[str, Any]) -> None:
    if category == "linear" and not any(text(p, k) for k in ("symbol", "settleCoin",
                                                              "baseCoin")):
        raise BybitError(10001, "Missing some parameters that must be filled in, symbol or "
                         "settleCoin or baseCoin")


# -- market data -------------------------------------------------------------------------------
def instruments_info(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    category = _category(p, ("spot", "linear", "inverse", "option"))
    status = text(p, "status") or "Trading"  # Bybit lists only Trading symbols by default
    if category in ("inverse", "option"):  # real categories, no instruments emulated there
        return {"category": category, "list": [], "nextPageCursor": ""}
    rows = [] if status != "Trading" else [
        spot_instrument(i) if category == "spot" else linear_instrument(i)
        for i in _listed(book, category, p)]
    return {"category": category, **_page(rows, p, 500, 1000)}


def tickers(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    category = _category(p)
    rows = []
    for i in _listed(book, category, p):
        price = s(i.price)
        row = {"symbol": i.symbol, "lastPrice": price, "prevPrice24h": price,
               "price24hPcnt": "0", "highPrice24h": price, "lowPrice24h": price,
               "turnover24h": s(i.price * 1000), "volume24h": "1000", "bid1Price": price,
               "bid1Size": "10", "ask1Price": price, "ask1Size": "10"}
        if category == "spot":
            row["usdIndexPrice"] = price
        else:
            row.update({"indexPrice": price, "markPrice": price, "prevPrice1h": price,
                        "openInterest": "1000", "openInterestValue": s(i.price * 1000),
                        "fundingRate": s(i.funding_rate),
                        "nextFundingTime": str(next_funding(i, now)),
                        "fundingIntervalHour": s(Decimal(i.funding_interval_minutes) / 60),
                        "fundingCap": "0.005", "predictedDeliveryPrice": "",
                        "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
                        "basis": ""})
        rows.append(row)
    return {"category": category, "list": rows}


def kline(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    category = _category(p)
    inst = book.instrument(text(p, "symbol"), category)
    step = KLINE_MS.get(text(p, "interval") or "")
    if step is None:
        raise BybitError(10001, "params error: interval invalid")
    limit = min(int(text(p, "limit") or 200), 1000)
    price, first = s(inst.price), now - now % step
    return {"symbol": inst.symbol, "category": category, "list": [
        [str(first - k * step), price, price, price, price, "100", s(inst.price * 100)]
        for k in range(limit)]}


def funding_history(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    _category(p, ("linear",))
    inst = book.instrument(text(p, "symbol"), "linear")
    rows = [{"symbol": sym, "fundingRate": s(rate), "fundingRateTimestamp": str(at)}
            for sym, rate, at in reversed(book.funding_history) if sym == inst.symbol]
    return {"category": "linear", "list": rows[:min(int(text(p, "limit") or 200), 200)]}


def server_time(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}


# -- account -----------------------------------------------------------------------------------
def wallet_balance(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    if text(p, "accountType") != "UNIFIED":
        raise BybitError(10001, "accountType only support UNIFIED.")
    wanted = set((text(p, "coin") or "").split(",")) - {""}
    coins, upl, im = [], ZERO, ZERO
    for coin, balance in sorted(book.wallet.items()):
        if wanted and coin not in wanted:
            continue
        inst = book.instruments.get(coin + QUOTE)
        price = Decimal(1) if coin == QUOTE or inst is None else inst.price
        coin_upl = sum((book.upnl(sym) for sym in book.positions), ZERO) \
            if coin == QUOTE else ZERO
        coin_im = sum((book.position_im(sym) for sym in book.positions), ZERO) \
            if coin == QUOTE else ZERO
        order_im = book.order_im() if coin == QUOTE else ZERO
        upl, im = upl + coin_upl, im + coin_im + order_im
        coins.append({
            "coin": coin, "walletBalance": s(balance), "equity": s(balance + coin_upl),
            "usdValue": s((balance + coin_upl) * price), "unrealisedPnl": s(coin_upl),
            "cumRealisedPnl": s(sum((pos.realised for pos in book.positions.values()), ZERO)
                                if coin == QUOTE else ZERO),
            "locked": s(book.locked(coin)), "totalOrderIM": s(order_im),
            "totalPositionIM": s(coin_im), "totalPositionMM": s(coin_im * MAINT_MARGIN_RATE),
            # deprecated for UNIFIED since 2025-01: Bybit sends an empty string
            "availableToWithdraw": "", "availableToBorrow": "", "borrowAmount": "0",
            "accruedInterest": "0", "bonus": "0", "spotHedgingQty": "0",
            "collateralSwitch": True, "marginCollateral": True})
    usd = sum((Decimal(c["usdValue"]) for c in coins), ZERO)
    account = {"accountType": "UNIFIED", "totalEquity": s(usd), "totalWalletBalance":
               s(usd - upl), "totalMarginBalance": s(usd), "totalAvailableBalance":
               s(usd - im), "totalPerpUPL": s(upl), "totalInitialMargin": s(im),
               "totalMaintenanceMargin": s(im * MAINT_MARGIN_RATE), "accountIMRate": "0",
               "accountMMRate": "0", "accountLTV": "0", "coin": coins}
    return {"list": [account]}


def account_info(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    return {"unifiedMarginStatus": 5, "marginMode": book.margin_mode, "isMasterTrader": False,
            "spotHedgingStatus": "OFF", "updatedTime": str(now), "dcpStatus": "OFF",
            "timeWindow": 10, "smpGroup": 0}


def query_api(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    return {"id": "1", "note": "emulator", "apiKey": "", "readOnly": 0, "secret": "",
            "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                            "Wallet": [], "Options": [], "Derivatives": [],
                            "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "unified": 0, "uta": 1,
            "userID": 1, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
            "affiliateID": 0, "rsaPublicKey": "", "isMaster": True}


def coin_info(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    coins = [QUOTE, *sorted({i.base for i in book.instruments.values()})]
    return {"rows": [{"name": c, "coin": c, "remainAmount": "1000000", "chains": [
        {"chainType": c, "confirmation": "10", "withdrawFee": "1", "depositMin": "0",
         "withdrawMin": "1", "chain": c, "chainDeposit": "1", "chainWithdraw": "1",
         "minAccuracy": "8"}]} for c in coins]}


def set_margin_mode(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    return book.set_margin_mode(p)


def switch_isolated(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    raise BybitError(100028, "The API cannot be accessed by unified account users.")


def set_leverage(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    book.set_leverage(p)
    return {}


def position_list(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    _category(p, ("linear",))
    _need_symbol_or_settle("linear", p)
    if text(p, "symbol"):
        symbol = book.instrument(text(p, "symbol"), "linear").symbol
        rows = [position_json(book, symbol, book.positions.get(symbol))]
    else:
        rows = [position_json(book, sym, pos) for sym, pos in book.positions.items()
                if text(p, "baseCoin") in (None, book.instruments[sym].base)]
    return {"category": "linear", **_page(rows, p, 20, 200)}


# -- orders ------------------------------------------------------------------------------------
def _orders(book: BybitBook, p: dict[str, Any], open_side: bool) -> list[BybitOrder]:
    """Newest first, filtered the way Bybit filters: orderId beats orderLinkId beats symbol;
    no ``orderFilter`` means every kind (unified account), Order/StopOrder narrow it."""
    category = _category(p)
    _need_symbol_or_settle(category, p)
    symbol = book.instrument(text(p, "symbol"), category).symbol if text(p, "symbol") \
        else None
    kind, status = text(p, "orderFilter"), text(p, "orderStatus")
    order_id, link = text(p, "orderId"), text(p, "orderLinkId")
    out = []
    for o in reversed(list(book.orders.values())):
        if o.category != category or o.is_open != open_side:
            continue
        if order_id is not None:
            if o.order_id != order_id:
                continue
        elif link is not None:
            if o.link_id != link:
                continue
        elif symbol is not None and o.symbol != symbol:
            continue
        if (kind == "Order" and o.conditional) or (kind == "StopOrder" and not o.conditional):
            continue
        if status is not None and o.status != status:
            continue
        out.append(o)
    return out


def realtime(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    """``openOnly=0`` (default): open orders only; 1: recently closed ones. Closed orders
    are looked up in ``order/history`` (Bybit drops them from here after a restart)."""
    closed = text(p, "openOnly") == "1"
    rows = [order_json(o) for o in _orders(book, p, open_side=not closed)][:500]
    return {"category": _category(p), **_page(rows, p, 20, 50)}


def history(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    rows = [order_json(o) for o in _orders(book, p, open_side=False)
            if o.updated <= now - book.history_lag_ms]
    return {"category": _category(p), **_page(rows, p, 20, 50)}


def create(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    order = book.create_order(p)
    return {"orderId": order.order_id, "orderLinkId": order.link_id}


def cancel(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    order = book.cancel(p)
    return {"orderId": order.order_id, "orderLinkId": order.link_id}


def executions(book: BybitBook, p: dict[str, Any], now: int) -> Any:
    category = _category(p)
    symbol = text(p, "symbol")
    rows = [execution_json(e) for e in reversed(book.executions)
            if e.order.category == category and symbol in (None, e.order.symbol)
            and text(p, "orderId") in (None, e.order.order_id)
            and text(p, "orderLinkId") in (None, e.order.link_id)]
    return {"category": category, **_page(rows, p, 50, 100)}


def _public(fn: Handler) -> Route:
    return Route(fn, signed=False)


def _signed(fn: Handler) -> Route:
    return Route(fn, signed=True)


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/v5/market/time"): _public(server_time),
    ("GET", "/v5/market/instruments-info"): _public(instruments_info),
    ("GET", "/v5/market/tickers"): _public(tickers),
    ("GET", "/v5/market/kline"): _public(kline),
    ("GET", "/v5/market/funding/history"): _public(funding_history),
    ("GET", "/v5/account/wallet-balance"): _signed(wallet_balance),
    ("GET", "/v5/account/info"): _signed(account_info),
    ("GET", "/v5/user/query-api"): _signed(query_api),
    ("GET", "/v5/asset/coin/query-info"): _signed(coin_info),
    ("POST", "/v5/account/set-margin-mode"): _signed(set_margin_mode),
    ("POST", "/v5/position/switch-isolated"): _signed(switch_isolated),
    ("POST", "/v5/position/set-leverage"): _signed(set_leverage),
    ("GET", "/v5/position/list"): _signed(position_list),
    ("POST", "/v5/order/create"): _signed(create),
    ("POST", "/v5/order/cancel"): _signed(cancel),
    ("GET", "/v5/order/realtime"): _signed(realtime),
    ("GET", "/v5/order/history"): _signed(history),
    ("GET", "/v5/execution/list"): _signed(executions),
}

__all__ = ["ROUTES", "Route"]
