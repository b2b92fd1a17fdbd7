"""The perpetual overlay: a small hedge on the sector being left, a small long on the new one.

The overlay is a *desired state*: the planner closes any perp position the decision does not
list. Legs exist only while a rotation is active (started, exit not yet confirmed, not
failed or flipped). Each leg is sized as a share of equity, asks for at most
``max_leverage`` (itself never above 5) and carries a stop distance.

- Hedge: short the most liquid perp-listed tokens of the sector being left (held shorts
  first, so a running hedge is not churned), in total ``hedge_equity_fraction`` of equity
  but never more than the spot still held there, so the overlay hedges and never turns into
  a naked short.
- Long: the incoming sector's best tokens by momentum that have both spot and perp markets
  (perp-only tokens are hedge legs only). None in a bear or unknown regime; none on a token
  whose funding is crowded (a "funding flush" exit when it already runs); no new ones while
  funding data is stale, though running ones are kept.
"""

from __future__ import annotations

from decimal import Decimal

from bot.domain.models import (
    OverlayLeg,
    Portfolio,
    PositionSide,
    Regime,
    RotationState,
    TokenSpec,
    Universe,
)
from bot.domain.params import StrategyParams
from bot.domain.signals import SignalReport
from bot.domain.volatility import atr_stop_distance

LIQUIDATION_SHARE = 0.5
"""A stop sits at most this share of the distance to liquidation (about 1/leverage away)."""


def _held_side(portfolio: Portfolio, token: str) -> PositionSide | None:
    position = portfolio.perps.get(token)
    if position is None or position.amount == 0:
        return None
    return position.side


def plan_overlay(state: RotationState, universe: Universe, report: SignalReport,
                 regime: Regime, portfolio: Portfolio, params: StrategyParams,
                 ) -> tuple[tuple[OverlayLeg, ...], tuple[str, ...]]:
    """Hedge and long legs for an active rotation, with a reason for each choice."""
    equity = portfolio.equity()
    if equity <= 0:
        return (), ("overlay: no equity",)
    reasons: list[str] = []
    legs = _hedge_legs(state, universe, report, portfolio, equity, params, reasons)
    legs += _long_legs(state, universe, report, regime, portfolio, params, reasons)
    legs.sort(key=lambda leg: (leg.side.value, leg.token))
    return tuple(legs), tuple(reasons)


def _hedge_legs(state: RotationState, universe: Universe, report: SignalReport,
                portfolio: Portfolio, equity: Decimal, params: StrategyParams,
                reasons: list[str]) -> list[OverlayLeg]:
    leaving = universe.sector(state.from_sector)
    exposure = float(sum((portfolio.spot_value(t.symbol) for t in leaving.tokens),
                         Decimal(0)) / equity)
    if exposure <= 0:
        reasons.append(f"no hedge: nothing held in {leaving.name}")
        return []
    candidates = [(i, t) for i, t in enumerate(leaving.tokens)
                  if t.perp and report.is_ready(t.symbol)]
    candidates.sort(key=lambda item: (
        _held_side(portfolio, item[1].symbol) is not PositionSide.SHORT,
        -report.liquidity.get(item[1].symbol, 0.0), item[0]))
    chosen = [t for _, t in candidates[:params.hedge_tokens]]
    if not chosen:
        reasons.append(f"no hedge: no eligible perp in {leaving.name}")
        return []
    total = min(params.hedge_equity_fraction, exposure)
    each = total / len(chosen)  # over the tokens chosen, not the number configured
    leverage = min(params.hedge_leverage, params.max_leverage)
    reasons.append(f"hedge {leaving.name}: short {', '.join(t.symbol for t in chosen)} "
                   f"{each * len(chosen):.1%} of equity at {leverage:g}x while rotating to "
                   f"{state.to_sector}")
    return [OverlayLeg(t.symbol, PositionSide.SHORT, each, leverage,
                       *stop_distance(t.symbol, PositionSide.SHORT, leverage, report, params,
                                      f"hedge {leaving.name} while rotating to "
                                      f"{state.to_sector}"))
            for t in chosen]


