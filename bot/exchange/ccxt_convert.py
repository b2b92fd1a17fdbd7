"""ccxt's unified structures -> the core's value types. Pure functions, no I/O.

Amounts crossing the port are base units; ccxt amounts on contract markets are contracts, so
every conversion multiplies by ``contractSize`` (1 on Binance USD-M, e.g. 0.01 BTC on OKX).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ccxt.base.decimal_to_precision import TICK_SIZE

from bot.domain.models import (
    QUOTE,
    FundingRate,
    MarketInfo,
    MarketKind,
    OrderResult,
    OrderStatus,
    OrderType,
    PerpPosition,
    Side,
)
from bot.exchange.venues import dec

_STATUSES = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


def step_of(precision: object, precision_mode: int) -> Decimal:
    """A precision value as a step: ccxt 4 venues use TICK_SIZE (the step itself); older
    DECIMAL_PLACES venues give a digit count."""
    if precision is None:
        return Decimal(0)
    if precision_mode == TICK_SIZE:
        return dec(precision)
    return Decimal(1).scaleb(-int(float(str(precision))))


def contract_size(market: dict[str, Any]) -> Decimal:
    size = market.get("contractSize") if market.get("contract") else None
    return dec(size) if size else Decimal(1)


def market_info(token: str, kind: MarketKind, market: dict[str, Any], precision_mode: int,
                leverage_cap: Decimal) -> MarketInfo:
    """Steps and floors in base units; ``max_leverage`` is the lower of our cap and the
    venue's (Binance leaves ``limits.leverage`` empty, so the cap stands alone there)."""
    size = contract_size(market)
    limits = market.get("limits") or {}
    amount_step = step_of((market.get("precision") or {}).get("amount"), precision_mode) * size
    price_step = step_of((market.get("precision") or {}).get("price"), precision_mode)
    min_amount = dec((limits.get("amount") or {}).get("min")) * size
    max_leverage = None
    if kind is MarketKind.PERP:
        venue_max = (limits.get("leverage") or {}).get("max")
        max_leverage = min(leverage_cap, dec(venue_max)) if venue_max else leverage_cap
    return MarketInfo(
        token=token,
        market=kind,
        amount_step=amount_step,
        price_step=price_step,
        min_amount=max(min_amount, amount_step),
        min_notional=dec((limits.get("cost") or {}).get("min")),
        contract_size=size,
        max_leverage=max_leverage,
    )


def ms_to_datetime(ms: object) -> datetime | None:
    if ms is None or ms == "":
        return None
    return datetime.fromtimestamp(int(float(str(ms))) / 1000, UTC)


def is_trigger_order(raw: dict[str, Any]) -> bool:
    info = raw.get("info") or {}
    # by value, not key: OKX sends ``algoId: ""`` on every regular order
    return (raw.get("triggerPrice") is not None or bool(info.get("algoId"))
            or "algoStatus" in info)


def order_status(raw: dict[str, Any], filled: Decimal) -> OrderStatus:
    status = str(raw.get("status") or "").lower()
    if status == "open":
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
    if status == "closed":
        return OrderStatus.TRIGGERED if is_trigger_order(raw) else OrderStatus.FILLED
    return _STATUSES.get(status, OrderStatus.UNKNOWN)


def fee_in_quote(raw: dict[str, Any], base: str, average: Decimal | None) -> Decimal | None:
    """Fees paid, in quote. A fee in the base asset (Binance spot buys) is valued at the
    fill price; fees in a third asset (BNB discounts) are left out. None: venue said nothing."""
    fees = list(raw.get("fees") or [])
    if not fees and raw.get("fee"):
        fees = [raw["fee"]]
    if not fees:
        return None
    total = Decimal(0)
    for fee in fees:
        cost, currency = dec((fee or {}).get("cost")), (fee or {}).get("currency")
        if currency == QUOTE:
            total += cost
        elif currency == base and average:
            total += cost * average
    return total


