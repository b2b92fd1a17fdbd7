"""Account state of the emulated Binance venue: balances, positions, orders, algo orders.

Pure bookkeeping, no HTTP: the server calls these methods under its lock and turns
``VenueError`` into Binance's ``{"code": ..., "msg": ...}`` bodies. The rules copied are the
ones the bot can trip over (lot steps, notional floors, reduce-only, margin, duplicate client
ids, stops that would fire at once); the money maths is deliberately simple (one-way mode,
isolated margin, taker fees, no funding unless asked).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)
SPOT_FEE = Decimal("0.001")
PERP_FEE = Decimal("0.0005")
MAINT_MARGIN_RATE = Decimal("0.005")
STOP_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")


class VenueError(Exception):
    """A Binance error response: HTTP status plus the venue's own code and message."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status


@dataclass
class Instrument:
    """One base asset, listed on spot and/or USD-M perps against USDT."""

    base: str
    price: Decimal
    tick: Decimal = Decimal("0.01")
    spot_step: Decimal = Decimal("0.001")
    perp_step: Decimal = Decimal("0.01")
    spot_min_notional: Decimal = Decimal("5")
    perp_min_notional: Decimal = Decimal("5")
    funding_rate: Decimal = Decimal("0.0001")
    funding_interval_hours: int = 8
    max_leverage: int = 20
    spot: bool = True
    perp: bool = True
    #: most base units one market order can take from the book (None: unlimited); the rest
    #: of a bigger order expires unfilled, as a thin Binance book leaves it (``EXPIRED``)
    depth: Decimal | None = None

    @property
    def symbol(self) -> str:
        return f"{self.base}USDT"


@dataclass
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    market: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    time: int


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str
    market: str  # "spot" | "perp"
    side: str  # "BUY" | "SELL"
    type: str  # "MARKET" | "LIMIT"
    qty: Decimal
    price: Decimal
    time: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    reduce_only: bool = False
    update_time: int = 0
    fills: list[Trade] = field(default_factory=list)

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else ZERO


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    trigger_price: Decimal
    reduce_only: bool
    close_position: bool
    working_type: str
    create_time: int
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    actual_order_id: int | None = None
    actual_price: Decimal | None = None


@dataclass
class Position:
    qty: Decimal = ZERO  # signed base units
    entry: Decimal = ZERO
    margin: Decimal = ZERO  # isolated wallet
    update_time: int = 0


def _ms() -> int:
    return int(time.time() * 1000)