def _long_legs(state: RotationState, universe: Universe, report: SignalReport, regime: Regime,
               portfolio: Portfolio, params: StrategyParams,
               reasons: list[str]) -> list[OverlayLeg]:
    incoming = universe.sector(state.to_sector)
    if regime is not Regime.BULL:
        reasons.append(f"no leveraged long on {incoming.name}: regime {regime.value}")
        return []
    funding_stale = "funding" in report.stale
    candidates: list[tuple[int, TokenSpec]] = []
    for i, token in enumerate(incoming.tokens):
        if not (token.spot and token.perp and report.is_ready(token.symbol)):
            continue
        reading = report.funding.get(token.symbol)
        if reading is not None and reading.crowded:
            reasons.append(f"no long on {token.symbol}: funding {reading.apr:.0%} APR > "
                           f"{reading.threshold:.0%} (crowded)")
            continue
        if funding_stale and _held_side(portfolio, token.symbol) is not PositionSide.LONG:
            continue
        candidates.append((i, token))

    def momentum(token: str) -> float:
        value = report.token_momentum.get(token)
        return value if value is not None else float("-inf")

    candidates.sort(key=lambda item: (
        _held_side(portfolio, item[1].symbol) is not PositionSide.LONG,
        -momentum(item[1].symbol), -report.liquidity.get(item[1].symbol, 0.0), item[0]))
    chosen = [t for _, t in candidates[:params.long_tokens]]
    if funding_stale:
        reasons.append("funding stale: no new leveraged longs (running ones kept)")
    if not chosen:
        reasons.append(f"no leveraged long on {incoming.name}: no eligible token")
        return []
    each = params.long_equity_fraction / len(chosen)
    leverage = min(params.long_leverage, params.max_leverage)
    reasons.append(f"amplify {incoming.name}: long {', '.join(t.symbol for t in chosen)} "
                   f"{each * len(chosen):.1%} of equity at {leverage:g}x")
    return [OverlayLeg(t.symbol, PositionSide.LONG, each, leverage,
                       *stop_distance(t.symbol, PositionSide.LONG, leverage, report, params,
                                      f"amplify rotation into {incoming.name}"))
            for t in chosen]


def defensive_legs(universe: Universe, report: SignalReport, regime: Regime,
                   trend: tuple[float, float] | None, portfolio: Portfolio,
                   params: StrategyParams) -> tuple[tuple[OverlayLeg, ...], tuple[str, ...]]:
    """Shorts on the core's perps in a bear regime, whether or not a rotation is under way.

    ``trend`` is the benchmark's (last close, average). A short opens or grows only in a bear
    regime with the benchmark ``defensive_entry_band`` below its average and the token's data
    ready; otherwise a running short is kept (never grown: missing data adds no risk) until
    the regime turns bull. Sized on the core spot held: the engine then caps each leg at the
    spot the decision leaves (:func:`cap_defensive`), so the short never exceeds it.
    """
    fraction = params.defensive_hedge_fraction
    equity = portfolio.equity()
    if fraction <= 0 or regime is Regime.BULL or equity <= 0:
        return (), ()
    deep = (regime is Regime.BEAR and trend is not None and trend[1] > 0
            and trend[0] <= trend[1] * (1 - params.defensive_entry_band))
    leverage = min(params.hedge_leverage, params.max_leverage)
    running = {leg.token: leg for leg in mirror_positions(portfolio, params)
               if leg.side is PositionSide.SHORT}
    legs: list[OverlayLeg] = []
    for token in universe.core:
        if not token.perp:
            continue
        held = float(portfolio.spot_value(token.symbol) / equity)
        wanted = held * fraction
        reading = report.funding.get(token.symbol)
        shorts_pay = reading is not None and reading.apr < -params.funding_crowded_apr
        if shorts_pay and token.symbol not in running:
            continue  # shorts pay a crowded rate: the funding exit would close it at once
        if deep and report.is_ready(token.symbol) and wanted > 0:
            legs.append(OverlayLeg(token.symbol, PositionSide.SHORT, wanted, leverage,
                                   *stop_distance(token.symbol, PositionSide.SHORT, leverage,
                                                  report, params,
                                                  f"defensive hedge: regime {regime.value}")))
        elif token.symbol in running:
            kept = running[token.symbol]
            legs.append(OverlayLeg(token.symbol, PositionSide.SHORT,
                                   min(kept.equity_fraction, wanted), kept.leverage,
                                   kept.stop_distance, "defensive hedge kept: not adding"))
    legs = [leg for leg in legs if leg.equity_fraction > 0]
    if not legs:
        return (), ((f"no defensive hedge: regime {regime.value}, benchmark not "
                     f"{params.defensive_entry_band:.0%} under its average"
                     if not deep else "no defensive hedge: no core spot held with a ready "
                     "perp"),)
    total = sum(leg.equity_fraction for leg in legs)
    return tuple(legs), (f"defensive: regime {regime.value}, short "
                         f"{', '.join(leg.token for leg in legs)} {total:.1%} of equity "
                         f"(up to {fraction:.0%} of the core spot held) at {leverage:g}x",)


