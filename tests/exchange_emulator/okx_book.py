"""Account state of the emulated OKX v5 venue: one unified trading account, net mode.

Pure bookkeeping, no HTTP: the server calls these methods under its lock and turns
``OkxError`` into OKX's ``{"code": ..., "msg": ..., "data": []}`` bodies (or, for order
placement, the per-order ``sCode``/``sMsg`` items). Swap sizes are *contracts* (``ctVal``
base units each), spot sizes base units. The rules copied are those the bot can trip over
(lot and minimum sizes, trade modes, reduce-only, margin, duplicate client ids, stops that
would fire at once); the money maths is deliberately simple (isolated margin = notional /
leverage, taker fees, no funding unless asked).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

from tests.exchange_emulator.okx_types import (
    CLIENT_ID,
    DEFAULT_LEVER,
    ZERO,
    OkxAlgo,
    OkxError,
    OkxFill,
    OkxInstrument,
    OkxOrder,
    OkxPosition,
    Totals,
)

SPOT_FEE = Decimal("0.001")
SWAP_FEE = Decimal("0.0005")
MMR = Decimal("0.005")


def _ms() -> int:
    return int(time.time() * 1000)


def on_step(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def _bad(name: str) -> OkxError:
    return OkxError("51000", f"Parameter {name} error")


class OkxBook:
    """Everything one OKX account holds; not thread-safe (the server locks around it)."""

    def __init__(self, instruments: list[OkxInstrument], balances: dict[str, Decimal],
                 duplicate_scope: str = "open", clock: Callable[[], int] = _ms) -> None:
        self.instruments = {i.base: i for i in instruments}
        self.cash = {k: Decimal(v) for k, v in balances.items()}
        self.duplicate_scope = duplicate_scope
        self.clock = clock
        self.pos_mode = "net_mode"
        self.positions: dict[str, OkxPosition] = {}
        self.leverage: dict[tuple[str, str], int] = {}
        self.orders: dict[str, OkxOrder] = {}
        self.algos: dict[str, OkxAlgo] = {}
        self.fills: list[OkxFill] = []
        self._ids = itertools.count(690_000_000_000_000_001)

    def next_id(self) -> str:
        return str(next(self._ids))

    # -- lookups ---------------------------------------------------------------------------
    def resolve(self, inst_id: str | None) -> tuple[OkxInstrument, str]:
        for inst in self.instruments.values():
            if inst.spot and inst_id == inst.spot_id:
                return inst, "SPOT"
            if inst.swap and inst_id == inst.swap_id:
                return inst, "SWAP"
        raise OkxError("51001", "Instrument ID does not exist")

    def lever(self, inst_id: str, mgn_mode: str) -> int:
        return self.leverage.get((inst_id, mgn_mode), DEFAULT_LEVER)

    def frozen(self, ccy: str) -> Decimal:
        """Isolated margin plus what resting spot orders hold back."""
        out = ZERO
        if ccy == "USDT":
            out += sum((p.margin for p in self.positions.values()), ZERO)
        for order in self.orders.values():
            if order.state != "live" or order.inst_type != "SPOT":
                continue
            inst, _ = self.resolve(order.inst_id)
            if order.side == "buy" and ccy == "USDT":
                out += order.sz * order.px
            elif order.side == "sell" and ccy == inst.base:
                out += order.sz
        return out

    def avail(self, ccy: str) -> Decimal:
        return self.cash.get(ccy, ZERO) - self.frozen(ccy)

    def upl(self, position: OkxPosition) -> Decimal:
        inst, _ = self.resolve(position.inst_id)
        return position.pos * inst.ct_val * (inst.price - position.avg_px)

    def find_order(self, inst_id: str | None, ord_id: str | None,
                   cl_ord_id: str | None) -> OkxOrder:
        for order in reversed(list(self.orders.values())):
            if inst_id and order.inst_id != inst_id:
                continue
            if (ord_id and order.ord_id == ord_id) or (
                    not ord_id and cl_ord_id and order.cl_ord_id == cl_ord_id):
                return order
        raise OkxError("51603", "Order does not exist")

    def find_algo(self, algo_id: str | None, algo_cl_ord_id: str | None) -> OkxAlgo:
        for algo in reversed(list(self.algos.values())):
            if (algo_id and algo.algo_id == algo_id) or (
                    not algo_id and algo_cl_ord_id and algo.algo_cl_ord_id == algo_cl_ord_id):
                return algo
        raise OkxError("51603", "Order does not exist")

    # -- shared checks -------------------------------------------------------------------------
    def _size(self, inst: OkxInstrument, kind: str, raw: object) -> Decimal:
        try:
            sz = Decimal(str(raw))
        except ArithmeticError:
            raise _bad("sz") from None
        lot, minimum = (inst.spot_lot, inst.spot_min) if kind == "SPOT" else (
            inst.swap_lot, inst.swap_min)
        if sz <= 0 or not on_step(sz, lot):
            raise OkxError("51121", "Order quantity must be a multiple of the lot size.")
        if sz < minimum:
            raise OkxError("51020", "Order amount should be greater than the min available "
                           "amount.")
        return sz

    def _td_mode(self, kind: str, p: dict[str, object]) -> str:
        mode = str(p.get("tdMode") or "")
        if mode not in (("cash",) if kind == "SPOT" else ("isolated", "cross")):
            raise _bad("tdMode")
        pos_side = str(p.get("posSide") or "net")
        if kind == "SWAP" and pos_side != "net":  # net mode: long/short is refused
            raise _bad("posSide")
        return mode

    @staticmethod
    def _flag(value: object) -> bool:
        return str(value).lower() == "true"

    # -- orders ------------------------------------------------------------------------------
    def place(self, p: dict[str, object]) -> OkxOrder:
        inst, kind = self.resolve(str(p.get("instId") or ""))
        if inst.state != "live":
            raise OkxError("51001", "Instrument ID does not exist")
        side, otype = str(p.get("side") or ""), str(p.get("ordType") or "")
        if side not in ("buy", "sell"):
            raise _bad("side")
        if otype not in ("market", "limit"):
            raise _bad("ordType")
        td_mode = self._td_mode(kind, p)
        cid = str(p.get("clOrdId") or "")
        if cid and not CLIENT_ID.match(cid):
            raise _bad("clOrdId")
        if cid and any(o.cl_ord_id == cid and (self.duplicate_scope == "all"
                                               or o.state == "live")
                       for o in self.orders.values()):
            raise OkxError("51016", "Duplicated clOrdId")
        reduce_only = self._flag(p.get("reduceOnly"))
        if kind == "SPOT" and reduce_only:
            raise _bad("reduceOnly")
        tgt = str(p.get("tgtCcy") or ("base_ccy" if kind == "SPOT" else ""))
        sz = self._size(inst, kind, p.get("sz"))
        if kind == "SPOT" and tgt == "quote_ccy" and otype == "market" and side == "buy":
            sz = (sz / inst.price).quantize(inst.spot_lot, rounding=ROUND_DOWN)
        px = ZERO
        if otype == "limit":
            try:
                px = Decimal(str(p.get("px")))
            except ArithmeticError:
                raise _bad("px") from None
            if px <= 0 or not on_step(px, inst.tick):
                raise _bad("px")
        now = self.clock()
        inst_id = inst.spot_id if kind == "SPOT" else inst.swap_id
        order = OkxOrder(self.next_id(), cid, inst_id, kind, side, otype, sz, px, td_mode,
                         reduce_only, tgt, self.lever(inst_id, td_mode) if kind == "SWAP"
                         else 1, now, u_time=now)
        marketable = otype == "market" or (px >= inst.price if side == "buy"
                                           else px <= inst.price)
        if marketable:
            self.fill(order, inst, inst.price if otype == "market" else px)
        elif kind == "SPOT":
            need = sz * px if side == "buy" else sz
            if self.avail("USDT" if side == "buy" else inst.base) < need:
                raise self._short("USDT" if side == "buy" else inst.base)
        self.orders[order.ord_id] = order
        return order

    @staticmethod
    def _short(ccy: str) -> OkxError:
        return OkxError("51008", f"Order failed. Insufficient {ccy} balance in account.")

    def fill(self, order: OkxOrder, inst: OkxInstrument, price: Decimal) -> None:
        """Fill the whole order at ``price``; raises (leaving no trace) when it cannot."""
        if order.inst_type == "SPOT":
            fee, pnl = self._spot_fill(order, inst, price), ZERO
            fee_ccy = inst.base if order.side == "buy" else "USDT"
        else:
            fee, pnl = self._swap_fill(order, inst, price)
            fee_ccy = "USDT"
        now = self.clock()
        order.state, order.acc_fill_sz, order.avg_px = "filled", order.sz, price
        order.fee, order.fee_ccy, order.pnl = -fee, fee_ccy, pnl
        order.u_time = order.fill_time = now
        self.fills.append(OkxFill(self.next_id(), order.ord_id, order.cl_ord_id,
                                  order.inst_id, order.inst_type, order.side, price, order.sz,
                                  -fee, fee_ccy, pnl, now))

    def _spot_fill(self, order: OkxOrder, inst: OkxInstrument, price: Decimal) -> Decimal:
        cost = order.sz * price
        if order.side == "buy":
            if self.avail("USDT") < cost:
                raise self._short("USDT")
            fee = order.sz * SPOT_FEE
            self.cash["USDT"] -= cost
            self.cash[inst.base] = self.cash.get(inst.base, ZERO) + order.sz - fee
            return fee
        if self.avail(inst.base) < order.sz:
            raise self._short(inst.base)
        fee = cost * SPOT_FEE
        self.cash[inst.base] -= order.sz
        self.cash["USDT"] = self.cash.get("USDT", ZERO) + cost - fee
        return fee

    def _swap_fill(self, order: OkxOrder, inst: OkxInstrument,
                   price: Decimal) -> tuple[Decimal, Decimal]:
        pos = self.positions.get(order.inst_id) or OkxPosition(order.inst_id,
                                                               c_time=self.clock())
        direction = Decimal(1) if order.side == "buy" else Decimal(-1)
        sz = order.sz
        if order.reduce_only:
            if pos.pos == 0 or (pos.pos > 0) == (direction > 0):
                raise OkxError("51169", "Order placement failed because you don't have any "
                               "positions in this direction for this contract.")
            sz = min(sz, abs(pos.pos))
        closing = min(sz, abs(pos.pos)) if pos.pos and (pos.pos > 0) != (direction > 0) \
            else ZERO
        opening = sz - closing
        fee = sz * inst.ct_val * price * SWAP_FEE
        lever = Decimal(self.lever(order.inst_id, order.td_mode))
        margin = opening * inst.ct_val * price / lever
        if opening and margin + fee > self.avail("USDT"):
            raise OkxError("51008", "Order failed. Insufficient USDT margin in account")
        pnl = ZERO
        if closing:
            sign = Decimal(1) if pos.pos > 0 else Decimal(-1)
            pnl = closing * inst.ct_val * (price - pos.avg_px) * sign
            pos.margin -= pos.margin * closing / abs(pos.pos)
            pos.pos -= closing * sign
            self.cash["USDT"] += pnl
        if opening:
            held = abs(pos.pos)
            pos.avg_px = (held * pos.avg_px + opening * price) / (held + opening)
            pos.pos += opening * direction
            pos.margin += margin
            pos.lever, pos.mgn_mode = int(lever), order.td_mode
        self.cash["USDT"] -= fee
        pos.u_time = self.clock()
        if pos.pos == 0:
            self.positions.pop(order.inst_id, None)
        else:
            self.positions[order.inst_id] = pos
        order.sz = sz
        return fee, pnl

    def cancel(self, order: OkxOrder) -> OkxOrder:
        if order.state != "live":
            raise OkxError("51400", "Order cancellation failed as the order has been filled, "
                           "canceled or does not exist.")
        order.state, order.u_time = "canceled", self.clock()
        return order

    def set_leverage(self, inst_id: str, lever: int, mgn_mode: str) -> None:
        inst, kind = self.resolve(inst_id)
        if kind != "SWAP" or mgn_mode not in ("isolated", "cross"):
            raise _bad("mgnMode")
        if not 1 <= lever <= inst.max_lever:
            raise OkxError("59102", "Leverage exceeds the maximum leverage. Please adjust "
                           "the leverage.")
        if any(o.inst_id == inst_id and o.state == "live" for o in self.orders.values()):
            raise OkxError("59107", "You have pending orders under the service, please modify "
                           "the leverage after canceling all pending orders.")
        self.leverage[(inst_id, mgn_mode)] = lever

    # -- algo (conditional) orders -------------------------------------------------------------
    def place_algo(self, p: dict[str, object]) -> OkxAlgo:
        inst, kind = self.resolve(str(p.get("instId") or ""))
        side, otype = str(p.get("side") or ""), str(p.get("ordType") or "")
        if side not in ("buy", "sell"):
            raise _bad("side")
        if otype != "conditional" or kind != "SWAP":
            raise _bad("ordType")
        td_mode = self._td_mode(kind, p)
        # algoClOrdId is the algo's client id; a bare clOrdId (ccxt always sends one) is
        # taken as it when algoClOrdId is missing, as OKX reported it back in both fields
        cid = str(p.get("algoClOrdId") or p.get("clOrdId") or "")
        if cid and not CLIENT_ID.match(cid):
            raise _bad("algoClOrdId")
        if cid and any(a.algo_cl_ord_id == cid and (self.duplicate_scope == "all"
                                                    or a.state == "live")
                       for a in self.algos.values()):
            raise OkxError("51065", "algoClOrdId already exists.")
        sz = self._size(inst, kind, p.get("sz"))
        if not p.get("slTriggerPx"):
            raise OkxError("50014", "Parameter slTriggerPx can not be empty")
        trigger = Decimal(str(p["slTriggerPx"]))
        if trigger <= 0 or not on_step(trigger, inst.tick):
            raise _bad("slTriggerPx")
        if side == "sell" and trigger >= inst.price:
            raise OkxError("51280", "SL trigger price must be less than the last price.")
        if side == "buy" and trigger <= inst.price:
            raise OkxError("51278", "SL trigger price must be greater than the last price.")
        now = self.clock()
        algo = OkxAlgo(self.next_id(), cid, str(p.get("clOrdId") or cid), inst.swap_id, kind,
                       side, otype, sz, trigger, str(p.get("slOrdPx") or "-1"),
                       str(p.get("slTriggerPxType") or "last"), td_mode,
                       self._flag(p.get("reduceOnly")), self.lever(inst.swap_id, td_mode), now,
                       u_time=now)
        self.algos[algo.algo_id] = algo
        return algo

    def cancel_algo(self, algo: OkxAlgo) -> OkxAlgo:
        if algo.state != "live":
            raise OkxError("51400", "Order cancellation failed as the order has been filled, "
                           "canceled or does not exist.")
        algo.state, algo.u_time = "canceled", self.clock()
        return algo

    # -- market moves --------------------------------------------------------------------------
    def set_price(self, base: str, price: Decimal) -> list[OkxAlgo]:
        """Move the price (last = mark = index), fire the stops it crosses and fill the
        resting limit orders it reaches."""
        inst = self.instruments[base]
        inst.price = price
        fired = []
        for algo in list(self.algos.values()):
            if algo.inst_id == inst.swap_id and algo.state == "live" and (
                    price <= algo.sl_trigger_px if algo.side == "sell"
                    else price >= algo.sl_trigger_px):
                self._trigger(algo, inst)
                fired.append(algo)
        for order in list(self.orders.values()):
            if order.inst_id in (inst.spot_id, inst.swap_id) and order.state == "live" and (
                    price <= order.px if order.side == "buy" else price >= order.px):
                order.state = "filling"  # its own freeze no longer counts
                try:
                    self.fill(order, inst, order.px)
                except OkxError:
                    order.state, order.u_time = "canceled", self.clock()
        return fired

    def _trigger(self, algo: OkxAlgo, inst: OkxInstrument) -> None:
        """The stop places a market order (its id in ``ordIdList``) and is done."""
        now = self.clock()
        algo.trigger_time = algo.u_time = now
        child = OkxOrder(self.next_id(), "", algo.inst_id, "SWAP", algo.side, "market",
                         algo.sz, ZERO, algo.td_mode, algo.reduce_only, "", algo.lever, now,
                         u_time=now, algo_id=algo.algo_id)
        try:
            self.fill(child, inst, inst.price)
        except OkxError as exc:
            algo.state, algo.fail_code = "order_failed", exc.code
            return
        self.orders[child.ord_id] = child
        algo.state, algo.ord_id = "effective", child.ord_id
        algo.actual_sz, algo.actual_px = child.acc_fill_sz, inst.price

    def settle_funding(self, base: str) -> Decimal:
        """Pay one funding period at the current rate; returns the cash change."""
        inst = self.instruments[base]
        pos = self.positions.get(inst.swap_id)
        payment = -(pos.pos * inst.ct_val * inst.price * inst.funding_rate) if pos else ZERO
        self.cash["USDT"] += payment
        return payment


def totals(book: OkxBook) -> list[Totals]:
    out = []
    for ccy, cash in sorted(book.cash.items()):
        upl = sum((book.upl(p) for p in book.positions.values()), ZERO) if ccy == "USDT" \
            else ZERO
        iso = sum((p.margin for p in book.positions.values()), ZERO) + upl if ccy == "USDT" \
            else ZERO
        if cash == 0 and upl == 0:
            continue
        out.append(Totals(ccy, cash, book.frozen(ccy), upl, iso))
    return out
