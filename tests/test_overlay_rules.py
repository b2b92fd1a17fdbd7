"""Issue #11, case 6: overlay sizing and churn, each a regression test failing on fcf230a.

- legs were sized total / configured count: one eligible token got a third of the hedge;
- perp-only tokens (XMR, SKY) never got a price, so their legs were skipped;
- a hedge short closed for paying funding was re-opened the next cycle (the funding block
  applied to longs only) and closed again 60 s later, every day;
- a leg stopped out was re-opened the next day.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bot.domain.market_view import MarketView
from bot.domain.models import (
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    OverlayLeg,
    PositionSide,
    Regime,
    RotationState,
    SectorSpec,
    Side,
    TokenSpec,
    Universe,
)
from bot.domain.overlay import plan_overlay
from bot.domain.params import StrategyParams
from bot.domain.risk import check_overlay
from bot.domain.risk_limits import RiskLimits
from bot.domain.signals import score_sectors
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.service.cycle import TradingCycle
from bot.store.repo import StateStore
from tests.engine_fixtures import (
    DAY0,
    PLAYBOOK_START,
    UNIVERSE,
    playbook_market,
    portfolio_from_weights,
)
from tests.test_risk_watch import RecordingLog

PARAMS = StrategyParams()


def test_one_eligible_hedge_token_carries_the_whole_hedge() -> None:
    """L1 with a single perp-listed token: the hedge is sized over the tokens chosen."""
    only_sol = Universe(UNIVERSE.core, tuple(
        dataclasses.replace(s, tokens=tuple(
            dataclasses.replace(t, perp=t.symbol == "SOL") for t in s.tokens))
        if s.name == "L1" else s for s in UNIVERSE.sectors))
    market = playbook_market()
    report = score_sectors(MarketView.build(market.snapshot(DAY0)), only_sol, PARAMS)
    portfolio = portfolio_from_weights(PLAYBOOK_START, market.prices(DAY0))
    state = RotationState("L1", "L2", DAY0, 0.3, 0, DAY0)
    legs, _ = plan_overlay(state, only_sol, report, Regime.BULL, portfolio, PARAMS)
    shorts = [leg for leg in legs if leg.side is PositionSide.SHORT]
    assert [leg.token for leg in shorts] == ["SOL"]
    assert abs(shorts[0].equity_fraction - PARAMS.hedge_equity_fraction) < 1e-12


def test_a_perp_only_token_is_priced_from_its_perp(tmp_path: Path) -> None:
    universe = Universe(
        (TokenSpec("BTC", "CORE"),),
        (SectorSpec("PRIVACY", UNIVERSE.sector("PRIVACY").bucket,
                    (TokenSpec("XMR", "PRIVACY", spot=False),), 4),))
    paper = PaperExchange(PaperConfig(starting_cash=Decimal(10_000)), ["BTC"], ["BTC", "XMR"])
    paper.update_market(DAY0, {"BTC": Decimal(60_000), "XMR": Decimal(150)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    cycle = TradingCycle(universe=universe, params=PARAMS, limits=RiskLimits(),
                         exchange=paper, store=store, signals=None,  # type: ignore[arg-type]
                         log=RecordingLog())
    assert cycle.read_portfolio().prices.get("XMR") == Decimal(150)
    store.close()


def test_a_short_closed_for_funding_is_not_reopened_until_funding_normalises() -> None:
    short = OverlayLeg("SOL", PositionSide.SHORT, 0.02, 2.0, 0.08, "hedge L1")
    kept, blocks = check_overlay((short,), RiskLimits(), Regime.BULL,
                                 funding_blocked=frozenset({"SOL"}))
    assert kept == () and [b.rule for b in blocks] == ["funding_hysteresis"]


def test_a_token_stopped_out_is_not_reentered_within_the_cooldown(tmp_path: Path) -> None:
    """The journal remembers the stop-out (on the venue's clock); the cycle blocks a new leg
    on that token for ``stop_cooldown_days``."""
    store = StateStore(tmp_path / "s.sqlite3")
    stop = OrderIntent("sb-st-avax", "AVAX", MarketKind.PERP, Side.SELL, Decimal(10),
                       order_type=OrderType.STOP_MARKET, trigger_price=Decimal(20),
                       reduce_only=True)
    store.journal_intent(stop, None)
    fired_at = DAY0 + timedelta(hours=10)
    store.journal_result(OrderResult("sb-st-avax", "7", "AVAX", MarketKind.PERP, Side.SELL,
                                     OrderType.STOP_MARKET, OrderStatus.TRIGGERED,
                                     Decimal(10), Decimal(10), Decimal(20), Decimal("0.1"),
                                     trigger_price=Decimal(20), timestamp=fired_at))
    assert store.last_stop_outs() == {"AVAX": fired_at}
    paper = PaperExchange(PaperConfig(starting_cash=Decimal(10_000)), ["AVAX"], ["AVAX"])
    paper.update_market(DAY0, {"AVAX": Decimal(20)}, {})
    cycle = TradingCycle(universe=UNIVERSE, params=PARAMS, limits=RiskLimits(),
                         exchange=paper, store=store, signals=None,  # type: ignore[arg-type]
                         log=RecordingLog())
    portfolio = cycle.read_portfolio()
    leg = OverlayLeg("AVAX", PositionSide.LONG, 0.05, 2.0, 0.08, "amplify")
    next_day = fired_at + timedelta(days=1)
    kept, blocks = check_overlay((leg,), RiskLimits(), Regime.BULL,
                                 cooling=cycle._cooling(next_day, portfolio))
    assert kept == () and [b.rule for b in blocks] == ["stop_cooldown"]
    week_later = fired_at + timedelta(days=RiskLimits().stop_cooldown_days)
    assert cycle._cooling(week_later, portfolio) == frozenset()
    store.close()