def cap_defensive(legs: tuple[OverlayLeg, ...], fraction: float,
                  spot_after: dict[str, float]) -> tuple[OverlayLeg, ...]:
    """Each defensive leg at most ``fraction`` of the spot share its token keeps after the
    decision: the hedge's own margin reserve makes the plan sell core spot, and a short
    sized on the spot held before would then exceed what is left."""
    out = []
    for leg in legs:
        cap = fraction * spot_after.get(leg.token, 0.0)
        if leg.equity_fraction > cap:
            leg = OverlayLeg(leg.token, leg.side, cap, leg.leverage, leg.stop_distance,
                             leg.reason)
        if leg.equity_fraction > 0:
            out.append(leg)
    return tuple(out)


def stop_distance(token: str, side: PositionSide, leverage: float, report: SignalReport,
                  params: StrategyParams, reason: str) -> tuple[float, str]:
    """The leg's stop distance and its reason, saying how the distance was chosen.

    In ``atr`` mode the distance is ``stop_atr_multiple`` ATRs inside the floor and ceiling;
    a token whose ATR is unknown keeps the percent distance, and the reason says so. Either
    way the stop sits at most ``LIQUIDATION_SHARE`` of the way to liquidation (about
    ``1 / leverage`` from entry): a wider stop would never fire before the venue liquidates.
    """
    distance = (params.long_stop_distance if side is PositionSide.LONG
                else params.hedge_stop_distance)
    if params.stop_mode == "atr":
        atr = report.atr.get(token)
        sized = atr_stop_distance(atr, params.stop_atr_multiple, params.stop_atr_floor,
                                  params.stop_atr_ceiling)
        if atr is None or sized is None:
            reason = f"{reason}; stop {distance:.1%} (no {params.stop_atr_days}-day ATR)"
        else:
            distance = sized
            reason = (f"{reason}; stop {params.stop_atr_multiple:g} x ATR {atr:.2%} = "
                      f"{distance:.1%}")
    cap = LIQUIDATION_SHARE / leverage if leverage > 0 else distance
    if distance > cap:
        reason = (f"{reason}; stop capped at {cap:.1%}, half the way to liquidation at "
                  f"{leverage:g}x")
        distance = cap
    return distance, reason


def mirror_positions(portfolio: Portfolio, params: StrategyParams) -> tuple[OverlayLeg, ...]:
    """The perp positions held now, as legs: what a hold keeps (never adds risk).

    Leverage is reported no higher than ``max_leverage`` (asking for less leverage only
    posts more margin); a missing or odd stop becomes the configured stop distance.
    """
    equity = portfolio.equity()
    if equity <= 0:
        return ()
    legs = []
    for token, position in sorted(portfolio.perps.items()):
        if position.amount == 0 or position.mark_price <= 0:
            continue
        side = position.side
        default_stop = (params.long_stop_distance if side is PositionSide.LONG
                        else params.hedge_stop_distance)
        stop = default_stop
        if position.stop_price is not None and position.entry_price > 0:
            distance = float(abs(position.stop_price - position.entry_price)
                             / position.entry_price)
            if 0 < distance < 1:
                stop = distance
        leverage = float(position.leverage)
        leverage = params.max_leverage if leverage <= 0 else min(leverage, params.max_leverage)
        legs.append(OverlayLeg(token, side, float(position.notional / equity), leverage, stop,
                               "hold existing position"))
    return tuple(legs)


def overlay_matches(legs: tuple[OverlayLeg, ...], portfolio: Portfolio,
                    params: StrategyParams) -> bool:
    """True when the held perps already are the wanted legs (same tokens and sides, sizes
    within ``overlay_drift_ratio``): then the overlay needs no order."""
    equity = portfolio.equity()
    held = {t: p for t, p in portfolio.perps.items() if p.amount != 0}
    if {leg.token for leg in legs} != set(held):
        return False
    if equity <= 0:
        return not legs
    for leg in legs:
        position = held[leg.token]
        if position.side is not leg.side:
            return False
        size = float(position.notional / equity)
        if abs(size - leg.equity_fraction) > params.overlay_drift_ratio * leg.equity_fraction:
            return False
    return True


def cash_reserve_for(legs: tuple[OverlayLeg, ...], params: StrategyParams) -> float:
    """Equity share kept in USDT: the overlay's margin plus the buffer."""
    margin = sum(leg.equity_fraction / leg.leverage for leg in legs if leg.leverage > 0)
    return min(1.0, margin * (1 + params.margin_buffer))
