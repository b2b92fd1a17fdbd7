"""The rotation decision engine: one pure function from what is known to what is wanted.

``decide(snapshot, portfolio, universe, params, prior)`` scores the sectors, reads the
regime, carries the rotation state one step, builds the strategic spot target, steps the
book towards it no faster than ``max_shift_per_rebalance``, plans the overlay and says why
at every step. Same inputs, same decision, byte for byte (see ``bot.domain.codec``).

Rules that override everything else:
- prices stale (or no equity): hold. The book and the perp positions are reported as they
  are, the rotation state is not advanced and nothing adds risk;
- every token and the cash share within ``drift_band`` of target and the overlay as wanted:
  hold (no churn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.allocation import (
    Target,
    bucket_totals,
    current_book,
    sector_weights,
    slow_move,
    strategic_target,
)
from bot.domain.codec import canonical_float, decision_fingerprint
from bot.domain.kill_switch import kill_switch_weights
from bot.domain.market_view import MarketView
from bot.domain.models import (
    Bucket,
    Decision,
    MarketSnapshot,
    OverlayLeg,
    Portfolio,
    Regime,
    RotationState,
    SectorScore,
    Universe,
)
from bot.domain.overlay import (
    cap_defensive,
    cash_reserve_for,
    defensive_legs,
    mirror_positions,
    overlay_matches,
    plan_overlay,
)
from bot.domain.params import StrategyParams
from bot.domain.rotation import Phase, advance_rotation
from bot.domain.signals import SignalReport, benchmark_trend, regime_of, score_sectors

HOLD = "hold"
REBALANCE = "rebalance"
ROTATE = "rotate"
ACTIONS = (HOLD, REBALANCE, ROTATE)
"""``rotate``: a rotation starts now; ``rebalance``: trade towards targets; ``hold``: none."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A decision plus the intermediate results it came from (for tests and diagnostics).

    ``step`` is the fraction of the way from ``current_book`` to ``target.weights`` that the
    decision's spot weights travel (1.0 = all the way; 0.0 on a hold).
    """

    decision: Decision
    current_book: Mapping[str, float]
    target: Target | None
    report: SignalReport
    step: float


def decide(snapshot: MarketSnapshot, portfolio: Portfolio, universe: Universe,
           params: StrategyParams, prior: RotationState | None,
           kill_switch: str | None = None) -> Decision:
    """The target spot book, perp overlay and reasons for this snapshot (pure).

    ``kill_switch`` is the configured action when the kill switch is tripped (see
    :mod:`bot.domain.kill_switch`): no rotation advances, no overlay, and the spot book
    follows the action instead of the strategy.
    """
    return evaluate(snapshot, portfolio, universe, params, prior, kill_switch).decision


def evaluate(snapshot: MarketSnapshot, portfolio: Portfolio, universe: Universe,
             params: StrategyParams, prior: RotationState | None,
             kill_switch: str | None = None) -> Evaluation:
    """:func:`decide` with its working shown."""
    view = MarketView.build(snapshot)
    report = score_sectors(view, universe, params)
    regime, regime_reason = regime_of(view, params)
    book = current_book(portfolio)
    equity = float(portfolio.equity())
    cash_share = float(portfolio.cash) / equity if equity > 0 else 1.0
    cash_share = 0.0 if abs(cash_share) < 1e-9 else min(1.0, cash_share)
    reasons = [regime_reason, *report.notes]

    def hold(why: str, rotation: RotationState | None) -> Evaluation:
        reasons.append(why)
        decision = _finish(snapshot, regime, HOLD, book, universe,
                           max(0.0, cash_share), mirror_positions(portfolio, params),
                           report.scores, rotation, reasons)
        return Evaluation(decision, book, None, report, 0.0)

    if equity <= 0:
        return hold("hold: no equity", prior)
    if kill_switch is not None:
        # Sells only, at the venue's prices (the book is valued at them): a signal feed
        # that is down must not keep a tripped switch from getting out.
        weights = kill_switch_weights(book, kill_switch, universe, frozenset())
        reasons.append(f"kill switch tripped: no rotation, no overlay, spot {kill_switch}")
        deviation, _ = largest_deviation(book, weights, universe)
        action = REBALANCE if deviation > 1e-9 else HOLD
        decision = _finish(snapshot, regime, action, weights, universe, 0.0, (),
                           report.scores, prior, reasons)
        return Evaluation(decision, book, None, report, 1.0 if action == REBALANCE else 0.0)
    if view.prices_stale:
        return hold("hold: prices stale; book and positions kept as they are, rotation not "
                    "advanced", prior)

    symbols = {t.symbol for t in universe.all_tokens()}
    frozen = frozenset(t for t in book
                       if t in symbols and view.price_stale(t, params.max_price_age_days))
    outcome = advance_rotation(prior, report, universe, sector_weights(book, universe),
                               snapshot.as_of, params)
    reasons += outcome.reasons
    legs: tuple[OverlayLeg, ...] = ()
    if outcome.phase is Phase.ACTIVE and outcome.state is not None:
        legs, why = plan_overlay(outcome.state, universe, report, regime, portfolio, params)
        reasons += why
    # The defensive posture does not wait for a rotation: a bear market is taken on the core.
    defensive, why = defensive_legs(universe, report, regime, benchmark_trend(view, params),
                                    portfolio, params)
    reasons += why
    if (outcome.phase is not Phase.ACTIVE and not legs and not defensive
            and any(p.amount != 0 for p in portfolio.perps.values())):
        reasons.append("overlay: close all legs (no rotation under way)")
    reserve = cash_reserve_for((*legs, *defensive), params)
    target = strategic_target(universe, report, regime, book, outcome.state, outcome.phase,
                              params, invest=investable(portfolio, reserve), frozen=frozen)
    reasons += target.reasons
    if not target.weights:
        return hold("hold: no eligible token to allocate to", outcome.state)
    # Capped at the lower of the spot held and the spot targeted: a slow move ends between
    # the two, so the short never exceeds the spot the plan leaves.
    defensive = cap_defensive(defensive, params.defensive_hedge_fraction,
                              {leg.token: min(book.get(leg.token, 0.0),
                                              target.weights.get(leg.token, 0.0))
                               for leg in defensive})
    legs = tuple(sorted((*legs, *defensive), key=lambda leg: (leg.side.value, leg.token)))

    deviation, worst = largest_deviation(book, target.weights, universe)
    cash_target = max(0.0, 1.0 - sum(target.weights.values()))
    cash_gap = abs(cash_share - cash_target)
    overlay_ok = overlay_matches(legs, portfolio, params)
    if (not outcome.started and deviation <= params.drift_band
            and cash_gap <= params.drift_band and overlay_ok):
        reasons.append(f"hold: all deviations within drift band {params.drift_band:.0%} "
                       f"(largest {deviation:.2%})")
        decision = _finish(snapshot, regime, HOLD, book, universe,
                           max(0.0, cash_share), legs, report.scores,
                           outcome.state, reasons, frozen)
        return Evaluation(decision, book, target, report, 0.0)

    weights, step, shift = slow_move(book, target.weights, params.max_shift_per_rebalance,
                                     frozen)
    if step < 1.0:
        reasons.append(f"slow move: the target sells {shift:.1%} of equity > "
                       f"{params.max_shift_per_rebalance:.0%} cap; moving {step:.0%} of the way")
    action = ROTATE if outcome.started else REBALANCE
    if action == REBALANCE:
        if deviation > params.drift_band:
            reasons.append(f"rebalance: {worst} off target by {deviation:.2%} of equity "
                           f"(> drift band {params.drift_band:.0%})")
        elif cash_gap > params.drift_band:
            reasons.append(f"rebalance: cash {cash_share:.2%} of equity vs target "
                           f"{cash_target:.2%}")
        else:
            reasons.append("rebalance: overlay differs from the held perps")
    decision = _finish(snapshot, regime, action, weights, universe, reserve, legs,
                       report.scores, outcome.state, reasons, frozen)
    return Evaluation(decision, book, target, report, step)


def investable(portfolio: Portfolio, reserve: float) -> float:
    """The share of equity the spot buckets may fill.

    One wallet: all of it but the overlay's reserve. Two wallets (Binance spot and USD-M):
    what the spot wallet holds, tokens and USDT, and no more: USDT in the futures wallet
    funds the overlay and cannot buy spot (without a transfer), so counting it would leave
    the book forever "under target" with buys nothing can pay for.
    """
    spot_side = max(0.0, 1.0 - reserve)
    if portfolio.futures_free is None:
        return spot_side
    equity = portfolio.equity()
    if equity <= 0:
        return 0.0
    wallet = sum((portfolio.spot_value(t) for t in portfolio.spot), Decimal(0))
    wallet += portfolio.free_cash or Decimal(0)
    return max(0.0, min(spot_side, float(wallet / equity)))


def largest_deviation(current: Mapping[str, float], target: Mapping[str, float],
                      universe: Universe) -> tuple[float, str]:
    """The largest gap between current and target, per token and per sector net.

    Per sector matters because a sector's move is spread over its 2-3 tokens: 5 % into L2
    is only 1.7 % per token, inside a 2 % band, yet it is exactly the move wanted.
    """
    gaps = [(abs(target.get(t, 0.0) - current.get(t, 0.0)), t)
            for t in sorted(set(current) | set(target))]
    now, wanted = sector_weights(current, universe), sector_weights(target, universe)
    gaps += [(abs(wanted.get(s, 0.0) - now.get(s, 0.0)), s)
             for s in sorted(set(now) | set(wanted))]
    return max(gaps, default=(0.0, ""))


def _finish(snapshot: MarketSnapshot, regime: Regime, action: str,
            weights: Mapping[str, float], universe: Universe, cash_reserve: float,
            legs: tuple[OverlayLeg, ...], scores: tuple[SectorScore, ...],
            rotation: RotationState | None, reasons: list[str],
            frozen: frozenset[str] = frozenset()) -> Decision:
    """Canonicalise every number, attach the deterministic id."""
    spot = {t: canonical_float(w) for t, w in sorted(weights.items()) if w > 0}
    buckets = {b: canonical_float(v) for b, v in bucket_totals(spot, universe).items()}
    overlay = tuple(dataclasses.replace(
        leg, equity_fraction=canonical_float(leg.equity_fraction),
        leverage=canonical_float(leg.leverage), stop_distance=canonical_float(leg.stop_distance))
        for leg in legs)
    canonical_scores = tuple(dataclasses.replace(
        s, score=None if s.score is None else canonical_float(s.score),
        confidence=canonical_float(s.confidence),
        components={k: None if v is None else canonical_float(v)
                    for k, v in sorted(s.components.items())})
        for s in scores)
    if rotation is not None:
        rotation = dataclasses.replace(
            rotation, from_weight_at_start=canonical_float(rotation.from_weight_at_start))
    confidences = [s.confidence for s in scores]
    confidence = sum(confidences) / len(confidences) if confidences else 0.0
    decision = Decision(
        decision_id="",
        as_of=snapshot.as_of,
        regime=regime,
        action=action,
        spot_weights=spot,
        bucket_weights={b: buckets.get(b, 0.0) for b in Bucket},
        cash_reserve=canonical_float(cash_reserve),
        overlay=overlay,
        scores=canonical_scores,
        rotation=rotation,
        reasons=tuple(reasons),
        confidence=canonical_float(confidence),
        frozen=tuple(sorted(frozen)),
    )
    return dataclasses.replace(decision, decision_id=decision_fingerprint(decision))