def order_result(raw: dict[str, Any], *, client_id: str, token: str, kind: MarketKind,
                 size: Decimal, fee: Decimal | None = None) -> OrderResult:
    """``client_id`` is the intent's id (the venue may hold a sanitised copy of it)."""
    filled = dec(raw.get("filled")) * size
    average = dec(raw.get("average")) if raw.get("average") else None
    if average is not None and average <= 0:
        average = None
    trigger = raw.get("triggerPrice")
    if fee is None:
        fee = fee_in_quote(raw, token, average)
    if is_trigger_order(raw):
        order_type = OrderType.STOP_MARKET
    elif str(raw.get("type") or "").lower() == "limit":
        order_type = OrderType.LIMIT
    else:
        order_type = OrderType.MARKET
    return OrderResult(
        client_id=client_id,
        exchange_id=str(raw.get("id") or ""),
        token=token,
        market=kind,
        side=Side(str(raw.get("side") or "buy").lower()),
        order_type=order_type,
        status=order_status(raw, filled),
        amount=dec(raw.get("amount")) * size,
        filled=filled,
        average_price=average,
        fee=fee or Decimal(0),
        trigger_price=dec(trigger) if trigger is not None else None,
        reduce_only=bool(raw.get("reduceOnly")),
        timestamp=ms_to_datetime(raw.get("timestamp")),
    )


def with_child_fill(result: OrderResult, child: OrderResult) -> OrderResult:
    """A fired stop reported with the fill of the market order it became."""
    return replace(result, filled=child.filled, average_price=child.average_price,
                   fee=child.fee, status=OrderStatus.TRIGGERED)


def perp_position(token: str, raw: dict[str, Any], size: Decimal,
                  leverage_hint: Decimal | None, stop: Decimal | None) -> PerpPosition | None:
    """None for a flat or unreadable entry. Leverage: the venue's field if it has one (Binance
    v3 positionRisk does not), else notional / initial margin, else the last value we set."""
    contracts = dec(raw.get("contracts"))
    side = str(raw.get("side") or "")
    if contracts == 0 or side not in ("long", "short"):
        return None
    amount = contracts * size * (1 if side == "long" else -1)
    leverage = dec(raw.get("leverage")) if raw.get("leverage") else None
    notional, initial = dec(raw.get("notional")), dec(raw.get("initialMargin"))
    if leverage is None and notional > 0 and initial > 0:
        leverage = (abs(notional) / initial).quantize(Decimal("0.01"))
    mark = dec(raw.get("markPrice")) or dec(raw.get("entryPrice"))
    liquidation = dec(raw.get("liquidationPrice")) if raw.get("liquidationPrice") else None
    return PerpPosition(
        token=token,
        amount=amount,
        entry_price=dec(raw.get("entryPrice")),
        leverage=leverage or leverage_hint or Decimal(1),
        mark_price=mark,
        liquidation_price=liquidation if liquidation and liquidation > 0 else None,
        stop_price=stop,
    )


def with_stop(position: PerpPosition, stops: list[OrderResult]) -> PerpPosition:
    """``position`` with the trigger of the live reduce-only stop closing it: for a long the
    highest sell stop, for a short the lowest buy stop (the one that fires first)."""
    closing = Side.SELL if position.amount > 0 else Side.BUY
    triggers = [s.trigger_price for s in stops
                if s.token == position.token and s.side is closing and s.reduce_only
                and s.trigger_price is not None
                and s.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)]
    if not triggers:
        return position
    return replace(position, stop_price=max(triggers) if position.amount > 0 else min(triggers))


def funding_rate(token: str, raw: dict[str, Any], hours: float) -> FundingRate:
    return FundingRate(
        token=token,
        hourly_rate=float(dec(raw.get("fundingRate"))) / hours,
        interval_hours=hours,
        next_settlement=ms_to_datetime(raw.get("fundingTimestamp")),
    )


def interval_from_rate(raw: dict[str, Any]) -> float | None:
    """OKX-style: the gap between this settlement and the next one, when both are given."""
    this, after = raw.get("fundingTimestamp"), raw.get("nextFundingTimestamp")
    if this and after and int(after) > int(this):
        return (int(after) - int(this)) / 3_600_000
    return None
