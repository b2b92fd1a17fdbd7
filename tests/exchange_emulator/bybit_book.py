"""Account state of the emulated Bybit v5 venue: one unified trading account (UTA).

Pure bookkeeping, no HTTP: ``bybit_server`` calls these methods under its lock and turns
``BybitError`` into Bybit's ``{"retCode": ..., "retMsg": ...}`` envelope. One wallet holds
every coin; USDT is spot cash and perp collateral at once (position margin is *used*, not
moved). Linear perps are one-way (``positionIdx`` 0) with per-symbol leverage; conditional
orders keep their order id and link id when they fire (Untriggered -> Filled), unlike
Binance's algo orders. Error codes are Bybit's, so ccxt maps them to the same exception
classes as against the live venue.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.exchange_emulator.bybit_models import (
    LINK_ID,
    PERP_FEE,
    QUOTE,
    SPOT_FEE,
    ZERO,
    BybitError,
    BybitInstrument,
    BybitOrder,
    Execution,
    Position,
    flag,
    now_ms,
    number,
    text,
)


class BybitBook:
    """Everything one unified account holds; not thread-safe (the server locks around it).

    ``duplicate_scope="all"`` makes every orderLinkId single-use (Bybit keeps them unique
    per account and category); ``"open"`` only refuses ids of open orders.
    """

    def __init__(self, instruments: list[BybitInstrument], balances: dict[str, Decimal],
                 duplicate_scope: str = "all", clock: Callable[[], int] = now_ms) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.wallet = {k: Decimal(v) for k, v in balances.items()}
        self.wallet.setdefault(QUOTE, ZERO)
        self.duplicate_scope = duplicate_scope
        self.clock = clock
        self.margin_mode = "REGULAR_MARGIN"
        #: ``order/history`` shows an order only this long after its last change
        self.history_lag_ms = 0
        self.leverage = {s: Decimal(10) for s in self.instruments}
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, BybitOrder] = {}
        self.executions: list[Execution] = []
        self.funding_history: list[tuple[str, Decimal, int]] = []
        self._ids = itertools.count(1)

    # -- lookups -----------------------------------------------------------------------------
    def instrument(self, symbol: str | None, category: str) -> BybitInstrument:
        inst = self.instruments.get(symbol or "")
        if category not in ("spot", "linear"):
            raise BybitError(10001, f"params error: Category is invalid ({category})")
        if inst is None or not (inst.spot if category == "spot" else inst.perp):
            if category == "spot":
                raise BybitError(170121, "Invalid symbol.")
            raise BybitError(10001, "params error: symbol invalid")
        return inst

    def new_id(self, category: str) -> str:
        n = next(self._ids)
        if category == "spot":
            return str(1_900_000_000_000_000_000 + n)
        return f"{n:08x}-5e1c-4b0a-9d7e-{n:012x}"

    def position_im(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return abs(pos.qty) * pos.entry / self.leverage[symbol] if pos else ZERO

    def order_im(self) -> Decimal:
        return sum((o.qty * o.price / self.leverage[o.symbol] for o in self.orders.values()
                    if o.category == "linear" and o.is_open and o.order_type == "Limit"
                    and not o.reduce_only and not o.conditional), ZERO)

    def locked(self, coin: str) -> Decimal:
        """Coins held by resting spot limit orders (buys lock USDT, sells the base)."""
        total = ZERO
        for o in self.orders.values():
            if o.category == "spot" and o.is_open and o.order_type == "Limit":
                base = self.instruments[o.symbol].base
                if o.side == "Buy" and coin == QUOTE:
                    total += (o.qty - o.cum_qty) * o.price
                elif o.side == "Sell" and coin == base:
                    total += o.qty - o.cum_qty
        return total

    def upnl(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return pos.qty * (self.instruments[symbol].price - pos.entry) if pos else ZERO

    def available(self, coin: str) -> Decimal:
        out = self.wallet.get(coin, ZERO) - self.locked(coin)
        if coin == QUOTE:
            out -= sum((self.position_im(s) for s in self.positions), ZERO) + self.order_im()
        return out

    def find(self, category: str, order_id: str | None, link_id: str | None) -> BybitOrder:
        for order in reversed(list(self.orders.values())):
            if order.category == category and (
                    (order_id is not None and order.order_id == order_id)
                    or (order_id is None and link_id is not None and order.link_id == link_id)):
                return order
        raise BybitError(170213 if category == "spot" else 110001, "Order does not exist.")

    # -- orders ------------------------------------------------------------------------------
    def create_order(self, p: dict[str, Any]) -> BybitOrder:
        category = text(p, "category") or ""
        inst = self.instrument(text(p, "symbol"), category)
        spot = category == "spot"
        side, otype = text(p, "side"), text(p, "orderType")
        if side not in ("Buy", "Sell"):
            raise BybitError(10001, "params error: Side invalid")
        if otype not in ("Market", "Limit"):
            raise BybitError(10001, "params error: OrderType invalid")
        link = text(p, "orderLinkId") or ""
        if link and not LINK_ID.match(link):
            raise BybitError(10001, "params error: orderLinkId invalid")
        if link and any(o.link_id == link and o.category == category
                        and (self.duplicate_scope == "all" or o.is_open)
                        for o in self.orders.values()):
            if spot:
                raise BybitError(170141, "Duplicate clientOrderId.")
            raise BybitError(110072, "OrderLinkedID is duplicate")
        qty = number(p, "qty", 170130 if spot else 10001)
        unit = text(p, "marketUnit") or ""
        if spot and otype == "Market" and (unit == "quoteCoin" or (not unit and side == "Buy")):
            unit = "quoteCoin"
            qty = (qty / inst.price) // inst.spot_step * inst.spot_step
        elif spot and otype == "Market":
            unit = "baseCoin"
        self._check_qty(inst, spot, qty)
        price = ZERO
        if otype == "Limit":
            price = number(p, "price")
            if price <= 0 or price % inst.tick:
                raise BybitError(170134 if spot else 10001,
                                 "Order price has too many decimals." if spot
                                 else "params error: price invalid")
        now = self.clock()
        order = BybitOrder(self.new_id(category), link, category, inst.symbol, side, otype,
                           qty, price, now, reduce_only=not spot and flag(p, "reduceOnly"),
                           close_on_trigger=flag(p, "closeOnTrigger"), market_unit=unit,
                           time_in_force="IOC" if otype == "Market" else
                           (text(p, "timeInForce") or "GTC"),
                           last_price_on_created=inst.price, updated=now)
        if text(p, "triggerPrice") is not None:
            self._arm(order, inst, p)
            self.orders[order.order_id] = order
            return order
        if otype == "Market" or (price >= inst.price if side == "Buy" else price <= inst.price):
            self._fill(order, inst, inst.price if otype == "Market" else price)
        elif spot and self.available(QUOTE if side == "Buy" else inst.base) < (
                qty * price if side == "Buy" else qty):
            raise BybitError(170131, "Insufficient balance.")
        self.orders[order.order_id] = order
        return order

    def _check_qty(self, inst: BybitInstrument, spot: bool, qty: Decimal) -> None:
        step = inst.spot_step if spot else inst.perp_step
        minimum = inst.spot_min_qty if spot else inst.perp_min_qty
        if qty <= 0 or qty % step:
            raise BybitError(170137 if spot else 10001,
                             "Order quantity has too many decimals." if spot
                             else "params error: qty invalid (not a multiple of qtyStep)")
        if qty < minimum:
            raise BybitError(170136 if spot else 10001,
                             "Order quantity lower than the minimum." if spot
                             else "The number of contracts exceeds minimum limit allowed")

    def _arm(self, order: BybitOrder, inst: BybitInstrument, p: dict[str, Any]) -> None:
        """A conditional order: waits Untriggered until the price crosses triggerPrice."""
        if order.category == "spot":
            raise BybitError(10001, "emulator: spot conditional orders are not emulated")
        trigger = number(p, "triggerPrice")
        direction = text(p, "triggerDirection")
        if direction not in ("1", "2"):
            raise BybitError(10001, "params error: TriggerDirection invalid")
        if trigger <= 0 or trigger % inst.tick:
            raise BybitError(10001, "params error: triggerPrice invalid")
        by = text(p, "triggerBy") or "LastPrice"
        if direction == "1" and trigger <= inst.price:
            raise BybitError(110092, f"expect Rising, but trigger_price[{trigger}] <= "
                             f"current[{inst.price}]??{by}")
        if direction == "2" and trigger >= inst.price:
            raise BybitError(110093, f"expect Falling, but trigger_price[{trigger}] >= "
                             f"current[{inst.price}]??{by}")
        order.trigger_price, order.trigger_direction = trigger, int(direction)
        order.trigger_by, order.status = by, "Untriggered"

    def _fill(self, order: BybitOrder, inst: BybitInstrument, price: Decimal) -> None:
        """Fill all of ``order`` at ``price`` or raise before anything changed."""
        if order.category == "spot":
            qty, fee, coin, closed = self._spot_fill(order, inst, price)
        else:
            qty, fee, coin, closed = self._perp_fill(order, inst, price)
        now = self.clock()
        order.cum_qty, order.cum_value = qty, qty * price
        order.cum_fee, order.fee_coin = fee, coin
        order.status, order.updated = "Filled", now
        self.executions.append(Execution(self.new_id("linear"), order, price, qty, fee, coin,
                                         closed, now))

    def _spot_fill(self, order: BybitOrder, inst: BybitInstrument,
                   price: Decimal) -> tuple[Decimal, Decimal, str, Decimal]:
        qty, cost = order.qty, order.qty * price
        if cost < inst.spot_min_amount:
            raise BybitError(170140, "Order value exceeded lower limit.")
        if order.side == "Buy":
            if self.available(QUOTE) < cost:
                raise BybitError(170131, "Insufficient balance.")
            fee, coin = qty * SPOT_FEE, inst.base  # spot buys pay the fee in the coin bought
            self.wallet[QUOTE] -= cost
            self.wallet[inst.base] = self.wallet.get(inst.base, ZERO) + qty - fee
        else:
            if self.available(inst.base) < qty:
                raise BybitError(170131, "Insufficient balance.")
            fee, coin = cost * SPOT_FEE, QUOTE
            self.wallet[inst.base] -= qty
            self.wallet[QUOTE] += cost - fee
        return qty, fee, coin, ZERO

    def _perp_fill(self, order: BybitOrder, inst: BybitInstrument,
                   price: Decimal) -> tuple[Decimal, Decimal, str, Decimal]:
        pos = self.positions.get(inst.symbol, Position(created=self.clock()))
        direction = Decimal(1) if order.side == "Buy" else Decimal(-1)
        qty = order.qty
        if order.reduce_only:
            if pos.qty == 0 or (pos.qty > 0) == (direction > 0):
                raise BybitError(110017, "Reduce-only rule not satisfied")
            qty = min(qty, abs(pos.qty))
        elif qty * price < inst.perp_min_notional:
            raise BybitError(110094, f"Order does not meet minimum order value "
                             f"{inst.perp_min_notional}USDT")
        closing = min(qty, abs(pos.qty)) if pos.qty and (pos.qty > 0) != (direction > 0) \
            else ZERO
        opening = qty - closing
        fee = qty * price * PERP_FEE
        lev = self.leverage[inst.symbol]
        if opening and opening * price / lev + fee > self.available(QUOTE):
            raise BybitError(110007, "ab not enough for new order")
        if closing:
            sign = Decimal(1) if pos.qty > 0 else Decimal(-1)
            realised = closing * (price - pos.entry) * sign
            pos.qty -= closing * sign
            pos.realised += realised
            self.wallet[QUOTE] += realised
        if opening:
            held = abs(pos.qty)
            pos.entry = (held * pos.entry + opening * price) / (held + opening)
            pos.qty += opening * direction
        self.wallet[QUOTE] -= fee
        pos.realised -= fee
        pos.updated = self.clock()
        if pos.qty == 0:
            self.positions.pop(inst.symbol, None)
            self._deactivate_reduce_only(inst.symbol)
        else:
            self.positions[inst.symbol] = pos
        return qty, fee, QUOTE, closing

    def cancel(self, p: dict[str, Any]) -> BybitOrder:
        category = text(p, "category") or ""
        inst = self.instrument(text(p, "symbol"), category)
        order_id, link = text(p, "orderId"), text(p, "orderLinkId")
        if order_id is None and link is None:
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        order = self.find(category, order_id, link)
        if order.symbol != inst.symbol or not order.is_open:
            raise BybitError(170213 if category == "spot" else 110001,
                             "Order does not exist.")
        order.status = "Deactivated" if order.conditional else "Cancelled"
        order.cancel_type, order.updated = "CancelByUser", self.clock()
        return order

    def _deactivate_reduce_only(self, symbol: str) -> None:
        """A flat position takes its reduce-only conditional orders with it."""
        for order in self.orders.values():
            if order.symbol == symbol and order.category == "linear" and order.is_open \
                    and order.reduce_only:
                order.status, order.updated = "Deactivated", self.clock()
                order.cancel_type = "CancelByReduceOnly"

    # -- account settings --------------------------------------------------------------------
    def set_leverage(self, p: dict[str, Any]) -> None:
        if text(p, "category") != "linear":
            raise BybitError(10001, "params error: category only support linear")
        inst = self.instrument(text(p, "symbol"), "linear")
        buy, sell = number(p, "buyLeverage"), number(p, "sellLeverage")
        if buy != sell:
            raise BybitError(10001, "params error: buy leverage must equal sell leverage in "
                             "one-way mode")
        if not 1 <= buy <= inst.max_leverage or buy % Decimal("0.01"):
            raise BybitError(10001, f"params error: leverage {buy} invalid")
        if buy == self.leverage[inst.symbol]:
            raise BybitError(110043, "Set leverage not modified")
        self.leverage[inst.symbol] = buy

    def set_margin_mode(self, p: dict[str, Any]) -> dict[str, Any]:
        wanted = text(p, "setMarginMode")
        if wanted not in ("ISOLATED_MARGIN", "REGULAR_MARGIN", "PORTFOLIO_MARGIN"):
            raise BybitError(10001, "params error: setMarginMode invalid")
        if wanted != self.margin_mode and (self.positions or any(
                o.is_open and o.category == "linear" for o in self.orders.values())):
            raise BybitError(3400045, "Set margin mode failed", result={"reasons": [
                {"reasonCode": "3400005", "reasonMsg": "Positions or open orders exist."}]})
        self.margin_mode = wanted
        return {"reasons": []}

    # -- market moves --------------------------------------------------------------------------
    def set_price(self, symbol: str, price: Decimal) -> list[BybitOrder]:
        """Move last and mark price, fire the conditional orders it crosses and fill the
        resting limits it reaches. Returns the fired conditional orders."""
        inst = self.instruments[symbol]
        inst.price = price
        fired = []
        for order in list(self.orders.values()):
            if order.symbol != symbol or not order.is_open:
                continue
            if order.conditional:
                assert order.trigger_price is not None
                rising = order.trigger_direction == 1
                if price >= order.trigger_price if rising else price <= order.trigger_price:
                    fired.append(order)
                    order.status = "Triggered"
                    self._execute(order, inst, price, failed="Rejected")
            elif order.order_type == "Limit" and (
                    price <= order.price if order.side == "Buy" else price >= order.price):
                self._execute(order, inst, order.price, failed="Cancelled")
        return fired

    def _execute(self, order: BybitOrder, inst: BybitInstrument, price: Decimal,
                 failed: str) -> None:
        try:
            self._fill(order, inst, price)
        except BybitError:
            order.status, order.updated = failed, self.clock()

    def settle_funding(self, symbol: str) -> Decimal:
        """Pay one funding period at the current rate; returns the wallet change."""
        inst = self.instruments[symbol]
        pos = self.positions.get(symbol)
        payment = -(pos.qty * inst.price * inst.funding_rate) if pos else ZERO
        self.wallet[QUOTE] += payment
        self.funding_history.append((symbol, inst.funding_rate, self.clock()))
        return payment
