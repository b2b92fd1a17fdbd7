"""Pure risk rules that every overlay leg passes through before it becomes an order.

Each rule either lets a leg through unchanged, clips it, or blocks it, and says which with
numbers, so the service can log ``risk.blocked`` with the rule that fired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from bot.domain.models import (
    FundingRate,
    MarketKind,
    OrderIntent,
    OrderType,
    OverlayLeg,
    PerpPosition,
    PositionSide,
    Regime,
    Side,
)
from bot.domain.risk_limits import RiskLimits


@dataclass(frozen=True, slots=True)
class RiskBlock:
    """One intervention: which rule, on which token, and the numbers behind it."""

    rule: str
    token: str
    detail: str


def check_overlay(
    legs: tuple[OverlayLeg, ...], limits: RiskLimits, regime: Regime, killed: bool = False,
    funding_blocked: frozenset[str] = frozenset(),
    cooling: frozenset[str] = frozenset(),
) -> tuple[tuple[OverlayLeg, ...], tuple[RiskBlock, ...]]:
    """Clip or drop overlay legs so the overlay obeys the limits.

    Rules, in order: kill switch (no new risk), bear regime (no leveraged longs), funding
    hysteresis (no re-entry, long or short, on a token closed for excessive funding until it
    normalises), stop cooldown (no new leg on a token stopped out within
    ``stop_cooldown_days``: ``cooling``), leverage cap (clipped to ``max_leverage``, never
    above 5), stop distance (a leg must carry a stop), and account leverage (total notional /
    equity scaled down to ``max_account_leverage``).
    """
    blocks: list[RiskBlock] = []
    kept: list[OverlayLeg] = []
    for leg in legs:
        if killed:
            blocks.append(RiskBlock("killswitch", leg.token, "kill switch active: no new risk"))
            continue
        if regime is Regime.BEAR and leg.side is PositionSide.LONG:
            blocks.append(RiskBlock("bear_regime", leg.token, "no new leveraged longs in a bear"))
            continue
        if leg.token in funding_blocked:
            blocks.append(RiskBlock("funding_hysteresis", leg.token,
                                    "closed for excessive funding; waiting for it to normalise"))
            continue
        if leg.token in cooling:
            blocks.append(RiskBlock("stop_cooldown", leg.token,
                                    f"stopped out within {limits.stop_cooldown_days:g} days"))
            continue
        if leg.stop_distance <= 0 or leg.stop_distance >= 1:
            blocks.append(RiskBlock("stop_required", leg.token,
                                    f"stop distance {leg.stop_distance} outside (0, 1)"))
            continue
        allowed = limits.clip_leverage(leg.leverage)
        if allowed < leg.leverage:
            blocks.append(RiskBlock("leverage_cap", leg.token,
                                    f"requested {leg.leverage}x clipped to {allowed}x"))
            leg = replace(leg, leverage=allowed)
        if leg.leverage <= 0:
            continue
        kept.append(leg)
    total = sum(leg.equity_fraction for leg in kept)
    if total > limits.max_account_leverage:
        scale = limits.max_account_leverage / total
        blocks.append(RiskBlock("account_leverage", "*",
                                f"overlay notional {total:.3f}x equity scaled by {scale:.3f} to "
                                f"{limits.max_account_leverage}x"))
        kept = [replace(leg, equity_fraction=leg.equity_fraction * scale) for leg in kept]
    return tuple(kept), tuple(blocks)


def stop_price_for(position: PerpPosition, stop_distance: float) -> Decimal:
    """The stop trigger for a position: below entry for a long, above entry for a short."""
    distance = Decimal(str(stop_distance))
    if position.side is PositionSide.LONG:
        return position.entry_price * (1 - distance)
    return position.entry_price * (1 + distance)


def stop_crossed(position: PerpPosition, trigger: Decimal) -> bool:
    """True when the mark is already at or beyond ``trigger``: the stop would have fired, so
    a venue refuses to place it (Binance -2021) and the position must be closed instead."""
    if position.mark_price <= 0:
        return False
    if position.side is PositionSide.LONG:
        return position.mark_price <= trigger
    return position.mark_price >= trigger


def price_deviation(reference: Decimal, current: Decimal) -> float:
    """How far ``current`` is from ``reference``, as a fraction of the reference (>= 0)."""
    if reference <= 0:
        raise ValueError(f"reference price must be positive, got {reference}")
    return float(abs(current - reference) / reference)


def slippage_guarded(intent: OrderIntent) -> bool:
    """Orders the slippage guard may hold back: market orders that add risk. Never a
    reduce-only perp order, a stop or a spot sell: getting out of risk must not wait for a
    better price (and the plan's buys were sized on the sells' proceeds)."""
    selling_spot = intent.market is MarketKind.SPOT and intent.side is Side.SELL
    return (intent.order_type is OrderType.MARKET and not intent.reduce_only
            and not selling_spot
            and intent.reference_price is not None and intent.reference_price > 0)


def positions_missing_stops(perps: Mapping[str, PerpPosition],
                            stop_amounts: Mapping[str, Decimal] | None = None,
                            ) -> list[PerpPosition]:
    """Leveraged positions with no live stop, or (given ``stop_amounts``, the live stops'
    total size per token) whose stops cover less than the position: a stop sized before a
    top-up protects only part of it. The risk watch must protect these at once."""
    def short_of(p: PerpPosition) -> bool:
        return stop_amounts is not None and stop_amounts.get(p.token, Decimal(0)) < abs(p.amount)

    return [p for _, p in sorted(perps.items())
            if p.amount != 0 and (p.stop_price is None or short_of(p))]


def drawdown(equity: Decimal, high_water: Decimal) -> float:
    """Fractional drawdown of ``equity`` from its high-water mark (0 when at or above it)."""
    if high_water <= 0 or equity >= high_water:
        return 0.0
    return float((high_water - equity) / high_water)


def kill_switch_reason(equity: Decimal, high_water: Decimal, consecutive_failures: int,
                       limits: RiskLimits, max_failures: int) -> str | None:
    """Why the kill switch must trip now, or None. Drawdown and repeated failures both count:
    a venue that keeps failing is a venue whose positions we cannot see or defend."""
    dd = drawdown(equity, high_water)
    if dd >= limits.max_drawdown_fraction:
        return (f"drawdown {dd:.1%} from high-water {high_water:.2f} >= "
                f"{limits.max_drawdown_fraction:.0%}")
    if consecutive_failures >= max_failures:
        return f"{consecutive_failures} consecutive failed jobs >= {max_failures}"
    return None


def excessive_funding(perps: dict[str, PerpPosition], funding: dict[str, FundingRate],
                      limits: RiskLimits) -> list[tuple[PerpPosition, float]]:
    """Leveraged positions paying funding above the exit threshold (annualised).

    Longs pay positive funding, shorts pay negative funding; a position *receiving* funding is
    never on this list (a short paid to hold is kept, as the playbook suggests).
    """
    out = []
    for token, position in sorted(perps.items()):
        rate = funding.get(token)
        if rate is None or position.amount == 0:
            continue
        paying_apr = rate.annualised if position.side is PositionSide.LONG else -rate.annualised
        if paying_apr > limits.funding_exit_apr:
            out.append((position, paying_apr))
    return out


def near_liquidation(perps: dict[str, PerpPosition], buffer: float
                     ) -> list[tuple[PerpPosition, float]]:
    """Positions whose liquidation price is within ``buffer`` (a fraction of the mark).

    The stop should fire long before liquidation; a position this close means the stop is
    missing, gapped or too wide, and the venue would take the whole margin.
    """
    out = []
    for _, position in sorted(perps.items()):
        liq = position.liquidation_price
        if liq is None or position.amount == 0 or position.mark_price <= 0:
            continue
        distance = float(abs(position.mark_price - liq) / position.mark_price)
        if distance < buffer:
            out.append((position, distance))
    return out
