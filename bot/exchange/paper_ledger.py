"""The paper exchange's accounts: one USDT wallet, spot holdings and isolated perp positions.

Split from the order handling in ``paper.py`` so the money rules sit in one place:
- ``cash`` is the wallet including isolated margin, ``free = cash - sum(margin)``;
- spot fills move cash and holdings, fee in USDT;
- a perp fill moves only fees and realised PnL into cash; margin is earmarked, not spent;
- funding is paid from (or into) the position's isolated margin, so it moves the liquidation
  price; a liquidation forfeits exactly that margin, never more, so cash cannot go negative.
Equity (cash + spot at mark + unrealised PnL) therefore changes only through price moves,
fees, slippage, funding and liquidations. Every method that can refuse does so before it
changes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain.models import QUOTE, FundingRate, MarketKind, Side
from bot.exchange.paper_types import (
    PaperConfig,
    PaperEvent,
    PerpBook,
    book_from_json,
    book_to_json,
    dec,
)
from bot.exchange.port import OrderRejected

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PerpPlan:
    """A perp fill worked out before anything changes, so a refusal leaves no trace."""

    delta: Decimal  # signed base change
    price: Decimal
    close_qty: Decimal
    open_qty: Decimal
    realised: Decimal
    fee: Decimal
    released: Decimal  # margin freed by the closing part
    new_margin: Decimal  # margin posted for the opening part
    leverage: Decimal
    free_after: Decimal


class Ledger:
    """Balances and positions with the venue's money rules; knows nothing about orders."""

    def __init__(self, config: PaperConfig, cash: Decimal) -> None:
        self.config = config
        self.cash = cash
        self.spot: dict[str, Decimal] = {}
        self.positions: dict[str, PerpBook] = {}
        self.leverage: dict[str, Decimal] = {}

    def free(self) -> Decimal:
        return self.cash - sum((p.margin for p in self.positions.values()), _ZERO)

    def liquidation_price(self, token: str) -> Decimal:
        return self.positions[token].liquidation_price(self.config.maintenance_margin_rate)

    # ----------------------------------------------------------------------------------------
    # Spot
    # ----------------------------------------------------------------------------------------

    def spot_fill(self, token: str, side: Side, amount: Decimal, price: Decimal) -> Decimal:
        """Buy or sell ``amount`` at ``price``; returns the USDT fee. Holdings stay >= 0."""
        value = amount * price
        fee = value * self.config.fee_rate(MarketKind.SPOT)
        held = self.spot.get(token, _ZERO)
        if side is Side.BUY:
            free = self.free()
            if value + fee > free:
                raise OrderRejected(f"insufficient {QUOTE}: need {value + fee}, free {free} "
                                    "(Binance -2010)")
            self.cash -= value + fee
            self.spot[token] = held + amount
        else:
            if amount > held:
                raise OrderRejected(f"insufficient {token}: selling {amount}, holding {held} "
                                    "(Binance -2010)")
            self.cash += value - fee
            if amount == held:
                del self.spot[token]
            else:
                self.spot[token] = held - amount
        return fee

    # ----------------------------------------------------------------------------------------
    # Perps
    # ----------------------------------------------------------------------------------------

    def plan_perp(self, token: str, delta: Decimal, price: Decimal) -> PerpPlan:
        """Split a signed fill into its closing and opening parts and price both."""
        pos = self.positions.get(token)
        size = abs(pos.amount) if pos is not None else _ZERO
        closing = pos is not None and (pos.amount > 0) != (delta > 0)
        close_qty = min(abs(delta), size) if closing else _ZERO
        realised = released = _ZERO
        if pos is not None and close_qty > 0:
            direction = 1 if pos.amount > 0 else -1
            realised = close_qty * (price - pos.entry_price) * direction
            released = pos.margin if close_qty == size else pos.margin * close_qty / size
        open_qty = abs(delta) - close_qty
        leverage = self.leverage.get(token, Decimal(1))
        new_margin = open_qty * price / leverage
        fee = abs(delta) * price * self.config.fee_rate(MarketKind.PERP)
        free_after = self.free() + released + realised - fee - new_margin
        return PerpPlan(delta, price, close_qty, open_qty, realised, fee, released, new_margin,
                        leverage, free_after)

    def apply_perp(self, token: str, plan: PerpPlan, now: datetime) -> bool:
        """Close first (realise PnL, release margin pro rata), then open the rest.

        Returns True when the old position was closed entirely (also on a flip), which is
        when the venue cancels the stops that protected it.
        """
        self.cash += plan.realised - plan.fee
        pos = self.positions.get(token)
        closed = False
        if pos is not None and plan.close_qty > 0:
            size = abs(pos.amount)
            if plan.close_qty == size:
                del self.positions[token]
                pos, closed = None, True
            else:
                remaining = size - plan.close_qty
                pos.funding_adj = pos.funding_adj * remaining / size
                pos.margin -= plan.released
                pos.amount = remaining if pos.amount > 0 else -remaining
        if plan.open_qty > 0:
            signed = plan.open_qty if plan.delta > 0 else -plan.open_qty
            if pos is None:
                self.positions[token] = PerpBook(
                    signed, plan.price, plan.leverage, plan.new_margin, _ZERO, now)
            else:
                size = abs(pos.amount)
                pos.entry_price = ((size * pos.entry_price + plan.open_qty * plan.price)
                                   / (size + plan.open_qty))
                pos.amount += signed
                pos.margin += plan.new_margin
        return closed

    def set_leverage(self, token: str, leverage: Decimal, mark: Decimal | None) -> None:
        """Record the leverage for new margin; an open position is re-margined to it.

        Re-margining keeps every position at one leverage, so the liquidation formula stays
        the textbook one. Refused when the extra margin is not free or when the new
        liquidation price would already be crossed.
        """
        pos = self.positions.get(token)
        if pos is not None and leverage != pos.leverage and mark is not None:
            margin = abs(pos.amount) * pos.entry_price / leverage - pos.funding_adj
            trial = replace(pos, leverage=leverage, margin=margin)
            liquidation = trial.liquidation_price(self.config.maintenance_margin_rate)
            if margin <= 0 or (liquidation >= mark if pos.amount > 0 else liquidation <= mark):
                raise OrderRejected(f"leverage {leverage} would liquidate the {token} position")
            if margin - pos.margin > self.free():
                raise OrderRejected(f"margin is insufficient to lower {token} leverage to "
                                    f"{leverage} (Binance -2019)")
            pos.leverage, pos.margin = leverage, margin
        self.leverage[token] = leverage

    def settle_funding(
        self, marks: Mapping[str, Decimal], rates: Mapping[str, FundingRate], hours: Decimal
    ) -> list[PaperEvent]:
        """Longs pay and shorts receive when the rate is positive, out of isolated margin.

        payment = amount x mark x hourly rate x hours; the venue cannot take more than the
        position's margin, so a payment is capped there (liquidation follows).
        """
        events = []
        for token in sorted(self.positions):
            rate = rates.get(token)
            if rate is None or rate.hourly_rate == 0:
                continue
            pos, mark = self.positions[token], marks[token]
            hourly = Decimal(repr(rate.hourly_rate))
            payment = pos.amount * mark * hourly * hours
            detail = f"hourly_rate={hourly} hours={hours}"
            if payment > pos.margin:
                payment = pos.margin
                detail += " (capped at the isolated margin)"
            pos.margin -= payment
            pos.funding_adj += payment
            self.cash -= payment
            events.append(PaperEvent("funding", token, pos.amount, mark, -payment, None, detail))
        return events

    def liquidate(self, token: str, price: Decimal, detail: str) -> PaperEvent:
        """Remove the position and forfeit its isolated margin (never more)."""
        pos = self.positions.pop(token)
        self.cash -= pos.margin
        return PaperEvent("liquidated", token, -pos.amount, price, -pos.margin, None, detail)

    def crossed_liquidations(self, bands: Mapping[str, tuple[Decimal, Decimal]]) -> list[str]:
        """Tokens whose liquidation price lies inside (or beyond) the period's range."""
        out = []
        for token in sorted(self.positions):
            price, (low, high) = self.liquidation_price(token), bands[token]
            if (low <= price) if self.positions[token].amount > 0 else (high >= price):
                out.append(token)
        return out

    # ----------------------------------------------------------------------------------------
    # Persistence
    # ----------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "cash": str(self.cash),
            "spot": {t: str(self.spot[t]) for t in sorted(self.spot)},
            "positions": {t: book_to_json(self.positions[t]) for t in sorted(self.positions)},
            "leverage": {t: str(self.leverage[t]) for t in sorted(self.leverage)},
        }

    @classmethod
    def from_json(cls, config: PaperConfig, data: Mapping[str, Any]) -> Ledger:
        ledger = cls(config, dec(data["cash"]))
        ledger.spot = {t: dec(a) for t, a in data["spot"].items()}
        ledger.positions = {t: book_from_json(b) for t, b in data["positions"].items()}
        ledger.leverage = {t: dec(v) for t, v in data["leverage"].items()}
        return ledger
