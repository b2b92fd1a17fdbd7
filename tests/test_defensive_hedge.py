"""The playbook's defensive posture (issue #15): in a bear or unknown regime, shorts on the
core's perps against the core spot held, each with a stop; off in a bull regime; off by
default. Asserted on what the account holds after the orders apply, through a real backtest
of the 2022 bear market, and on the legs the engine asks for."""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bot.backtest.runner import run_backtest
from bot.config import load_settings
from bot.domain.market_view import MarketView
from bot.domain.models import MarketKind, PositionSide, Regime
from bot.domain.overlay import defensive_legs
from bot.domain.params import StrategyParams
from bot.domain.signals import score_sectors
from bot.optimize.space import apply_values
from bot.optimize.study import QuietLog
from tests.engine_fixtures import DAY0, UNIVERSE, playbook_market, portfolio_from_weights

CORE = ("BTC", "ETH")


def _legs(regime: Regime, fraction: float, weights: dict[str, float]) -> tuple[object, ...]:
    market = playbook_market()
    snapshot = market.snapshot(DAY0)
    params = dataclasses.replace(StrategyParams(), defensive_hedge_fraction=fraction)
    report = score_sectors(MarketView.build(snapshot), UNIVERSE, params)
    prices = {t: Decimal(str(s.points[-1][1])) for t, s in snapshot.closes.items()}
    portfolio = portfolio_from_weights(weights, prices)
    legs, _ = defensive_legs(UNIVERSE, report, regime, portfolio, params)
    return legs


def test_bear_and_unknown_regimes_short_the_core_held_and_nothing_more() -> None:
    for regime in (Regime.BEAR, Regime.UNKNOWN):
        legs = _legs(regime, 0.5, {"BTC": 0.4, "ETH": 0.2, "SOL": 0.2})
        by_token = {leg.token: leg for leg in legs}  # type: ignore[attr-defined]
        assert set(by_token) == set(CORE)
        assert by_token["BTC"].equity_fraction == pytest.approx(0.2, rel=1e-6)
        assert by_token["ETH"].equity_fraction == pytest.approx(0.1, rel=1e-6)
        for leg in by_token.values():
            assert leg.side is PositionSide.SHORT
            assert 0 < leg.stop_distance < 1 and 0 < leg.leverage <= 5


def test_no_defensive_leg_in_a_bull_regime_when_off_or_without_core_spot() -> None:
    assert _legs(Regime.BULL, 0.5, {"BTC": 0.4, "ETH": 0.2}) == ()
    assert _legs(Regime.BEAR, 0.0, {"BTC": 0.4, "ETH": 0.2}) == ()
    assert _legs(Regime.BEAR, 0.5, {"SOL": 0.5}) == ()


def test_the_fraction_is_refused_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="defensive_hedge_fraction"):
        dataclasses.replace(StrategyParams(), defensive_hedge_fraction=1.5)


def test_through_the_2022_bear_the_core_is_hedged_never_net_short_and_stopped() -> None:
    """A backtest from June 2022: BTC under its 200-day average until January 2023. After
    every step the core's shorts are at most the core spot held; at the end of the bear
    window every perp position has a stop on the exchange; once the regime turns the hedge
    is gone."""
    settings = apply_values(load_settings(None), {"strategy.defensive_hedge_fraction": 0.5})
    run = run_backtest(settings, QuietLog(), workdir=Path(tempfile.mkdtemp()),
                       start=date(2022, 6, 12), end=date(2022, 10, 31))
    daemon = run.daemon
    assert daemon is not None
    try:
        hedged_days = 0
        for point in run.points:
            for token in CORE:
                short = -min(Decimal(0), point.perps.get(token, Decimal(0)))
                held = point.spot.get(token, Decimal(0))
                assert short <= held * Decimal("1.05"), (point.ts, token, short, held)
                hedged_days += short > 0
        assert hedged_days > 50
        positions = [p for p in daemon.exchange.fetch_positions() if p.amount != 0]
        stops = {o.token for o in daemon.exchange.fetch_open_orders(trigger=True)
                 if o.market is MarketKind.PERP}
        assert positions and all(p.token in stops for p in positions)
    finally:
        daemon.shutdown()
    later = run_backtest(settings, QuietLog(), workdir=Path(tempfile.mkdtemp()),
                         start=date(2022, 12, 1), end=date(2023, 3, 15))
    assert later.daemon is not None
    try:
        assert any(p.perps.get("BTC", 0) < 0 for p in later.points[:20])
        assert all(later.points[-1].perps.get(t, 0) >= 0 for t in CORE)
    finally:
        later.daemon.shutdown()


def test_off_by_default_the_bear_window_holds_no_core_short() -> None:
    run = run_backtest(load_settings(None), QuietLog(), workdir=Path(tempfile.mkdtemp()),
                       start=date(2022, 6, 12), end=date(2022, 8, 31))
    assert run.daemon is not None
    try:
        assert all(p.perps.get(t, 0) >= 0 for p in run.points for t in CORE)
    finally:
        run.daemon.shutdown()
