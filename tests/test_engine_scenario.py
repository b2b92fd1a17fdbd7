"""The rotation engine on hand-built markets: the playbook's worked example and each rule."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from decimal import Decimal

import pytest

from bot.domain.engine import decide, evaluate
from bot.domain.models import (
    Bucket,
    Decision,
    PerpPosition,
    Portfolio,
    PositionSide,
    Regime,
    RotationState,
    TokenSpec,
    Universe,
)
from bot.domain.params import StrategyParams
from tests.engine_fixtures import (
    DAY0,
    PLAYBOOK_START,
    SECTOR_OF,
    UNIVERSE,
    Market,
    at,
    follow,
    path,
    playbook_market,
    portfolio_from_weights,
    reprice,
    sector_totals,
)

PARAMS = StrategyParams()


def run(market: Market, start: dict[str, float], days: int,
        params: StrategyParams = PARAMS) -> list[tuple[Decision, dict[str, float]]]:
    """Feed decisions back: execute each one, pass its rotation state on, advance a day.

    Returns each decision with the sector weights of the book it started from.
    """
    portfolio = portfolio_from_weights(start, market.prices(at(0)))
    prior: RotationState | None = None
    out = []
    for day in range(days):
        prices = market.prices(at(day))
        portfolio = reprice(portfolio, prices)
        ev = evaluate(market.snapshot(at(day)), portfolio, UNIVERSE, params, prior)
        out.append((ev.decision, sector_totals(ev.current_book)))
        portfolio = follow(ev.decision, portfolio, prices, at(day))
        prior = ev.decision.rotation
    return out


def legs_by_sector(decision: Decision) -> dict[tuple[str, PositionSide], list[str]]:
    out: dict[tuple[str, PositionSide], list[str]] = {}
    for leg in decision.overlay:
        out.setdefault((SECTOR_OF[leg.token], leg.side), []).append(leg.token)
    return out


# ------------------------------------------------------------------------------------------
# The playbook's Phase 3 example
# ------------------------------------------------------------------------------------------


def test_playbook_worked_example_rotates_l1_to_l2() -> None:
    """From core 55 / L1 30 / RWA 15 to core 55 / L1 15 / L2 20 / RWA 10, hedged and amplified.

    Day 0 starts the rotation and moves 15 % of the book (the slow-move cap); day 1 reaches
    the playbook's target state with a small net short on L1 leaders and a <= 3x long on two
    L2 tokens; day 3 confirms the exit: overlay closed, L1 down to its residual.
    """
    steps = run(playbook_market(), PLAYBOOK_START, days=6)
    first, before = steps[0]
    assert before == pytest.approx({"CORE": 0.55, "L1": 0.30, "RWA": 0.15})
    assert first.regime is Regime.BULL
    assert first.action == "rotate"
    assert first.rotation is not None
    assert (first.rotation.from_sector, first.rotation.to_sector) == ("L1", "L2")
    assert first.rotation.from_weight_at_start == pytest.approx(0.30)
    assert any(r.startswith("rotate L1->L2: score gap") for r in first.reasons)

    # Why: L1 overbought with TVL leaving net of price; L2 inflows, devs and momentum rising.
    scores = {s.sector: s for s in first.scores}
    l1, l2 = scores["L1"].components, scores["L2"].components
    assert l1["overbought"] is not None and l1["overbought"] < 0
    assert l1["tvl_30d"] is not None and l1["tvl_30d"] < 0
    for name in ("tvl_7d", "tvl_30d", "dev", "mom_7d", "mom_14d", "volume"):
        value = l2[name]
        assert value is not None and value > 1, name
    assert scores["L2"].rank == 1
    assert any("overbought: L1" in r for r in first.reasons)

    # Day 0: the target would sell 29 % of equity; the slow move sells the 15 % cap, out
    # of L1 (and some core and RWA to fund L2 and the overlay's margin).
    before_tokens = portfolio_from_weights(PLAYBOOK_START, playbook_market().prices(at(0)))
    sold = sum(max(0.0, w - first.spot_weights.get(t, 0.0))
               for t, w in before_tokens.spot_weights().items())
    assert sold == pytest.approx(PARAMS.max_shift_per_rebalance, abs=1e-9)
    day0 = sector_totals(first.spot_weights)
    assert day0["L2"] > 0 and day0["L1"] < 0.30

    # Day 1: the playbook's post-rotation table, in shares of equity: L1 keeps half of its
    # 30 % while the exit is unconfirmed, the overlay's margin (11.25 %) stays in cash, and
    # the buckets divide the rest within their bounds (core 53 / L2 20 / RWA 10 of it).
    second, _ = steps[1]
    assert second.action == "rebalance"
    invest = 1 - second.cash_reserve
    assert second.cash_reserve == pytest.approx(0.1125)
    assert sum(second.spot_weights.values()) == pytest.approx(invest)
    table = sector_totals(second.spot_weights)
    assert table["L1"] == pytest.approx(0.15, abs=1e-9)
    assert {s: round(w / invest, 3) for s, w in table.items()} == {
        "CORE": 0.531, "L1": 0.169, "L2": 0.2, "RWA": 0.1}
    for decision in (first, second):
        legs = legs_by_sector(decision)
        assert set(legs) == {("L1", PositionSide.SHORT), ("L2", PositionSide.LONG)}
        assert 2 <= len(legs["L1", PositionSide.SHORT]) <= 3
        assert len(legs["L2", PositionSide.LONG]) == 2
        shorts = sum(g.equity_fraction for g in decision.overlay
                     if g.side is PositionSide.SHORT)
        longs = sum(g.equity_fraction for g in decision.overlay if g.side is PositionSide.LONG)
        assert 0 < shorts <= 0.05 + 1e-12 and 0 < longs <= 0.10 + 1e-12
        assert all(0 < g.leverage <= 3 and g.stop_distance > 0 for g in decision.overlay)
        margin = sum(g.equity_fraction / g.leverage for g in decision.overlay)
        assert decision.cash_reserve >= margin

    # No decision sells more than 15 % of equity out of any sector.
    for decision, before in steps:
        sold = sum(max(0.0, w - sector_totals(decision.spot_weights).get(s, 0.0))
                   for s, w in before.items())
        assert sold <= PARAMS.max_shift_per_rebalance + 1e-9

    # Day 3: the exit is confirmed after three valid decisions.
    confirmed, _ = steps[3]
    assert confirmed.rotation is not None and confirmed.rotation.confirmations == 3
    assert any(r.startswith("exit from L1 confirmed") for r in confirmed.reasons)
    assert confirmed.overlay == ()
    assert confirmed.cash_reserve == 0
    totals = sector_totals(confirmed.spot_weights)
    assert totals["L1"] == pytest.approx(0.03)  # 10 % of its 30 % at the start
    assert totals["L2"] == pytest.approx(0.27)
    assert [d.action for d, _ in steps[4:]] == ["hold", "hold"]


def test_worked_example_is_deterministic_across_runs() -> None:
    from bot.domain.codec import decision_to_json

    first = [decision_to_json(d) for d, _ in run(playbook_market(), PLAYBOOK_START, 4)]
    second = [decision_to_json(d) for d, _ in run(playbook_market(), PLAYBOOK_START, 4)]
    assert first == second


# ------------------------------------------------------------------------------------------
# The cycle prior
# ------------------------------------------------------------------------------------------


def twin_market() -> Market:
    """L1 and L2 with identical data (token for token), both ahead of a flat market."""
    days = range(-320, 5)
    m = Market()
    m.closes["BTC"] = path(days, 30_000, lambda d: 0.001, 1, noise=0.01)
    m.closes["ETH"] = path(days, 2_000, lambda d: 0.001, 2, noise=0.01)
    twins = (("SOL", "ARB"), ("AVAX", "OP"), ("ADA", "POL"), ("NEAR", "IMX"))
    for seed, (a, b) in enumerate(twins):
        m.closes[a] = m.closes[b] = path(days, 10, lambda d: 0.003, 40 + seed, noise=0.04)
        m.volumes[a] = m.volumes[b] = {d: 1e8 * (4 - seed) for d in days}
    m.closes["DOT"] = path(days, 7, lambda d: 0.004, 50, noise=0.02)
    m.volumes["DOT"] = {d: 1e6 for d in days}
    for seed, token in enumerate(t for t in SECTOR_OF if SECTOR_OF[t] not in ("L1", "L2")
                                 and token_not_core(t)):
        m.closes[token] = path(days, 5, lambda d: 0.0, 60 + seed, noise=0.02)
        m.volumes[token] = {d: 1e7 for d in days}
    tvl = path(days, 5e9, lambda d: 0.012, 70, noise=0.003)
    for sector in ("L1", "L2"):
        m.metrics[sector] = {"tvl_usd": dict(tvl)}
    for i, sector in enumerate(("ORACLES", "DEX", "LENDING", "RWA", "PRIVACY")):
        m.metrics[sector] = {"tvl_usd": path(days, 5e9, lambda d: 0.0, 80 + i, noise=0.003)}
    return m


def token_not_core(token: str) -> bool:
    return SECTOR_OF[token] != "CORE"


@pytest.mark.parametrize("bonus", [PARAMS.cycle_bonus, PARAMS.rotation_threshold - 1e-6])
def test_cycle_prior_alone_cannot_trigger_a_rotation(bonus: float) -> None:
    """L2 is the stage after L1 and gets the bonus; with identical signals that is all it has.

    Even the largest bonus the parameters accept leaves the gap below the threshold.
    """
    params = dataclasses.replace(PARAMS, basket_size=4, cycle_bonus=bonus)
    market = twin_market()
    portfolio = portfolio_from_weights({"BTC": 0.3, "ETH": 0.25, "SOL": 0.1, "AVAX": 0.1,
                                        "ADA": 0.1, "ONDO": 0.15}, market.prices(at(0)))
    for day in range(4):
        ev = evaluate(market.snapshot(at(day)), reprice(portfolio, market.prices(at(day))),
                      UNIVERSE, params, None)
        scores = {s.sector: s for s in ev.decision.scores}
        assert scores["L2"].components["cycle_prior"] == pytest.approx(bonus)
        assert scores["L1"].components["cycle_prior"] == 0
        l1_score, l2_score = scores["L1"].score, scores["L2"].score
        assert l1_score is not None and l2_score is not None
        assert l2_score - bonus == pytest.approx(l1_score, abs=1e-9)  # identical signals
        assert ev.decision.action != "rotate" and ev.decision.rotation is None
        assert any(r.startswith("no rotation: L2 leads held L1") for r in ev.decision.reasons)


def test_a_bonus_as_large_as_the_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle_bonus"):
        dataclasses.replace(PARAMS, cycle_bonus=PARAMS.rotation_threshold)


# ------------------------------------------------------------------------------------------
# Regime, staleness, point in time
# ------------------------------------------------------------------------------------------


def bear_market() -> Market:
    m = playbook_market()
    m.closes["BTC"] = path(range(-320, 13), 60_000, lambda d: -0.002, 1, noise=0.01)
    return m


def test_bear_regime_shifts_to_core_and_blocks_leveraged_longs() -> None:
    market = bear_market()
    cash = Portfolio(Decimal(100_000), {}, {}, market.prices(at(0)))
    initial = decide(market.snapshot(at(0)), cash, UNIVERSE, PARAMS, None)
    assert initial.regime is Regime.BEAR
    assert any(r.startswith("regime bear: BTC") for r in initial.reasons)
    assert initial.bucket_weights[Bucket.CORE] == pytest.approx(PARAMS.core_max)
    assert initial.bucket_weights[Bucket.SPECULATIVE] == pytest.approx(PARAMS.speculative_min)

    rotating = run(market, PLAYBOOK_START, days=2)[0][0]
    assert rotating.action == "rotate"
    assert rotating.overlay and all(g.side is PositionSide.SHORT for g in rotating.overlay)
    assert any("no leveraged long on L2: regime bear" in r for r in rotating.reasons)


def test_unknown_regime_is_treated_as_bear() -> None:
    market = playbook_market()
    market.closes["BTC"] = {d: v for d, v in market.closes["BTC"].items() if d > -100}
    cash = Portfolio(Decimal(100_000), {}, {}, market.prices(at(0)))
    decision = decide(market.snapshot(at(0)), cash, UNIVERSE, PARAMS, None)
    assert decision.regime is Regime.UNKNOWN
    assert decision.bucket_weights[Bucket.CORE] == pytest.approx(PARAMS.core_max)


def test_stale_prices_hold_everything_as_it_is() -> None:
    market = playbook_market()
    prices = market.prices(at(0))
    short = PerpPosition("SOL", Decimal("-10"), prices["SOL"], Decimal(2), prices["SOL"],
                         stop_price=prices["SOL"] * Decimal("1.08"))
    portfolio = portfolio_from_weights(PLAYBOOK_START, prices, cash_share=0.05,
                                       perps={"SOL": short})
    prior = RotationState("L1", "L2", at(-1), 0.3, 1, at(-1))
    snapshot = market.snapshot(at(0), stale=frozenset({"prices", "funding"}))
    decision = decide(snapshot, portfolio, UNIVERSE, PARAMS, prior)
    assert decision.action == "hold"
    # Shares of equity: the 5 % cash line stays cash.
    assert decision.spot_weights == pytest.approx({t: w * 0.95
                                                   for t, w in PLAYBOOK_START.items()})
    assert decision.rotation == prior  # not advanced on stale data
    assert [(g.token, g.side) for g in decision.overlay] == [("SOL", PositionSide.SHORT)]
    assert decision.overlay[0].stop_distance == pytest.approx(0.08)
    assert "stale: prices" in decision.reasons


def test_stale_metric_reduces_confidence_and_is_named() -> None:
    market = playbook_market()
    fresh = decide(market.snapshot(at(0)), portfolio_from_weights(
        PLAYBOOK_START, market.prices(at(0))), UNIVERSE, PARAMS, None)
    stale = decide(market.snapshot(at(0), stale=frozenset({"metric:tvl_usd:L1"})),
                   portfolio_from_weights(PLAYBOOK_START, market.prices(at(0))),
                   UNIVERSE, PARAMS, None)
    before = next(s for s in fresh.scores if s.sector == "L1")
    after = next(s for s in stale.scores if s.sector == "L1")
    assert after.components["tvl_7d"] is None and after.components["tvl_30d"] is None
    assert after.confidence == pytest.approx(before.confidence - PARAMS.tvl_weight)
    assert "stale: metric:tvl_usd:L1" in stale.reasons


def test_old_metric_points_count_as_stale() -> None:
    market = playbook_market()
    market.metrics["L2"]["tvl_usd"] = {d: v for d, v in market.metrics["L2"]["tvl_usd"].items()
                                       if d < -10}
    decision = decide(market.snapshot(at(0)), portfolio_from_weights(
        PLAYBOOK_START, market.prices(at(0))), UNIVERSE, PARAMS, None)
    l2 = next(s for s in decision.scores if s.sector == "L2")
    assert l2.components["tvl_30d"] is None
    assert any(r.startswith("stale: metric:tvl_usd:L2") for r in decision.reasons)


def test_tokens_count_only_from_listing_and_with_enough_history() -> None:
    market = playbook_market()
    market.closes["OP"] = {d: v for d, v in market.closes["OP"].items() if d >= -20}
    late = Universe(UNIVERSE.core, tuple(
        dataclasses.replace(s, tokens=tuple(
            dataclasses.replace(t, listed=DAY0.date() + timedelta(days=5))
            if t.symbol == "ARB" else t for t in s.tokens))
        for s in UNIVERSE.sectors))
    ev = evaluate(market.snapshot(at(0)), portfolio_from_weights(
        PLAYBOOK_START, market.prices(at(0))), late, PARAMS, None)
    assert "not listed" in ev.report.unready["ARB"]
    assert "closes <" in ev.report.unready["OP"]
    tokens = set(ev.decision.spot_weights) | {g.token for g in ev.decision.overlay}
    assert not tokens & {"ARB", "OP"}
    assert ev.target is not None and ev.target.chosen_tokens["L2"] == ("POL", "IMX")


def test_perp_only_tokens_are_never_bought_spot() -> None:
    universe = Universe(UNIVERSE.core, tuple(
        dataclasses.replace(s, tokens=tuple(
            dataclasses.replace(t, spot=False) if t.symbol in ("ARB", "OP") else t
            for t in s.tokens)) for s in UNIVERSE.sectors))
    market = playbook_market()
    decision = decide(market.snapshot(at(0)), portfolio_from_weights(
        PLAYBOOK_START, market.prices(at(0))), universe, PARAMS, None)
    assert not {"ARB", "OP"} & set(decision.spot_weights)
    assert not {"ARB", "OP"} & {g.token for g in decision.overlay}  # not long legs either


# ------------------------------------------------------------------------------------------
# The life of a rotation
# ------------------------------------------------------------------------------------------


def playbook_portfolio(day: int = 0) -> Portfolio:
    return portfolio_from_weights(PLAYBOOK_START, playbook_market().prices(at(day)))


def test_signals_flipping_abandon_the_rotation_and_close_the_overlay() -> None:
    market = playbook_market()
    prior = RotationState("L1", "ORACLES", at(-1), 0.3, 1, at(-1))
    decision = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE, PARAMS, prior)
    assert any("rotation L1->ORACLES abandoned: signals flipped" in r for r in decision.reasons)
    assert decision.rotation is not None and decision.rotation.abandoned == at(0)
    assert decision.overlay == ()


def test_an_abandoned_rotation_holds_off_the_next_one() -> None:
    """Issue #11, case 6: an abandoned rotation let the next (often the reverse) rotation
    start in the same decision: LENDING->DEX, DEX->L2, L2->DEX in four days."""
    market = playbook_market()
    prior = RotationState("L1", "ORACLES", at(-1), 0.3, 1, at(-1))
    decision = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE, PARAMS, prior)
    assert decision.action != "rotate"
    assert decision.rotation is not None and decision.rotation.to_sector == "ORACLES"
    assert any(r.startswith("no new rotation: L1->ORACLES was abandoned")
               for r in decision.reasons)
    later = decide(market.snapshot(at(0) + timedelta(days=PARAMS.rotation_abandon_cooldown_days)),
                   playbook_portfolio(), UNIVERSE, PARAMS, decision.rotation)
    assert later.action == "rotate" and later.rotation is not None
    assert later.rotation.abandoned is None


def test_time_stop_ends_an_unconfirmed_rotation() -> None:
    market = playbook_market()
    prior = RotationState("L1", "L2", at(-25), 0.3, 0, at(-1))
    decision = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE, PARAMS, prior)
    assert any(r.startswith("time stop: rotation L1->L2") for r in decision.reasons)


def test_a_rerun_for_the_same_time_does_not_count_twice() -> None:
    market = playbook_market()
    prior = RotationState("L1", "L2", at(-1), 0.3, 2, checked=at(0))
    decision = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE, PARAMS, prior)
    assert decision.rotation is not None and decision.rotation.confirmations == 2


def test_no_new_rotation_during_the_cooldown() -> None:
    market = playbook_market()
    done = RotationState("DEX", "L1", at(-5), 0.3, PARAMS.exit_confirmations, at(-2))
    decision = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE, PARAMS, done)
    assert decision.action != "rotate"
    assert any(r.startswith("no new rotation: cooldown") for r in decision.reasons)
    later = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE,
                   dataclasses.replace(PARAMS, rotation_cooldown_days=0), done)
    assert later.action == "rotate"


def test_crowded_funding_blocks_a_long_on_that_token() -> None:
    market = playbook_market()
    market.funding["ARB"] = [(w, 0.0001) for w, _ in market.funding["ARB"]]  # ~88 % APR
    decision = decide(market.snapshot(at(0)), playbook_portfolio(), UNIVERSE, PARAMS, None)
    longs = [g.token for g in decision.overlay if g.side is PositionSide.LONG]
    assert "ARB" not in longs and len(longs) == 2
    assert any(r.startswith("no long on ARB: funding") for r in decision.reasons)


def test_stale_funding_adds_no_new_long() -> None:
    market = playbook_market()
    snapshot = market.snapshot(at(0), stale=frozenset({"funding"}))
    decision = decide(snapshot, playbook_portfolio(), UNIVERSE, PARAMS, None)
    assert decision.action == "rotate"
    assert not [g for g in decision.overlay if g.side is PositionSide.LONG]
    assert all(s.components["crowding"] is None for s in decision.scores)


def test_initial_allocation_from_cash_goes_straight_to_the_buckets() -> None:
    market = playbook_market()
    cash = Portfolio(Decimal(50_000), {}, {}, market.prices(at(0)))
    decision = decide(market.snapshot(at(0)), cash, UNIVERSE, PARAMS, None)
    assert decision.action == "rebalance"
    assert decision.bucket_weights == pytest.approx(
        {Bucket.CORE: 0.55, Bucket.ROTATIONAL: 0.30, Bucket.SPECULATIVE: 0.15})
    totals = sector_totals(decision.spot_weights)
    assert totals["L2"] == pytest.approx(0.30)  # the confident leader
    assert math.fsum(decision.spot_weights.values()) == pytest.approx(1.0, abs=1e-9)
    assert any(r.startswith("initial allocation") for r in decision.reasons)


def test_a_sector_with_one_eligible_token_may_hold_it_alone() -> None:
    market = playbook_market()
    for token in ("OP", "POL", "IMX"):
        del market.closes[token]
    cash = Portfolio(Decimal(50_000), {}, {}, market.prices(at(0)))
    decision = decide(market.snapshot(at(0)), cash, UNIVERSE, PARAMS, None)
    l2 = [t for t in decision.spot_weights if SECTOR_OF[t] == "L2"]
    assert l2 in ([], ["ARB"])


def test_listing_dates_come_from_the_universe_not_the_data() -> None:
    spec = TokenSpec("NEW", "L1", listed=date(2030, 1, 1))
    assert not spec.is_listed(DAY0.date())
