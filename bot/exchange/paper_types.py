"""Configuration, events, the mutable perp book and the JSON codecs of the paper exchange.

Kept apart from ``paper.py`` so that module holds behaviour only. Nothing here does I/O: the
exchange returns ``PaperEvent`` values for the daemon to log, and its state is a plain dict the
daemon persists wherever it keeps state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from bot.domain.models import FundingRate, MarketKind, OrderResult, OrderStatus, OrderType, Side

BPS = Decimal("0.0001")
STATE_VERSION = 1
# Steps for a token that has not been priced yet (see ``derive_steps``). No order can be placed
# on such a token, so nothing is ever sized against these.
FALLBACK_STEP = Decimal("1E-8")
# One amount step is worth at most this much quote at the first mark.
STEP_QUOTE_VALUE = Decimal("0.1")
# A price tick is 10^(digits - 5): between 1e-5 and 1e-4 of the first mark.
PRICE_TICK_DIGITS = 5

EventKind = Literal["funding", "stop_triggered", "liquidated", "fill"]


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Venue rules of the paper exchange, Binance-like defaults (VIP 0 taker fees).

    Values are coerced to ``Decimal`` through ``str`` so a float from a config file cannot
    bring binary noise into balances.
    """

    starting_cash: Decimal = Decimal("10000")
    spot_taker_fee_bps: Decimal = Decimal("10")
    perp_taker_fee_bps: Decimal = Decimal("5")
    slippage_bps: Decimal = Decimal("5")
    maintenance_margin_rate: Decimal = Decimal("0.005")
    min_notional_spot: Decimal = Decimal("5")
    min_notional_perp: Decimal = Decimal("5")
    max_leverage_hard: Decimal = Decimal("5")
    depth_notional: Decimal = Decimal("0")
    """Most quote value one market order can take from the book; the rest of a bigger order
    expires unfilled, as on a thin book (0: unlimited). Exercises partial-fill handling."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, Decimal):
                object.__setattr__(self, f.name, Decimal(str(value)))
            if not getattr(self, f.name).is_finite() or getattr(self, f.name) < 0:
                raise ValueError(f"PaperConfig.{f.name} must be a finite number >= 0")
        for name in ("slippage_bps", "spot_taker_fee_bps", "perp_taker_fee_bps"):
            if getattr(self, name) >= 10_000:
                raise ValueError(f"PaperConfig.{name} must be below 10000")
        if self.max_leverage_hard < 1:
            raise ValueError("PaperConfig.max_leverage_hard must be >= 1")
        # At or above 1/leverage the liquidation price sits at or past the entry, so a new
        # position would be liquidated by the first tick against it.
        if self.maintenance_margin_rate * self.max_leverage_hard >= 1:
            raise ValueError("maintenance_margin_rate must be below 1 / max_leverage_hard")

    @property
    def slippage(self) -> Decimal:
        return self.slippage_bps * BPS

    def fee_rate(self, market: MarketKind) -> Decimal:
        bps = self.spot_taker_fee_bps if market is MarketKind.SPOT else self.perp_taker_fee_bps
        return bps * BPS

    def min_notional(self, market: MarketKind) -> Decimal:
        return self.min_notional_spot if market is MarketKind.SPOT else self.min_notional_perp


@dataclass(frozen=True, slots=True)
class PaperEvent:
    """Something the venue did on its own during ``update_market``, for the daemon to log.

    ``amount`` is the signed change of the position in base units (funding: the position
    held), ``price`` the execution, liquidation or mark price, ``cash_delta`` the change of
    the USDT wallet (negative = paid) and ``fee`` the part of it that was a trading fee.
    """

    kind: EventKind
    token: str
    amount: Decimal
    price: Decimal
    cash_delta: Decimal
    client_id: str | None = None
    detail: str = ""
    fee: Decimal = Decimal(0)


@dataclass(slots=True)
class PerpBook:
    """One open isolated one-way position (mutable: the exchange owns it).

    ``margin`` is the isolated margin posted now. ``funding_adj`` is funding paid out of that
    margin since the position opened (negative when it received funding), scaled down with
    the position on reductions; it moves the liquidation price the way a shrinking margin
    does on the venue.
    """

    amount: Decimal
    entry_price: Decimal
    leverage: Decimal
    margin: Decimal
    funding_adj: Decimal
    opened_at: datetime

    def liquidation_price(self, mmr: Decimal) -> Decimal:
        """Isolated one-way liquidation price; the textbook formula while no funding moved.

        At this price the position's equity (margin + unrealised PnL) equals the maintenance
        margin ``mmr * |amount| * entry``.
        """
        size = abs(self.amount)
        if self.amount > 0:
            return self.entry_price * (1 - 1 / self.leverage + mmr) + self.funding_adj / size
        return self.entry_price * (1 + 1 / self.leverage - mmr) - self.funding_adj / size


def derive_steps(price: Decimal) -> tuple[Decimal, Decimal]:
    """Amount and price steps for a token first seen at ``price``.

    Powers of ten like a real venue: the amount step is the largest one worth at most
    ``STEP_QUOTE_VALUE`` (SOL at 150 -> 0.0001), the tick 10^(digits-5) (SOL at 150 -> 0.001,
    BTC at 60000 -> 0.1). Both are frozen at the first mark, as venues do not re-tick on every
    move, and persisted so a restart keeps them.
    """
    amount_step = max(Decimal(1).scaleb((STEP_QUOTE_VALUE / price).adjusted()), FALLBACK_STEP)
    price_step = max(Decimal(1).scaleb(price.adjusted() - PRICE_TICK_DIGITS), FALLBACK_STEP)
    return amount_step, price_step


# --------------------------------------------------------------------------------------------
# JSON codecs (Decimals as strings, datetimes as ISO-8601; both round-trip exactly)
# --------------------------------------------------------------------------------------------


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def opt_dec(value: Any) -> Decimal | None:
    return None if value is None else dec(value)


def opt_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def opt_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def opt_iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def order_to_json(order: OrderResult) -> dict[str, Any]:
    return {
        "client_id": order.client_id,
        "exchange_id": order.exchange_id,
        "token": order.token,
        "market": order.market.value,
        "side": order.side.value,
        "order_type": order.order_type.value,
        "status": order.status.value,
        "amount": str(order.amount),
        "filled": str(order.filled),
        "average_price": opt_str(order.average_price),
        "fee": str(order.fee),
        "trigger_price": opt_str(order.trigger_price),
        "reduce_only": order.reduce_only,
        "timestamp": opt_iso(order.timestamp),
    }


def order_from_json(data: dict[str, Any]) -> OrderResult:
    return OrderResult(
        client_id=str(data["client_id"]),
        exchange_id=str(data["exchange_id"]),
        token=str(data["token"]),
        market=MarketKind(data["market"]),
        side=Side(data["side"]),
        order_type=OrderType(data["order_type"]),
        status=OrderStatus(data["status"]),
        amount=dec(data["amount"]),
        filled=dec(data["filled"]),
        average_price=opt_dec(data["average_price"]),
        fee=dec(data["fee"]),
        trigger_price=opt_dec(data["trigger_price"]),
        reduce_only=bool(data["reduce_only"]),
        timestamp=opt_time(data["timestamp"]),
    )


def book_to_json(book: PerpBook) -> dict[str, Any]:
    return {
        "amount": str(book.amount),
        "entry_price": str(book.entry_price),
        "leverage": str(book.leverage),
        "margin": str(book.margin),
        "funding_adj": str(book.funding_adj),
        "opened_at": book.opened_at.isoformat(),
    }


def book_from_json(data: dict[str, Any]) -> PerpBook:
    return PerpBook(
        amount=dec(data["amount"]),
        entry_price=dec(data["entry_price"]),
        leverage=dec(data["leverage"]),
        margin=dec(data["margin"]),
        funding_adj=dec(data["funding_adj"]),
        opened_at=datetime.fromisoformat(str(data["opened_at"])),
    )


def funding_to_json(rate: FundingRate) -> dict[str, Any]:
    return {
        "token": rate.token,
        "hourly_rate": rate.hourly_rate,
        "interval_hours": rate.interval_hours,
        "next_settlement": opt_iso(rate.next_settlement),
    }


def funding_from_json(data: dict[str, Any]) -> FundingRate:
    return FundingRate(
        token=str(data["token"]),
        hourly_rate=float(data["hourly_rate"]),
        interval_hours=float(data["interval_hours"]),
        next_settlement=opt_time(data["next_settlement"]),
    )
