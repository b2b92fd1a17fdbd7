"""Properties of ``decide`` over random snapshots, portfolios, priors and parameters.

All weights are shares of total equity (cash is the rest). The bucket property is the
precise statement in ``bot.domain.allocation``'s docstring: the strategic target keeps every
bucket inside its bounds scaled to the equity the buckets divide (the sector a rotation
leaves is a transition allocation, outside the rotational ceiling). What the decision asks
of the book (how much it sells, what it leaves alone) is asserted directly; the book the
orders produce is asserted in ``test_book_properties.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.allocation import bucket_totals, spot_candidates
from bot.domain.codec import (
    decision_from_dict,
    decision_to_dict,
    decision_to_json,
    rotation_state_to_dict,
)
from bot.domain.engine import Evaluation, decide, evaluate
from bot.domain.models import (
    Bucket,
    MarketSnapshot,
    PerpPosition,
    Portfolio,
    PositionSide,
    Regime,
    RotationState,
    Series,
    Universe,
)
from bot.domain.params import StrategyParams
from bot.domain.risk_limits import HARD_MAX_LEVERAGE
from tests.engine_fixtures import ALL_TOKENS, DAY0, SECTOR_OF, UNIVERSE

SECTORS = tuple(s.name for s in UNIVERSE.sectors)
METRICS = ("tvl_usd", "volume_usd", "dev_commits")
STALE_KEYS = ("prices", "funding", *(f"metric:{m}" for m in METRICS),
              *(f"metric:{m}:{s}" for m in METRICS for s in SECTORS),
              "prices:SOL", "prices:ARB", "prices:BTC", "funding:SOL", "funding:ARB")
PARAM_CHOICES = (
    StrategyParams(),
    StrategyParams(rotational_sector_count=2, speculative_sector_count=2, tokens_per_sector=2),
    StrategyParams(max_leverage=5.0, long_leverage=5.0, hedge_leverage=4.0,
                   rotation_cooldown_days=0, rotation_threshold=0.2, cycle_bonus=0.1,
                   rotation_hold_margin=0.05),
    StrategyParams(max_shift_per_rebalance=0.05, drift_band=0.0, exit_confirmations=1,
                   min_confidence=0.0, regime_sma_days=20),
)
EXAMPLES = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOL = 1e-9


@dataclass(frozen=True)
class Case:
    snapshot: MarketSnapshot
    portfolio: Portfolio
    universe: Universe
    params: StrategyParams
    prior: RotationState | None


def _series(as_of: datetime, values: list[float], gap_days: int) -> Series:
    last = as_of - timedelta(days=gap_days)
    n = len(values)
    return Series(tuple((last - timedelta(days=n - 1 - i), v) for i, v in enumerate(values)))


def _wave(n: int, start: float, drift: float, amplitude: float, phase: float) -> list[float]:
    return [start * math.exp(drift * i + amplitude * math.sin(0.7 * i + phase)) for i in range(n)]


@st.composite
def snapshots(draw: st.DrawFn, all_stale: bool = False) -> tuple[MarketSnapshot, Universe]:
    as_of = DAY0 + timedelta(days=draw(st.integers(0, 30)), hours=draw(st.sampled_from([0, 6])))
    late = draw(st.sets(st.sampled_from(ALL_TOKENS[2:]), max_size=4))
    universe = Universe(UNIVERSE.core, tuple(
        dataclasses.replace(s, tokens=tuple(
            dataclasses.replace(t, listed=as_of.date() + timedelta(days=5))
            if t.symbol in late else t for t in s.tokens)) for s in UNIVERSE.sectors))
    closes, volumes, funding = {}, {}, {}
    for token in ALL_TOKENS:
        length = draw(st.sampled_from([0, 8, 29, 30, 31, 60, 230]))
        if not length:
            continue
        start = 10 ** draw(st.floats(-2, 5))
        drift = draw(st.floats(-0.02, 0.02))
        amplitude = draw(st.floats(0, 0.3))
        gap = draw(st.sampled_from([0, 0, 0, 1, 6]))
        closes[token] = _series(as_of, _wave(length, start, drift, amplitude, len(token)), gap)
        if draw(st.booleans()):
            level = 10 ** draw(st.floats(3, 9))
            volumes[token] = _series(as_of, _wave(length, level, 0, 0.2, 1.0), gap)
        if draw(st.integers(0, 3)) == 0:
            rate = draw(st.floats(-0.0001, 0.0003))
            points = tuple((as_of - timedelta(hours=8 * k), rate * (1 + 0.5 * math.sin(k)))
                           for k in range(draw(st.sampled_from([2, 60, 300])), -1, -1))
            funding[token] = Series(points)
    metrics: dict[str, dict[str, Series]] = {}
    for sector in SECTORS:
        for metric in METRICS:
            if draw(st.integers(0, 2)) == 0:
                continue
            length = draw(st.sampled_from([5, 40, 130]))
            base = 0.0 if metric == "dev_commits" and draw(st.booleans()) else 1e6
            values = _wave(length, 1e8, draw(st.floats(-0.03, 0.03)), 0.1, 2.0)
            metrics.setdefault(sector, {})[metric] = _series(
                as_of, [v if base else round(v % 3) for v in values],
                draw(st.sampled_from([0, 1, 9])))
    if all_stale:
        stale = frozenset(STALE_KEYS)
    else:
        stale = frozenset(draw(st.sets(st.sampled_from(STALE_KEYS), max_size=3)))
    return MarketSnapshot(as_of, closes, volumes, metrics, funding, stale), universe


def _prices(snapshot: MarketSnapshot) -> dict[str, Decimal]:
    out = {}
    for token, series in snapshot.closes.items():
        last = series.last()
        if last is not None:
            out[token] = Decimal(repr(last[1]))
    return out


@st.composite
def portfolios(draw: st.DrawFn, snapshot: MarketSnapshot) -> Portfolio:
    prices = _prices(snapshot)
    prices.setdefault("DOGE", Decimal("0.1"))  # a holding outside the universe
    held = draw(st.lists(st.sampled_from(sorted(prices)), max_size=8, unique=True))
    equity = 10 ** draw(st.floats(2, 7))
    cash_share = draw(st.sampled_from([0.0, 0.0, 0.05, 0.5, 1.0]))
    raw = [draw(st.floats(0.01, 1)) for _ in held]
    total = sum(raw) or 1.0
    spot = {t: Decimal(repr(equity * (1 - cash_share) * w / total)) / prices[t]
            for t, w in zip(held, raw, strict=True)}
    spent = sum((a * prices[t] for t, a in spot.items()), Decimal(0))
    perps = {}
    for token in draw(st.lists(st.sampled_from(sorted(prices)), max_size=3, unique=True)):
        sign = draw(st.sampled_from([Decimal(1), Decimal(-1)]))
        amount = sign * Decimal(repr(equity * draw(st.floats(0.001, 0.2)))) / prices[token]
        stop = prices[token] * Decimal(repr(draw(st.floats(0.5, 1.5))))
        perps[token] = PerpPosition(token, amount, prices[token],
                                    Decimal(draw(st.integers(1, 10))), prices[token],
                                    stop_price=draw(st.sampled_from([None, stop])))
    return Portfolio(Decimal(repr(equity)) - spent, spot, perps, prices)


@st.composite
def priors(draw: st.DrawFn, as_of: datetime) -> RotationState | None:
    if draw(st.booleans()):
        return None
    names = (*SECTORS, "GONE")
    started = as_of - timedelta(days=draw(st.integers(0, 40)))
    checked = draw(st.sampled_from([None, started, as_of]))
    return RotationState(draw(st.sampled_from(names)), draw(st.sampled_from(names)), started,
                         draw(st.floats(0, 1)), draw(st.integers(0, 5)), checked)


@st.composite
def cases(draw: st.DrawFn, all_stale: bool = False) -> Case:
    snapshot, universe = draw(snapshots(all_stale))
    portfolio = draw(portfolios(snapshot))
    prior = draw(priors(snapshot.as_of))
    return Case(snapshot, portfolio, universe, draw(st.sampled_from(PARAM_CHOICES)), prior)


def run(case: Case) -> Evaluation:
    return evaluate(case.snapshot, case.portfolio, case.universe, case.params, case.prior)


def assert_target_bounds(ev: Evaluation, params: StrategyParams, universe: Universe) -> None:
    """The strategic target obeys the bucket rule whenever every bucket has something."""
    target = ev.target
    assert target is not None
    core_ok = any(t.spot and ev.report.is_ready(t.symbol) for t in universe.core)
    if not (core_ok and target.rotational_sectors and target.speculative_sectors):
        return
    if set(ev.decision.frozen) & set(target.weights):
        return  # frozen tokens sit where they are, whatever their bucket
    free = 1.0 - ev.decision.cash_reserve
    buckets = bucket_totals(target.weights, universe)
    transition = target.transition_weight
    assert 0 <= transition <= free * (1 - params.bucket_minimum_total) + TOL
    assert params.core_min * free - TOL <= buckets[Bucket.CORE] <= params.core_max * free + TOL
    assert (params.speculative_min * free - TOL <= buckets[Bucket.SPECULATIVE]
            <= params.speculative_max * free + TOL)
    steady = buckets[Bucket.ROTATIONAL] - transition
    assert params.rotational_min * free - TOL <= steady <= params.rotational_max * free + TOL


@EXAMPLES
@given(cases())
def test_decision_invariants(case: Case) -> None:
    ev = run(case)
    d, params = ev.decision, case.params

    # Weights: shares of equity, non-negative, leaving a cash line (an all-cash hold has none).
    assert all(w >= 0 for w in d.spot_weights.values())
    assert math.fsum(d.spot_weights.values()) <= 1 + TOL
    if not d.spot_weights:
        assert d.action == "hold"
    assert 0 <= d.cash_reserve <= 1
    # Frozen tokens (no fresh price) are held exactly where they are.
    for token in d.frozen:
        assert abs(d.spot_weights.get(token, 0) - ev.current_book.get(token, 0)) <= TOL
    assert d.action in ("hold", "rebalance", "rotate")

    # Overlay: leverage within the cap (itself within the hard ceiling), a stop on every leg.
    assert params.max_leverage <= HARD_MAX_LEVERAGE
    for leg in d.overlay:
        assert 0 < leg.leverage <= params.max_leverage
        assert 0 < leg.stop_distance < 1
        assert leg.equity_fraction > 0

    # Round trip through the codec.
    assert decision_from_dict(decision_to_dict(d)) == d

    if ev.target is None:  # a hold that kept everything as it is
        assert d.action == "hold"
        for token in set(d.spot_weights) | set(ev.current_book):
            assert abs(d.spot_weights.get(token, 0) - ev.current_book.get(token, 0)) <= TOL
        return

    # Buckets: the precise statement (see the module docstring).
    assert_target_bounds(ev, params, case.universe)
    if d.action == "hold":
        for token in set(d.spot_weights) | set(ev.current_book):
            assert abs(d.spot_weights.get(token, 0) - ev.current_book.get(token, 0)) <= TOL
    else:
        assert 0 < ev.step <= 1
        # It sells at most the shift cap of equity (buying with idle cash is not capped).
        sold = math.fsum(max(0.0, ev.current_book[t] - d.spot_weights.get(t, 0.0))
                         for t in ev.current_book)
        assert sold <= params.max_shift_per_rebalance + 1e-8
        # Every weight moves towards the target, never past it.
        for token in set(d.spot_weights) | set(ev.target.weights) | set(ev.current_book):
            now, want = ev.current_book.get(token, 0.0), ev.target.weights.get(token, 0.0)
            got = d.spot_weights.get(token, 0.0)
            assert min(now, want) - 1e-8 <= got <= max(now, want) + 1e-8

    # Never one token for a chosen sector that has two or more eligible.
    for name in (*ev.target.rotational_sectors, *ev.target.speculative_sectors):
        sector = case.universe.sector(name)
        eligible = spot_candidates(sector, ev.report)
        held = [t.symbol for t in sector.tokens if d.spot_weights.get(t.symbol, 0) > 0]
        assert len(held) >= min(2, len(eligible)), (name, held, eligible)

    # Markets: the target buys spot only where a spot market exists; legs use perps only,
    # longs only where spot exists too, none in a bear or unknown regime.
    specs = {t.symbol: t for t in case.universe.all_tokens()}
    assert all(specs[t].spot for t in ev.target.weights if t not in d.frozen)
    if d.action != "hold":
        for leg in d.overlay:
            assert specs[leg.token].perp
            if leg.side is PositionSide.LONG:
                assert specs[leg.token].spot
                assert d.regime is Regime.BULL
        margin = sum(leg.equity_fraction / leg.leverage for leg in d.overlay)
        assert d.cash_reserve >= margin - TOL

    # The cycle prior never starts a rotation on its own: the newcomer already led without it.
    if d.action == "rotate":
        assert d.rotation is not None
        scores = {s.sector: s for s in d.scores}
        new, old = scores[d.rotation.to_sector], scores[d.rotation.from_sector]
        assert new.score is not None and old.score is not None
        raw_new = new.score - (new.components.get("cycle_prior") or 0)
        raw_old = old.score - (old.components.get("cycle_prior") or 0)
        assert new.score - old.score > params.rotation_threshold
        assert raw_new > raw_old


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases(all_stale=True))
def test_everything_stale_holds_and_adds_no_risk(case: Case) -> None:
    ev = run(case)
    d = ev.decision
    assert d.action == "hold"
    if case.prior is None:  # not advanced (the engine only canonicalises its numbers)
        assert d.rotation is None
    else:
        assert d.rotation is not None
        assert rotation_state_to_dict(d.rotation) == rotation_state_to_dict(case.prior)
    for token in set(d.spot_weights) | set(ev.current_book):
        assert abs(d.spot_weights.get(token, 0) - ev.current_book.get(token, 0)) <= TOL
    equity = case.portfolio.equity()
    for leg in d.overlay:
        position = case.portfolio.perps[leg.token]
        assert position.amount != 0 and position.side is leg.side
        assert leg.equity_fraction <= float(position.notional / equity) + TOL
        assert 0 < leg.leverage <= case.params.max_leverage and leg.stop_distance > 0


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_same_inputs_same_bytes(case: Case) -> None:
    first = decide(case.snapshot, case.portfolio, case.universe, case.params, case.prior)
    again = decide(case.snapshot, case.portfolio, case.universe, case.params, case.prior)
    fresh = decide(copy.deepcopy(case.snapshot), copy.deepcopy(case.portfolio),
                   copy.deepcopy(case.universe), copy.deepcopy(case.params),
                   copy.deepcopy(case.prior))
    assert decision_to_json(first) == decision_to_json(again) == decision_to_json(fresh)


@st.composite
def bounded_books(draw: st.DrawFn) -> Case:
    """A current book already inside the bucket bounds, in tokens that have prices."""
    snapshot, universe = draw(snapshots())
    params = draw(st.sampled_from(PARAM_CHOICES[:2]))
    prices = _prices(snapshot)
    core = draw(st.floats(params.core_min, params.core_max))
    spec = draw(st.floats(params.speculative_min,
                          min(params.speculative_max, 1 - core - params.rotational_min)))
    rot = 1 - core - spec
    if not params.rotational_min <= rot <= params.rotational_max:
        rot = min(max(rot, params.rotational_min), params.rotational_max)
        spec = 1 - core - rot
    book: dict[str, float] = {}
    for bucket, share in ((Bucket.CORE, core), (Bucket.ROTATIONAL, rot),
                          (Bucket.SPECULATIVE, spec)):
        pool = [t for t in ALL_TOKENS if t in prices and _bucket_of(t) is bucket
                and next(s for s in universe.all_tokens() if s.symbol == t).spot]
        if not pool:
            return Case(snapshot, Portfolio(Decimal(0), {}, {}, prices), universe, params, None)
        sector_pick = draw(st.sampled_from(pool))
        sector_tokens = [t for t in pool if SECTOR_OF[t] == SECTOR_OF[sector_pick]]
        for token in sector_tokens:
            book[token] = book.get(token, 0) + share / len(sector_tokens)
    equity = Decimal(100_000)
    spot = {t: equity * Decimal(repr(w)) / prices[t] for t, w in book.items()}
    cash = equity - sum((a * prices[t] for t, a in spot.items()), Decimal(0))
    return Case(snapshot, Portfolio(cash, spot, {}, prices), universe, params,
                draw(priors(snapshot.as_of)))


def _bucket_of(token: str) -> Bucket:
    if SECTOR_OF[token] == "CORE":
        return Bucket.CORE
    return UNIVERSE.sector(SECTOR_OF[token]).bucket


@EXAMPLES
@given(bounded_books())
def test_a_book_inside_the_bounds_stays_inside(case: Case) -> None:
    """If the book obeys the bucket rule, every decision's weights obey it too."""
    ev = run(case)
    d = ev.decision
    if not ev.current_book or ev.target is None:
        return
    core_ok = any(t.spot and ev.report.is_ready(t.symbol) for t in case.universe.core)
    if not (core_ok and ev.target.rotational_sectors and ev.target.speculative_sectors):
        return
    if d.frozen:
        return
    p = case.params
    free = 1.0 - d.cash_reserve  # the book is fully invested: the reserve comes from it
    buckets = bucket_totals(d.spot_weights, case.universe)
    leaving = d.rotation.from_sector if d.rotation is not None else None
    transition = sum(w for t, w in d.spot_weights.items() if SECTOR_OF.get(t) == leaving)
    assert p.core_min * free - TOL <= buckets[Bucket.CORE] <= p.core_max + TOL
    assert (p.speculative_min * free - TOL <= buckets[Bucket.SPECULATIVE]
            <= p.speculative_max + TOL)
    assert buckets[Bucket.ROTATIONAL] >= p.rotational_min * free - TOL
    assert buckets[Bucket.ROTATIONAL] - transition <= p.rotational_max + TOL


def test_listing_after_as_of_is_honoured_by_the_generator() -> None:
    assert date(2024, 1, 1) < DAY0.date()
