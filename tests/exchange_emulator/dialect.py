"""Binance's JSON shapes for the emulator's state (strings for numbers, as Binance sends them).

Field names follow Binance's REST docs for spot ``/api/v3`` and USD-M ``/fapi``; only the
fields ccxt 4.5.x reads plus a few for realism are filled in. ``positionRisk`` is the v3
shape, which (unlike v2) has no ``leverage`` or ``marginType`` field.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.exchange_emulator.book import (
    MAINT_MARGIN_RATE,
    ZERO,
    AlgoOrder,
    Book,
    Instrument,
    Order,
    Position,
    Trade,
)

PERP_ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                    "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
SPOT_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                    "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]


def s(value: Decimal | int) -> str:
    """Decimal as Binance prints it: plain notation, no exponent."""
    text = format(Decimal(value).normalize(), "f")
    return text if text != "-0" else "0"


def _digits(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


def exchange_info(book: Book, market: str, now: int) -> dict[str, Any]:
    symbols = []
    for inst in book.instruments.values():
        if market == "spot" and inst.spot:
            symbols.append(_spot_symbol(inst))
        elif market == "perp" and inst.perp:
            symbols.append(_perp_symbol(inst))
    limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
               "limit": 2400}]
    return {"timezone": "UTC", "serverTime": now, "rateLimits": limits, "exchangeFilters": [],
            "symbols": symbols}


def _spot_symbol(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol, "status": "TRADING", "baseAsset": inst.base,
        "baseAssetPrecision": 8, "quoteAsset": "USDT", "quotePrecision": 8,
        "quoteAssetPrecision": 8, "orderTypes": SPOT_ORDER_TYPES, "icebergAllowed": True,
        "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False, "permissions": [], "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": s(inst.tick), "maxPrice": "1000000",
             "tickSize": s(inst.tick)},
            {"filterType": "LOT_SIZE", "minQty": s(inst.spot_step), "maxQty": "900000",
             "stepSize": s(inst.spot_step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "90000",
             "stepSize": "0"},
            {"filterType": "NOTIONAL", "minNotional": s(inst.spot_min_notional),
             "applyMinToMarket": True, "maxNotional": "9000000", "applyMaxToMarket": False,
             "avgPriceMins": 5},
        ],
    }


def _perp_symbol(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol, "pair": inst.symbol, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": _digits(inst.tick), "quantityPrecision": _digits(inst.perp_step),
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "triggerProtect": "0.0500", "liquidationFee": "0.012500",
        "marketTakeBound": "0.05", "orderTypes": PERP_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": s(inst.tick), "maxPrice": "1000000",
             "tickSize": s(inst.tick)},
            {"filterType": "LOT_SIZE", "minQty": s(inst.perp_step), "maxQty": "1000000",
             "stepSize": s(inst.perp_step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": s(inst.perp_step),
             "maxQty": "100000", "stepSize": s(inst.perp_step)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": s(inst.perp_min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
    }


def ticker_24hr(inst: Instrument, now: int) -> dict[str, Any]:
    p = s(inst.price)
    return {"symbol": inst.symbol, "priceChange": "0", "priceChangePercent": "0",
            "weightedAvgPrice": p, "lastPrice": p, "lastQty": "1", "openPrice": p,
            "highPrice": p, "lowPrice": p, "volume": "1000", "quoteVolume": s(inst.price * 1000),
            "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 2,
            "count": 2, "bidPrice": p, "askPrice": p}


def ticker_price(inst: Instrument, now: int) -> dict[str, Any]:
    return {"symbol": inst.symbol, "price": s(inst.price), "time": now}


def klines(inst: Instrument, interval_ms: int, limit: int, now: int) -> list[list[Any]]:
    start = now - now % interval_ms - (limit - 1) * interval_ms
    p = s(inst.price)
    return [[t, p, p, p, p, "100", t + interval_ms - 1, s(inst.price * 100), 10, "50",
             s(inst.price * 50), "0"] for t in range(start, now + 1, interval_ms)][-limit:]


def next_funding(inst: Instrument, now: int) -> int:
    period = inst.funding_interval_hours * 3_600_000
    return now - now % period + period


def premium_index(inst: Instrument, now: int) -> dict[str, Any]:
    return {"symbol": inst.symbol, "markPrice": s(inst.price), "indexPrice": s(inst.price),
            "estimatedSettlePrice": s(inst.price), "lastFundingRate": s(inst.funding_rate),
            "interestRate": "0.00010000", "nextFundingTime": next_funding(inst, now),
            "time": now}


def funding_info(inst: Instrument) -> dict[str, Any]:
    return {"symbol": inst.symbol, "adjustedFundingRateCap": "0.02000000",
            "adjustedFundingRateFloor": "-0.02000000",
            "fundingIntervalHours": inst.funding_interval_hours, "disclaimer": False}


def spot_order(order: Order, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
        "clientOrderId": order.client_id, "price": s(order.price), "origQty": s(order.qty),
        "executedQty": s(order.executed), "cummulativeQuoteQty": s(order.cum_quote),
        "status": order.status, "timeInForce": "GTC", "type": order.type, "side": order.side,
        "stopPrice": "0", "icebergQty": "0", "time": order.time,
        "updateTime": order.update_time, "isWorking": True, "workingTime": order.time,
        "origQuoteOrderQty": "0", "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if full:
        out["transactTime"] = order.update_time
        out["fills"] = [{"price": s(t.price), "qty": s(t.qty), "commission": s(t.commission),
                         "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                        for t in order.fills]
    return out


def perp_order(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.order_id, "symbol": order.symbol, "status": order.status,
        "clientOrderId": order.client_id, "price": s(order.price),
        "avgPrice": s(order.avg_price), "origQty": s(order.qty),
        "executedQty": s(order.executed), "cumQty": s(order.executed),
        "cumQuote": s(order.cum_quote), "timeInForce": "GTC", "type": order.type,
        "reduceOnly": order.reduce_only, "closePosition": False, "side": order.side,
        "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
        "priceProtect": False, "origType": order.type, "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": order.time,
        "updateTime": order.update_time,
    }


def algo_order(algo: AlgoOrder) -> dict[str, Any]:
    return {
        "algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "algoType": "CONDITIONAL",
        "orderType": algo.order_type, "symbol": algo.symbol, "side": algo.side,
        "positionSide": "BOTH", "timeInForce": "GTC", "quantity": s(algo.qty),
        "algoStatus": algo.status, "triggerPrice": s(algo.trigger_price), "price": "0",
        "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": algo.working_type, "priceMatch": "NONE",
        "closePosition": algo.close_position, "priceProtect": False,
        "reduceOnly": algo.reduce_only, "createTime": algo.create_time,
        "updateTime": algo.update_time, "triggerTime": algo.trigger_time, "goodTillDate": 0,
        "actualOrderId": "" if algo.actual_order_id is None else str(algo.actual_order_id),
        "actualPrice": "" if algo.actual_price is None else s(algo.actual_price),
    }


def user_trade(t: Trade) -> dict[str, Any]:
    return {"buyer": t.side == "BUY", "commission": s(t.commission),
            "commissionAsset": t.commission_asset, "id": t.trade_id, "maker": False,
            "orderId": t.order_id, "price": s(t.price), "qty": s(t.qty),
            "quoteQty": s(t.price * t.qty), "realizedPnl": s(t.realized_pnl), "side": t.side,
            "positionSide": "BOTH", "symbol": t.symbol, "time": t.time}


def spot_trade(t: Trade) -> dict[str, Any]:
    return {"symbol": t.symbol, "id": t.trade_id, "orderId": t.order_id, "orderListId": -1,
            "price": s(t.price), "qty": s(t.qty), "quoteQty": s(t.price * t.qty),
            "commission": s(t.commission), "commissionAsset": t.commission_asset,
            "time": t.time, "isBuyer": t.side == "BUY", "isMaker": False, "isBestMatch": True}


def liquidation_price(pos: Position) -> Decimal:
    """Isolated one-way liquidation price with a flat maintenance margin rate."""
    qty = abs(pos.qty)
    if pos.qty > 0:
        return max(ZERO, (pos.entry * qty - pos.margin) / (qty * (1 - MAINT_MARGIN_RATE)))
    return (pos.entry * qty + pos.margin) / (qty * (1 + MAINT_MARGIN_RATE))


def position_risk(book: Book, symbol: str, pos: Position) -> dict[str, Any]:
    mark = book.instruments[symbol].price
    notional = pos.qty * mark
    upnl = pos.qty * (mark - pos.entry)
    initial = abs(notional) / Decimal(book.leverage[symbol])
    isolated = book.margin_type[symbol] == "ISOLATED"
    return {
        "symbol": symbol, "positionSide": "BOTH", "positionAmt": s(pos.qty),
        "entryPrice": s(pos.entry), "breakEvenPrice": s(pos.entry), "markPrice": s(mark),
        "unRealizedProfit": s(upnl), "liquidationPrice": s(liquidation_price(pos)),
        "isolatedMargin": s(pos.margin + upnl) if isolated else "0",
        "notional": s(notional), "marginAsset": "USDT",
        "isolatedWallet": s(pos.margin) if isolated else "0",
        "initialMargin": s(initial), "maintMargin": s(abs(notional) * MAINT_MARGIN_RATE),
        "positionInitialMargin": s(initial), "openOrderInitialMargin": "0", "adl": 1,
        "bidNotional": "0", "askNotional": "0", "updateTime": pos.update_time,
    }


def futures_account(book: Book, now: int) -> dict[str, Any]:
    upnl = sum((p.qty * (book.instruments[s_].price - p.entry)
                for s_, p in book.positions.items()), ZERO)
    margin = sum((p.margin for p in book.positions.values()), ZERO)
    free = book.free_margin()
    asset = {"asset": "USDT", "walletBalance": s(book.wallet), "unrealizedProfit": s(upnl),
             "marginBalance": s(book.wallet + upnl), "maintMargin": "0",
             "initialMargin": s(margin), "positionInitialMargin": s(margin),
             "openOrderInitialMargin": "0", "crossWalletBalance": s(free),
             "crossUnPnl": "0", "availableBalance": s(free), "maxWithdrawAmount": s(free),
             "updateTime": now}
    return {"totalInitialMargin": s(margin), "totalMaintMargin": "0",
            "totalWalletBalance": s(book.wallet), "totalUnrealizedProfit": s(upnl),
            "totalMarginBalance": s(book.wallet + upnl),
            "totalPositionInitialMargin": s(margin), "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": s(free), "totalCrossUnPnl": "0",
            "availableBalance": s(free), "maxWithdrawAmount": s(free), "assets": [asset],
            "positions": [position_risk(book, sym, p) for sym, p in book.positions.items()]}


def futures_balance(book: Book, now: int) -> list[dict[str, Any]]:
    free = book.free_margin()
    return [{"accountAlias": "emu", "asset": "USDT", "balance": s(book.wallet),
             "crossWalletBalance": s(free), "crossUnPnl": "0", "availableBalance": s(free),
             "maxWithdrawAmount": s(free), "marginAvailable": True, "updateTime": now}]


def spot_account(book: Book, now: int) -> dict[str, Any]:
    balances = [{"asset": a, "free": s(v), "locked": "0"} for a, v in sorted(book.spot.items())]
    return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
            "brokered": False, "requireSelfTradePrevention": False, "updateTime": now,
            "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 1}


def leverage_bracket(inst: Instrument) -> dict[str, Any]:
    return {"symbol": inst.symbol, "notionalCoef": 1.0, "brackets": [
        {"bracket": 1, "initialLeverage": inst.max_leverage, "notionalCap": 50000,
         "notionalFloor": 0, "maintMarginRatio": float(MAINT_MARGIN_RATE), "cum": 0.0},
        {"bracket": 2, "initialLeverage": max(1, inst.max_leverage // 2),
         "notionalCap": 250000, "notionalFloor": 50000, "maintMarginRatio": 0.01,
         "cum": 250.0},
    ]}
