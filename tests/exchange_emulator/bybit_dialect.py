"""Bybit v5's JSON shapes for the emulator's state (numbers as strings, as Bybit sends them).

Field names follow Bybit's v5 docs for instruments, orders, executions and positions; only
what ccxt 4.5.x reads plus a few fields for realism is filled in.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.exchange_emulator.bybit_book import BybitBook
from tests.exchange_emulator.bybit_models import (
    MAINT_MARGIN_RATE,
    QUOTE,
    ZERO,
    BybitInstrument,
    BybitOrder,
    Execution,
    Position,
)


def s(value: Decimal | int) -> str:
    """Decimal as Bybit prints it: plain notation, no exponent."""
    out = format(Decimal(value).normalize(), "f")
    return out if out != "-0" else "0"


def spot_instrument(i: BybitInstrument) -> dict[str, Any]:
    return {"symbol": i.symbol, "baseCoin": i.base, "quoteCoin": QUOTE, "innovation": "0",
            "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
            "lotSizeFilter": {"basePrecision": s(i.spot_step), "quotePrecision": "0.0000001",
                              "minOrderQty": s(i.spot_min_qty), "maxOrderQty": "100000",
                              "minOrderAmt": s(i.spot_min_amount), "maxOrderAmt": "2000000"},
            "priceFilter": {"tickSize": s(i.tick)},
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"}}


def linear_instrument(i: BybitInstrument) -> dict[str, Any]:
    return {"symbol": i.symbol, "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": i.base, "quoteCoin": QUOTE, "launchTime": "1585526400000",
            "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(_digits(i.tick)),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": s(i.max_leverage),
                               "leverageStep": "0.01"},
            "priceFilter": {"minPrice": s(i.tick), "maxPrice": "1999999.8",
                            "tickSize": s(i.tick)},
            "lotSizeFilter": {"maxOrderQty": "1190", "minOrderQty": s(i.perp_min_qty),
                              "qtyStep": s(i.perp_step), "postOnlyMaxOrderQty": "1190",
                              "maxMktOrderQty": "500", "minNotionalValue":
                                  s(i.perp_min_notional)},
            "unifiedMarginTrade": True, "fundingInterval": i.funding_interval_minutes,
            "settleCoin": QUOTE, "copyTrading": "both", "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005", "isPreListing": False, "preListingInfo": None,
            "displayName": "", "riskParameters": {"priceLimitRatioX": "0.01",
                                                  "priceLimitRatioY": "0.02"}}


def _digits(step: Decimal) -> int:
    return max(0, -int(step.normalize().as_tuple().exponent))


def next_funding(inst: BybitInstrument, now: int) -> int:
    period = inst.funding_interval_minutes * 60_000
    return now - now % period + period


def liquidation_price(pos: Position, leverage: Decimal) -> Decimal:
    """Isolated one-way liquidation price with a flat maintenance margin rate."""
    qty, margin = abs(pos.qty), abs(pos.qty) * pos.entry / leverage
    if pos.qty > 0:
        return max(ZERO, (pos.entry * qty - margin) / (qty * (1 - MAINT_MARGIN_RATE)))
    return (pos.entry * qty + margin) / (qty * (1 + MAINT_MARGIN_RATE))


def position_json(book: BybitBook, symbol: str, pos: Position | None) -> dict[str, Any]:
    lev = book.leverage[symbol]
    mark = book.instruments[symbol].price
    flat = pos is None
    pos = pos or Position()
    im = book.position_im(symbol)
    return {
        "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": symbol,
        "side": "" if flat else ("Buy" if pos.qty > 0 else "Sell"), "size": s(abs(pos.qty)),
        "avgPrice": s(pos.entry), "positionValue": s(abs(pos.qty) * pos.entry),
        "tradeMode": 0, "positionStatus": "Normal", "autoAddMargin": 0,
        "adlRankIndicator": 0 if flat else 2, "leverage": s(lev), "positionBalance": s(im),
        "markPrice": s(mark), "liqPrice": "" if flat else s(liquidation_price(pos, lev)),
        "bustPrice": "", "positionMM": s(im * MAINT_MARGIN_RATE), "positionIM": s(im),
        "tpslMode": "Full", "takeProfit": "", "stopLoss": "", "trailingStop": "0",
        "unrealisedPnl": s(book.upnl(symbol)), "curRealisedPnl": s(pos.realised),
        "cumRealisedPnl": s(pos.realised), "seq": pos.updated, "isReduceOnly": False,
        "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "", "sessionAvgPrice": "",
        "createdTime": str(pos.created), "updatedTime": str(pos.updated)}


def order_json(o: BybitOrder) -> dict[str, Any]:
    avg = o.cum_value / o.cum_qty if o.cum_qty else ZERO
    out: dict[str, Any] = {
        "orderId": o.order_id, "orderLinkId": o.link_id, "blockTradeId": "",
        "symbol": o.symbol, "price": s(o.price), "qty": s(o.qty), "side": o.side,
        "isLeverage": "0" if o.category == "spot" else "", "positionIdx": 0,
        "orderStatus": o.status, "createType": "CreateByUser", "cancelType": o.cancel_type,
        "rejectReason": "EC_NoError", "avgPrice": s(avg) if o.cum_qty else "",
        "leavesQty": s(o.qty - o.cum_qty) if o.is_open else "0",
        "leavesValue": s((o.qty - o.cum_qty) * o.price) if o.is_open else "0",
        "cumExecQty": s(o.cum_qty), "cumExecValue": s(o.cum_value),
        "cumExecFee": s(o.cum_fee), "cumFeeDetail": {o.fee_coin: s(o.cum_fee)}
        if o.fee_coin else {}, "timeInForce": o.time_in_force, "orderType": o.order_type,
        "stopOrderType": "Stop" if o.conditional else "", "orderIv": "",
        "marketUnit": o.market_unit,
        "triggerPrice": s(o.trigger_price) if o.trigger_price is not None else "",
        "takeProfit": "", "stopLoss": "", "tpLimitPrice": "", "slLimitPrice": "",
        "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": o.trigger_direction,
        "triggerBy": o.trigger_by, "lastPriceOnCreated": s(o.last_price_on_created),
        "basePrice": s(o.last_price_on_created) if o.conditional else "",
        "reduceOnly": o.reduce_only, "closeOnTrigger": o.close_on_trigger, "placeType": "",
        "smpType": "None", "smpGroup": 0, "smpOrderId": "", "createdTime": str(o.created),
        "updatedTime": str(o.updated)}
    if o.category == "linear":
        out["tpslMode"] = ""
    return out


def execution_json(e: Execution) -> dict[str, Any]:
    o = e.order
    return {"symbol": o.symbol, "orderId": o.order_id, "orderLinkId": o.link_id,
            "side": o.side, "orderPrice": s(o.price), "orderQty": s(o.qty),
            "leavesQty": "0", "createType": "CreateByUser", "orderType": o.order_type,
            "stopOrderType": "Stop" if o.conditional else "", "execFee": s(e.fee),
            "execId": e.exec_id, "execPrice": s(e.price), "execQty": s(e.qty),
            "execType": "Trade", "execValue": s(e.qty * e.price), "execTime": str(e.time),
            "feeCurrency": e.fee_coin if o.category == "spot" else "", "isMaker": False,
            "feeRate": "0.001" if o.category == "spot" else "0.00055", "tradeIv": "",
            "markIv": "", "markPrice": s(e.price), "indexPrice": s(e.price),
            "underlyingPrice": "", "blockTradeId": "", "closedSize": s(e.closed_size),
            "seq": e.time, "extraFees": ""}
