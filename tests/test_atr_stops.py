"""ATR-sized stops: the true-range maths by hand, and the engine's legs in ``atr`` mode."""

from __future__ import annotations

import csv
import dataclasses
import itertools
from datetime import UTC, datetime

import pytest

from bot.domain.market_view import MarketView
from bot.domain.models import PositionSide
from bot.domain.params import StrategyParams
from bot.domain.volatility import atr_fraction, atr_stop_distance, true_ranges
from bot.sources.replay import ReplayData, bundled_sample_dir
from tests.engine_fixtures import PLAYBOOK_START, Market, at, playbook_market
from tests.test_engine_scenario import run


def test_true_range_takes_the_widest_of_span_and_gaps() -> None:
    closes = [100.0, 104.0, 96.0, 97.0]
    highs = [None, 105.0, 99.0, None]
    lows = [None, 101.0, 95.0, None]
    # day 1: span 4, gap up to the high 5 -> 5; day 2: span 4, gap down 104->95 = 9 -> 9;
    # day 3: no extremes -> |97 - 96| = 1
    assert true_ranges(closes, highs, lows) == [5.0, 9.0, 1.0]
    assert atr_fraction(closes, highs, lows, 3) == pytest.approx(5.0 / 97.0)
    assert atr_fraction(closes, highs, lows, 2) == pytest.approx(5.0 / 97.0)  # (9 + 1) / 2


def test_atr_needs_a_full_window_of_positive_closes() -> None:
    assert atr_fraction([100.0, 101.0], [None, None], [None, None], 2) is None
    assert atr_fraction([100.0, 0.0, 101.0], [None] * 3, [None] * 3, 2) is None
    with pytest.raises(ValueError, match="aligned"):
        true_ranges([1.0, 2.0], [None], [None, None])


@pytest.mark.parametrize(("atr", "expected"), [
    (0.005, 0.03),    # 1.5 % -> lifted to the floor
    (0.02, 0.06),     # 3 ATRs
    (0.2, 0.25),      # 60 % -> cut to the ceiling
    (None, None),
])
def test_atr_distance_is_kept_between_floor_and_ceiling(atr: float | None,
                                                        expected: float | None) -> None:
    got = atr_stop_distance(atr, 3.0, 0.03, 0.25)
    assert got == (pytest.approx(expected) if expected is not None else None)


def _expected_distance(market: Market, token: str, day: int, params: StrategyParams) -> float:
    """Independent of the engine: the fixture's closes before ``at(day)``, close to close."""
    visible = sorted(d for d in market.closes[token] if at(d + 1) <= at(day))
    window = [market.closes[token][d] for d in visible[-params.stop_atr_days - 1:]]
    moves = [abs(b - a) for a, b in itertools.pairwise(window)]
    atr = sum(moves) / len(moves) / window[-1]
    return min(max(params.stop_atr_multiple * atr, params.stop_atr_floor),
               params.stop_atr_ceiling)


def test_atr_mode_sizes_each_legs_stop_from_its_own_volatility() -> None:
    market = playbook_market()
    params = dataclasses.replace(StrategyParams(), stop_mode="atr", stop_atr_floor=0.01)
    steps = run(market, PLAYBOOK_START, days=2, params=params)
    legs = steps[1][0].overlay
    assert {leg.side for leg in legs} == {PositionSide.SHORT, PositionSide.LONG}
    distances = set()
    for leg in legs:
        expected = _expected_distance(market, leg.token, 1, params)
        assert leg.stop_distance == pytest.approx(expected, rel=1e-9), leg.token
        assert "x ATR" in leg.reason
        distances.add(round(leg.stop_distance, 6))
    assert len(distances) > 1  # the tokens' volatilities differ, so do their stops
    percent = run(market, PLAYBOOK_START, days=2)[1][0].overlay
    assert {leg.stop_distance for leg in percent} == {0.08}


def test_atr_mode_falls_back_to_percent_without_history() -> None:
    market = playbook_market()
    params = dataclasses.replace(StrategyParams(), stop_mode="atr", stop_atr_days=400,
                                 min_history_days=30)
    legs = run(market, PLAYBOOK_START, days=2, params=params)[1][0].overlay
    assert legs and all(leg.stop_distance == 0.08 for leg in legs)
    assert all("no 400-day ATR" in leg.reason for leg in legs)


def test_bad_stop_settings_are_refused_by_field() -> None:
    with pytest.raises(ValueError, match="stop_mode"):
        StrategyParams(stop_mode="trailing")
    with pytest.raises(ValueError, match="stop_atr_floor"):
        StrategyParams(stop_atr_floor=0.3, stop_atr_ceiling=0.2)
    with pytest.raises(ValueError, match="stop_atr_multiple"):
        StrategyParams(stop_atr_multiple=0)



def test_replayed_snapshots_carry_daily_extremes_into_the_atr() -> None:
    """On the bundled history the ATR uses highs and lows, computed here from the CSV."""
    root = bundled_sample_dir()
    as_of = datetime(2021, 5, 20, tzinfo=UTC)
    view = MarketView.build(ReplayData.load(root).snapshot(as_of))
    with (root / "ohlcv" / "BTC.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["date"] < "2021-05-20"][-15:]
    closes = [float(r["close"]) for r in rows]
    spans = [max(float(r["high"]) - float(r["low"]), abs(float(r["high"]) - prev),
                 abs(float(r["low"]) - prev)) for prev, r in zip(closes, rows[1:], strict=False)]
    assert view.atr("BTC", 14) == pytest.approx(sum(spans) / 14 / closes[-1], rel=1e-9)
    close_only = sum(abs(b - a) for a, b in itertools.pairwise(closes)) / 14
    assert sum(spans) / 14 > close_only  # the intraday extremes widen the range
