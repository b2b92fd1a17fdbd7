"""Spot targets: which sectors and tokens, how much per bucket, and how fast to get there.

One base: every weight here is a share of total equity. The book is each spot holding's
value over equity; what is not in a token is the cash line (USDT, margin posted for the
overlay included), ``1 - sum(weights)``. A book that is 95 % cash and 5 % BTC is exactly
that, never "100 % BTC".

Bucket rule (the precise statement the property tests check)
-----------------------------------------------------------
``invest = 1 - cash_reserve`` is the part of equity the buckets divide (the reserve is the
overlay's margin). ``transition`` is the weight of the sector a rotation is leaving: while
its exit is unconfirmed it keeps ``leaving_keep_fraction`` (50 %) of its weight at the
rotation's start, once confirmed ``exit_residual_fraction`` (10 %) of it, the playbook's
5-10 % "lottery ticket", kept until the next rotation. Never more than it still holds in
spot-tradable tokens, and never buying it back. It is tracked inside the rotational bucket,
but the rotational ceiling applies to steady-state holdings only: the playbook's own example
goes through core 55 / L1 15 / L2 20 / RWA 10, i.e. 35 % rotational.

1. The *strategic target*, whenever core, rotational and speculative each have something
   eligible, satisfies (``free = invest - frozen``, the frozen tokens' current weight)::

       0 <= transition <= free * (1 - (core_min + rotational_min + speculative_min))
       core_min        * free <= core                    <= core_max        * free
       speculative_min * free <= speculative             <= speculative_max * free
       rotational_min  * free <= rotational - transition <= rotational_max  * free

   To make room for a transition the other buckets give way, speculative first, then core,
   never below their minimums. A bucket with nothing eligible hands its share to the core
   (or to the next bucket that has something), which may then exceed its maximum.

2. *Frozen* tokens (held, but no fresh price) keep their current weight: neither bought nor
   sold. A frozen core token keeps its place in the core: the others get their usual share
   of it, never the whole core.

3. The *emitted weights* are ``current + a * (target - current)`` (frozen tokens excepted),
   ``0 < a <= 1``, with ``a`` chosen so that at most ``max_shift_per_rebalance`` of equity
   is *sold* per decision. Deploying idle cash sells nothing, so it is not slowed: an empty
   or partly invested book goes to its target at once. The bounds above are linear, so a
   book that satisfies them still does after the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain.models import QUOTE, Bucket, Portfolio, Regime, RotationState, SectorSpec, Universe
from bot.domain.params import StrategyParams
from bot.domain.rotation import Phase
from bot.domain.signals import SignalReport

CORE_SECTOR = "CORE"


@dataclass(frozen=True, slots=True)
class TokenPlace:
    bucket: Bucket
    sector: str


def token_places(universe: Universe) -> dict[str, TokenPlace]:
    """Where each universe token belongs (core tokens sit in the pseudo-sector ``CORE``)."""
    places = {t.symbol: TokenPlace(Bucket.CORE, CORE_SECTOR) for t in universe.core}
    for sector in universe.sectors:
        for token in sector.tokens:
            places[token.symbol] = TokenPlace(sector.bucket, sector.name)
    return places


def current_book(portfolio: Portfolio) -> dict[str, float]:
    """Each priced spot holding as a share of total equity; cash is ``1 - sum`` of them."""
    equity = portfolio.equity()
    if equity <= 0:
        return {}
    values = {t: portfolio.spot_value(t) for t in sorted(portfolio.spot)
              if t != QUOTE and portfolio.spot[t] > 0}
    return {t: float(v / equity) for t, v in values.items() if v > 0}


def sector_weights(book: Mapping[str, float], universe: Universe) -> dict[str, float]:
    """Book weight per sector (``CORE`` for core tokens; tokens outside the universe skipped)."""
    places = token_places(universe)
    out: dict[str, float] = {}
    for token, weight in sorted(book.items()):
        place = places.get(token)
        if place is not None:
            out[place.sector] = out.get(place.sector, 0.0) + weight
    return out


def bucket_totals(weights: Mapping[str, float], universe: Universe) -> dict[Bucket, float]:
    places = token_places(universe)
    out = {b: 0.0 for b in Bucket}
    for token, weight in sorted(weights.items()):
        place = places.get(token)
        if place is not None:
            out[place.bucket] += weight
    return out


@dataclass(frozen=True, slots=True)
class Target:
    """The strategic spot target and how it was built (for reasons and property tests)."""

    weights: Mapping[str, float]
    buckets: Mapping[Bucket, float]
    rotational_sectors: tuple[str, ...]
    speculative_sectors: tuple[str, ...]
    chosen_tokens: Mapping[str, tuple[str, ...]]
    transition_sector: str | None
    transition_weight: float
    reasons: tuple[str, ...]


def spot_candidates(sector: SectorSpec, report: SignalReport) -> list[str]:
    """Eligible spot tokens of a sector, most liquid first (perp-only tokens never)."""
    ranked = [(i, t.symbol) for i, t in enumerate(sector.tokens)
              if t.spot and report.is_ready(t.symbol)]
    ranked.sort(key=lambda item: (-report.liquidity.get(item[1], 0.0), item[0]))
    return [symbol for _, symbol in ranked]


def pick_tokens(sector: SectorSpec, report: SignalReport, book: Mapping[str, float],
                params: StrategyParams) -> tuple[str, ...]:
    """2-3 leading tokens: held ones that still rank near the top first (less churn)."""
    ranked = spot_candidates(sector, report)
    count = min(params.tokens_per_sector, len(ranked))
    near_top = ranked[:count + 1]
    held = [t for t in near_top if book.get(t, 0.0) > 0]
    chosen = held[:count] + [t for t in ranked if t not in held][:count - min(count, len(held))]
    return tuple(chosen)


def _confident_top(sectors: list[SectorSpec], report: SignalReport, count: int,
                   params: StrategyParams) -> list[str]:
    scored = []
    for sector in sectors:
        score = report.score_of(sector.name)
        if (score is not None and score.score is not None
                and score.confidence >= params.min_confidence
                and spot_candidates(sector, report)):
            scored.append((-score.score, sector.name))
    return [name for _, name in sorted(scored)[:count]]


def _held(sectors: list[SectorSpec], weights: Mapping[str, float]) -> list[str]:
    held = [(-weights.get(s.name, 0.0), s.name) for s in sectors if weights.get(s.name, 0.0) > 0]
    return [name for _, name in sorted(held)]


def choose_rotational(universe: Universe, report: SignalReport, weights: Mapping[str, float],
                      state: RotationState | None, phase: Phase,
                      params: StrategyParams) -> tuple[list[str], list[str]]:
    """The steady-state rotational sectors and the reason for the choice."""
    sectors = [s for s in universe.sectors if s.bucket is Bucket.ROTATIONAL]
    held = _held(sectors, weights)
    k = params.rotational_sector_count
    if state is not None and phase.holds_sectors:
        others = [s for s in held if s not in (state.from_sector, state.to_sector)]
        return [state.to_sector, *others][:k], [
            f"rotational bucket -> {state.to_sector} (rotation from {state.from_sector})"]
    if held:
        return held[:k], [f"rotational bucket stays in held {', '.join(held[:k])}"]
    leaders = _confident_top(sectors, report, k, params)
    if leaders:
        return leaders, [f"initial allocation: rotational bucket -> {', '.join(leaders)} "
                         "(nothing held yet)"]
    return [], ["rotational bucket parked in core: no confident leader and nothing held"]


def choose_speculative(universe: Universe, report: SignalReport, weights: Mapping[str, float],
                       params: StrategyParams) -> tuple[list[str], list[str]]:
    """Held speculative sectors, switched only when another leads by the rotation threshold."""
    sectors = [s for s in universe.sectors if s.bucket is Bucket.SPECULATIVE]
    held = _held(sectors, weights)
    k = params.speculative_sector_count
    best = _confident_top(sectors, report, 1, params)
    if not held:
        leaders = _confident_top(sectors, report, k, params)
        if leaders:
            return leaders, [f"speculative bucket -> {', '.join(leaders)} (nothing held yet)"]
        return [], ["speculative bucket parked in core: no confident leader and nothing held"]
    chosen = held[:k]
    if best and best[0] not in chosen:
        incumbent = report.score_of(chosen[0])
        challenger = report.score_of(best[0])
        if (incumbent is not None and incumbent.score is not None and challenger is not None
                and challenger.score is not None
                and incumbent.confidence >= params.min_confidence
                and challenger.score - incumbent.score > params.rotation_threshold):
            gap = challenger.score - incumbent.score
            return [best[0], *chosen[1:]][:k], [
                f"speculative switch {chosen[0]}->{best[0]}: score gap {gap:.2f} > "
                f"{params.rotation_threshold:g}"]
    return chosen, []


def bucket_sizes(regime: Regime, transition: float, available: Mapping[Bucket, bool],
                 params: StrategyParams) -> dict[Bucket, float]:
    """Bucket weights (rotational = steady-state part) for the room left after a transition.

    Bull: core and speculative at their configured targets, rotational takes the rest. Bear
    or unknown: core at its maximum, speculative at its minimum (defensive). The rotational
    share is then pushed into its bounds: an excess goes to core, then speculative; a
    shortfall is taken from speculative, then core. Validated bounds make this always fit.
    """
    bull = regime is Regime.BULL
    core = params.core_weight if bull else params.core_max
    spec = params.speculative_weight if bull else params.speculative_min
    rot = 1.0 - transition - core - spec
    if rot > params.rotational_max:
        excess = rot - params.rotational_max
        rot = params.rotational_max
        add = min(excess, params.core_max - core)
        core, excess = core + add, excess - add
        add = min(excess, params.speculative_max - spec)
        spec, excess = spec + add, excess - add
        rot += excess
    elif rot < params.rotational_min:
        deficit = params.rotational_min - rot
        rot = params.rotational_min
        take = min(deficit, spec - params.speculative_min)
        spec, deficit = spec - take, deficit - take
        take = min(deficit, core - params.core_min)
        core, deficit = core - take, deficit - take
        rot -= deficit
    sizes = {Bucket.CORE: core, Bucket.ROTATIONAL: rot, Bucket.SPECULATIVE: spec}
    order = (Bucket.CORE, Bucket.ROTATIONAL, Bucket.SPECULATIVE)
    receiver = next((b for b in order if available[b]), None)
    for bucket in order:
        if not available[bucket]:
            if receiver is not None:
                sizes[receiver] += sizes[bucket]
            sizes[bucket] = 0.0
    return {b: max(0.0, v) for b, v in sizes.items()}


def strategic_target(universe: Universe, report: SignalReport, regime: Regime,
                     book: Mapping[str, float], state: RotationState | None, phase: Phase,
                     params: StrategyParams, invest: float = 1.0,
                     frozen: frozenset[str] = frozenset()) -> Target:
    """Where the spot book should end up, as shares of equity summing to ``invest`` (the
    rest is cash), under the current signals and rotation state.

    ``book`` is the current book (shares of equity). ``frozen`` tokens keep their current
    weight; the buckets divide what is left of ``invest``.
    """
    weights = sector_weights(book, universe)
    reasons: list[str] = []
    kept = {t: book.get(t, 0.0) for t in sorted(frozen) if book.get(t, 0.0) > 0}
    free = max(0.0, invest - sum(kept.values()))
    if kept:
        reasons.append("frozen (no fresh price, neither bought nor sold): "
                       + ", ".join(f"{t} {w:.1%}" for t, w in kept.items()))
    rot_names, why = choose_rotational(universe, report, weights, state, phase, params)
    reasons += why
    spec_names, why = choose_speculative(universe, report, weights, params)
    reasons += why

    chosen: dict[str, tuple[str, ...]] = {}
    for name in [*rot_names, *spec_names]:
        tokens = pick_tokens(universe.sector(name), report, book, params)
        if tokens:
            chosen[name] = tokens
        else:
            reasons.append(f"{name}: no eligible spot token")
    rot_names = [n for n in rot_names if n in chosen]
    spec_names = [n for n in spec_names if n in chosen]
    # A core token whose price is stale keeps its seat: the others get their usual share
    # of the core, never all of it.
    core_seats = [t.symbol for t in universe.core
                  if t.spot and (report.is_ready(t.symbol) or t.symbol in kept)]
    core_tokens = [t for t in core_seats if t not in kept]

    transition_sector, transition = None, 0.0
    if state is not None and phase.holds_sectors:
        keep = (params.leaving_keep_fraction if phase is Phase.ACTIVE
                else params.exit_residual_fraction)
        held_spot = sum(book.get(t.symbol, 0.0)
                        for t in universe.sector(state.from_sector).tokens
                        if t.spot and t.symbol not in kept)
        transition = min(keep * state.from_weight_at_start, held_spot,
                         max(0.0, free * (1.0 - params.bucket_minimum_total)))
        if transition > 1e-12:
            transition_sector = state.from_sector
            label = "transition" if phase is Phase.ACTIVE else "residual"
            reasons.append(f"{state.from_sector} {label} {transition:.1%} of equity "
                           f"({keep:.0%} of {state.from_weight_at_start:.1%} at start)")
        else:
            transition = 0.0

    available = {Bucket.CORE: bool(core_seats), Bucket.ROTATIONAL: bool(rot_names),
                 Bucket.SPECULATIVE: bool(spec_names)}
    if free <= 1e-12 or (not any(available.values()) and transition_sector is None):
        weights_out = dict(kept)
        return Target(weights_out, bucket_totals(weights_out, universe), (), (), {}, None,
                      0.0, tuple(reasons))
    if not any(available.values()):
        # Nothing eligible but the sector being left: it keeps its capped part and the
        # rest waits in cash (never bought back into the sector a rotation is leaving).
        reasons.append("nothing else eligible: the rest of the book waits in cash")
    sizes = bucket_sizes(regime, transition / free, available, params)

    target: dict[str, float] = {}

    def spread(tokens: list[str] | tuple[str, ...], amount: float, seats: int) -> None:
        for token in tokens:
            target[token] = target.get(token, 0.0) + amount / seats

    if core_seats:
        spread(core_tokens, free * sizes[Bucket.CORE], len(core_seats))
    for names, bucket in ((rot_names, Bucket.ROTATIONAL), (spec_names, Bucket.SPECULATIVE)):
        for name in names:
            spread(chosen[name], free * sizes[bucket] / len(names), len(chosen[name]))
    if transition_sector is not None:
        leaving = {t.symbol: book.get(t.symbol, 0.0)
                   for t in universe.sector(transition_sector).tokens
                   if t.spot and t.symbol not in kept}
        held_total = sum(leaving.values())
        for token, weight in sorted(leaving.items()):
            if weight > 0:
                target[token] = target.get(token, 0.0) + transition * weight / held_total
    target = {t: w for t, w in sorted(target.items()) if w > 1e-12}
    target.update(kept)
    target = dict(sorted(target.items()))
    return Target(target, bucket_totals(target, universe), tuple(rot_names),
                  tuple(spec_names), chosen, transition_sector, transition, tuple(reasons))


def slow_move(current: Mapping[str, float], target: Mapping[str, float], max_shift: float,
              frozen: frozenset[str] = frozenset()) -> tuple[dict[str, float], float, float]:
    """Step from the current book towards the target, selling at most ``max_shift`` of
    equity (all weights are shares of equity; cash is what they leave).

    Returns the stepped weights, the sell step ``a`` and the full sell-side shift (the
    one-way turnover the target asks for). Only sales are rate-limited: every sale moves
    ``a`` of its way, and buys go towards the target as far as idle cash (above the target's
    cash line) plus those sales' proceeds pay for, so an empty or partly invested book
    reaches its target at once. Frozen tokens keep their current weight.
    """
    tokens = sorted((set(current) | set(target)) - frozen)
    gaps = {t: target.get(t, 0.0) - current.get(t, 0.0) for t in tokens}
    sells = sum(-g for g in gaps.values() if g < 0)
    buys = sum(g for g in gaps.values() if g > 0)
    step = 1.0 if sells <= max_shift else max_shift / sells
    idle = max(0.0, (1.0 - sum(current.values())) - (1.0 - sum(target.values())))
    funded = 1.0 if buys <= 0 else min(1.0, (idle + step * sells) / buys)
    moved = {t: current.get(t, 0.0) + (step if g < 0 else funded) * g for t, g in gaps.items()}
    moved.update({t: current[t] for t in frozen if current.get(t, 0.0) > 0})
    return {t: w for t, w in sorted(moved.items()) if w > 1e-12}, step, sells