def on_step(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


class Book:
    """Everything one Binance account holds; not thread-safe (the server locks around it)."""

    def __init__(self, instruments: list[Instrument], spot_balances: dict[str, Decimal],
                 futures_wallet: Decimal, duplicate_scope: str = "open",
                 clock: Callable[[], int] = _ms) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.spot = {k: Decimal(v) for k, v in spot_balances.items()}
        self.wallet = Decimal(futures_wallet)
        self.duplicate_scope = duplicate_scope
        self.clock = clock
        self.positions: dict[str, Position] = {}
        self.leverage = {s: 20 for s in self.instruments}
        self.margin_type = {s: "CROSSED" for s in self.instruments}
        self.orders: dict[int, Order] = {}
        self.algos: dict[int, AlgoOrder] = {}
        self.trades: list[Trade] = []
        self.funding_history: list[tuple[str, Decimal, int]] = []
        #: universal transfers between the spot and USD-M wallets: (tranId, type, amount, ms)
        self.transfers: list[tuple[int, str, Decimal, int]] = []
        self._ids = itertools.count(1000)

    # -- lookups ---------------------------------------------------------------------------
    def instrument(self, symbol: str | None, market: str) -> Instrument:
        inst = self.instruments.get(symbol or "")
        if inst is None or not (inst.spot if market == "spot" else inst.perp):
            raise VenueError(-1121, "Invalid symbol.")
        return inst

    def find_order(self, market: str, symbol: str, order_id: str | None,
                   client_id: str | None) -> Order:
        for order in reversed(list(self.orders.values())):
            if order.market != market or order.symbol != symbol:
                continue
            if (order_id is not None and str(order.order_id) == order_id) or (
                    order_id is None and client_id is not None and order.client_id == client_id):
                return order
        raise VenueError(-2013, "Order does not exist.")

    def find_algo(self, algo_id: str | None, client_algo_id: str | None) -> AlgoOrder:
        for algo in reversed(list(self.algos.values())):
            if (algo_id is not None and str(algo.algo_id) == algo_id) or (
                    algo_id is None and algo.client_algo_id == client_algo_id):
                return algo
        raise VenueError(-2013, "Order does not exist.")

    def transfer(self, kind: str, asset: str, amount: Decimal, now: int) -> int:
        """``MAIN_UMFUTURE`` (spot -> USD-M) or ``UMFUTURE_MAIN``; USDT only, as the bot uses."""
        if asset != "USDT" or amount <= 0:
            raise VenueError(-1102, "Mandatory parameter 'amount' was not sent, was empty/null, "
                             "or malformed.")
        if kind == "MAIN_UMFUTURE":
            if self.spot.get("USDT", ZERO) < amount:
                raise VenueError(-5002, "You have insufficient balance.")
            self.spot["USDT"] -= amount
            self.wallet += amount
        elif kind == "UMFUTURE_MAIN":
            if self.free_margin() < amount:
                raise VenueError(-5002, "You have insufficient balance.")
            self.wallet -= amount
            self.spot["USDT"] = self.spot.get("USDT", ZERO) + amount
        else:
            raise VenueError(-1100, f"Illegal characters found in parameter 'type'; {kind}")
        tran_id = next(self._ids)
        self.transfers.append((tran_id, kind, amount, now))
        return tran_id

    def free_margin(self) -> Decimal:
        return self.wallet - sum((p.margin for p in self.positions.values()), ZERO)

    def _duplicate(self, market: str, client_id: str) -> bool:
        return any(o.client_id == client_id and o.market == market
                   and (self.duplicate_scope == "all" or o.status == "NEW")
                   for o in self.orders.values())

    # -- spot --------------------------------------------------------------------------------
    def new_order(self, market: str, p: dict[str, str]) -> Order:
        inst = self.instrument(p.get("symbol"), market)
        side, otype = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise VenueError(-1117, "Invalid side.")
        if otype not in ("MARKET", "LIMIT"):
            raise VenueError(-1116, "Invalid orderType.")
        cid = p.get("newClientOrderId") or f"emu-{next(self._ids)}"
        if self._duplicate(market, cid):
            if market == "spot":
                raise VenueError(-2010, "Duplicate order sent.")
            raise VenueError(-4116, "ClientOrderId is duplicated.")
        if "quantity" not in p:
            raise VenueError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null,"
                             " or malformed.")
        qty = Decimal(p["quantity"])
        step = inst.spot_step if market == "spot" else inst.perp_step
        if qty <= 0 or not on_step(qty, step):
            raise VenueError(-1013, "Filter failure: LOT_SIZE")
        price = Decimal(p.get("price", "0")) if otype == "LIMIT" else ZERO
        if otype == "LIMIT" and (price <= 0 or not on_step(price, inst.tick)):
            raise VenueError(-1013, "Filter failure: PRICE_FILTER")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        if market == "spot" and "reduceOnly" in p:
            raise VenueError(-1104, "Not all sent parameters were read.")
        now = self.clock()
        order = Order(next(self._ids), cid, inst.symbol, market, side, otype, qty, price, now,
                      reduce_only=reduce_only, update_time=now)
        marketable = otype == "MARKET" or (price >= inst.price if side == "BUY"
                                           else price <= inst.price)
        if marketable:
            self._fill(order, inst, inst.price)  # raises before the order is recorded
        self.orders[order.order_id] = order
        return order

    def _fill(self, order: Order, inst: Instrument, price: Decimal) -> None:
        qty = order.qty
        if order.type == "MARKET" and inst.depth is not None:
            qty = min(qty, inst.depth)
        if order.market == "spot":
            trade = self._spot_fill(order, inst, price, qty)
        else:
            trade = self._perp_fill(order, inst, price, qty)
        order.fills.append(trade)
        order.executed, order.cum_quote = trade.qty, trade.qty * price
        closed = order.reduce_only and self.positions.get(inst.symbol, Position()).qty == 0
        done = trade.qty == order.qty or closed
        order.status, order.update_time = ("FILLED" if done else "EXPIRED"), trade.time
        self.trades.append(trade)

    def _spot_fill(self, order: Order, inst: Instrument, price: Decimal,
                   qty: Decimal) -> Trade:
        cost = qty * price
        if cost < inst.spot_min_notional:
            raise VenueError(-1013, "Filter failure: NOTIONAL")
        if order.side == "BUY":
            if self.spot.get("USDT", ZERO) < cost:
                raise VenueError(-2010, "Account has insufficient balance for requested action.")
            fee, fee_asset = qty * SPOT_FEE, inst.base
            self.spot["USDT"] -= cost
            self.spot[inst.base] = self.spot.get(inst.base, ZERO) + qty - fee
        else:
            if self.spot.get(inst.base, ZERO) < qty:
                raise VenueError(-2010, "Account has insufficient balance for requested action.")
            fee, fee_asset = cost * SPOT_FEE, "USDT"
            self.spot[inst.base] -= qty
            self.spot["USDT"] = self.spot.get("USDT", ZERO) + cost - fee
        return Trade(next(self._ids), order.order_id, inst.symbol, "spot", order.side, price,
                     qty, fee, fee_asset, ZERO, self.clock())

    def _perp_fill(self, order: Order, inst: Instrument, price: Decimal,
                   qty: Decimal) -> Trade:
        pos = self.positions.get(inst.symbol, Position())
        direction = Decimal(1) if order.side == "BUY" else Decimal(-1)
        if order.reduce_only:
            if pos.qty == 0 or (pos.qty > 0) == (direction > 0):
                raise VenueError(-2022, "ReduceOnly Order is rejected.")
            if qty >= abs(pos.qty):  # reduce-only shrinks to the position (origQty too)
                qty = order.qty = abs(pos.qty)
        elif qty * price < inst.perp_min_notional:
            raise VenueError(-4164, f"Order's notional must be no smaller than "
                             f"{inst.perp_min_notional} (unless you choose reduce only).")
        closing = min(qty, abs(pos.qty)) if pos.qty and (pos.qty > 0) != (direction > 0) else ZERO
        opening = qty - closing
        fee = qty * price * PERP_FEE
        lev = Decimal(self.leverage[inst.symbol])
        if opening and opening * price / lev + fee > self.free_margin():
            raise VenueError(-2019, "Margin is insufficient.")
        realized = ZERO
        if closing:
            sign = Decimal(1) if pos.qty > 0 else Decimal(-1)
            realized = closing * (price - pos.entry) * sign
            pos.margin -= pos.margin * closing / abs(pos.qty)
            pos.qty -= closing * sign
            self.wallet += realized
        if opening:
            held = abs(pos.qty)
            pos.entry = (held * pos.entry + opening * price) / (held + opening)
            pos.qty += opening * direction
            pos.margin += opening * price / lev
        self.wallet -= fee
        pos.update_time = self.clock()
        if pos.qty == 0:
            self.positions.pop(inst.symbol, None)
            self._cancel_reduce_only_algos(inst.symbol)
        else:
            self.positions[inst.symbol] = pos
        return Trade(next(self._ids), order.order_id, inst.symbol, "perp", order.side, price,
                     qty, fee, "USDT", realized, pos.update_time)

    def cancel_order(self, order: Order) -> Order:
        if order.status != "NEW":
            raise VenueError(-2011, "Unknown order sent.")
        order.status, order.update_time = "CANCELED", self.clock()
        return order

    # -- algo (conditional) orders -------------------------------------------------------------
    def new_algo(self, p: dict[str, str]) -> AlgoOrder:
        inst = self.instrument(p.get("symbol"), "perp")
        if p.get("algoType") != "CONDITIONAL":
            raise VenueError(-1102, "Mandatory parameter 'algoType' was not sent, was empty/null,"
                             " or malformed.")
        otype, side = p.get("type", ""), p.get("side", "")
        if otype not in STOP_TYPES:
            raise VenueError(-1116, "Invalid orderType.")
        if side not in ("BUY", "SELL"):
            raise VenueError(-1117, "Invalid side.")
        if "triggerPrice" not in p:
            raise VenueError(-1102, "Mandatory parameter 'triggerPrice' was not sent, was "
                             "empty/null, or malformed.")
        trigger = Decimal(p["triggerPrice"])
        if trigger <= 0 or not on_step(trigger, inst.tick):
            raise VenueError(-4014, "Price not increased by tick size.")
        close = p.get("closePosition", "false").lower() == "true"
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        if close and reduce_only:
            raise VenueError(-1106, "Parameter 'reduceOnly' sent when not required.")
        qty = Decimal(p.get("quantity", "0"))
        if not close and (qty <= 0 or not on_step(qty, inst.perp_step)):
            raise VenueError(-1013, "Filter failure: LOT_SIZE")
        cid = p.get("clientAlgoId") or f"emu-algo-{next(self._ids)}"
        if any(a.client_algo_id == cid and (self.duplicate_scope == "all" or a.status == "NEW")
               for a in self.algos.values()):
            raise VenueError(-4116, "ClientOrderId is duplicated.")
        if self._fires(otype, side, trigger, inst.price):
            raise VenueError(-2021, "Order would immediately trigger.")
        now = self.clock()
        algo = AlgoOrder(next(self._ids), cid, inst.symbol, side, otype, qty, trigger,
                         reduce_only, close, p.get("workingType", "CONTRACT_PRICE"), now,
                         update_time=now)
        self.algos[algo.algo_id] = algo
        return algo

    @staticmethod
    def _fires(otype: str, side: str, trigger: Decimal, price: Decimal) -> bool:
        rising = (side == "BUY") == (otype == "STOP_MARKET")
        return price >= trigger if rising else price <= trigger

    def cancel_algo(self, algo: AlgoOrder) -> AlgoOrder:
        if algo.status != "NEW":
            raise VenueError(-2011, "Unknown order sent.")
        algo.status, algo.update_time = "CANCELED", self.clock()
        return algo

    def _cancel_reduce_only_algos(self, symbol: str) -> None:
        """Binance drops reduce-only and close-position stops once the position is flat."""
        for algo in self.algos.values():
            if algo.symbol == symbol and algo.status == "NEW" and (
                    algo.reduce_only or algo.close_position):
                algo.status, algo.update_time = "CANCELED", self.clock()

    # -- market moves --------------------------------------------------------------------------
    def set_price(self, symbol: str, price: Decimal) -> list[AlgoOrder]:
        """Move the price, fire every stop it crosses and fill resting limits it reaches."""
        inst = self.instruments[symbol]
        inst.price = price
        fired: list[AlgoOrder] = []
        for algo in list(self.algos.values()):
            if algo.symbol == symbol and algo.status == "NEW" and self._fires(
                    algo.order_type, algo.side, algo.trigger_price, price):
                self._trigger(algo, inst)
                fired.append(algo)
        for order in list(self.orders.values()):
            if order.symbol == symbol and order.status == "NEW" and order.type == "LIMIT" and (
                    price <= order.price if order.side == "BUY" else price >= order.price):
                try:
                    self._fill(order, inst, order.price)
                except VenueError:
                    order.status, order.update_time = "EXPIRED", self.clock()
        return fired

    def _trigger(self, algo: AlgoOrder, inst: Instrument) -> None:
        """The stop becomes a market order (the child ``actualOrderId``) and finishes."""
        now = self.clock()
        algo.trigger_time = algo.update_time = now
        pos = self.positions.get(inst.symbol)
        qty = abs(pos.qty) if algo.close_position and pos is not None else algo.qty
        child = Order(next(self._ids), f"emu-algo-child-{algo.algo_id}", inst.symbol, "perp",
                      algo.side, "MARKET", qty, ZERO, now,
                      reduce_only=algo.reduce_only or algo.close_position, update_time=now)
        try:
            self._fill(child, inst, inst.price)
        except VenueError:
            algo.status = "EXPIRED"
            return
        self.orders[child.order_id] = child
        algo.status, algo.actual_order_id, algo.actual_price = "FINISHED", child.order_id, \
            inst.price

    def settle_funding(self, symbol: str) -> Decimal:
        """Pay one funding period on ``symbol`` at its current rate; returns the wallet change."""
        inst = self.instruments[symbol]
        pos = self.positions.get(symbol)
        payment = -(pos.qty * inst.price * inst.funding_rate) if pos else ZERO
        self.wallet += payment
        self.funding_history.append((symbol, inst.funding_rate, self.clock()))
        return payment
