"""Defects a read-only review found in the issue #11 changes before they were resolved.

Each test failed on the code as first written (commit 9106b6f):
1. a leg opened and stopped out between two risk readings: its loss read as a withdrawal,
   and the drawdown switch never saw it;
2. the high-water mark moved by the flow's amount, so a deposit hid a drawdown and a
   withdrawal deepened it;
3. any unpriced holding (BNB dust) switched flow detection off;
4. with nothing else eligible, the sector a rotation left was bought back up to the whole
   investable share;
5. a trip for failed jobs sold the spot book (the configured action answers a loss only);
6. a tripped switch could still buy (no sell-only rule in the planner);
7. refused transfers kept the engine planning a pooled account it could never fund;
9. buys funded by idle cash were slowed by the sell cap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.domain.allocation import slow_move
from bot.domain.engine import evaluate
from bot.domain.flows import Reading, external_flow, rebased_high_water
from bot.domain.models import MarketKind, OrderIntent, Portfolio, RotationState, Side
from bot.domain.params import StrategyParams
from bot.domain.planner import plan_orders
from bot.domain.risk_limits import RiskLimits
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.service.cycle import read_portfolio
from bot.service.executor import ExecutionReport, Executor
from bot.service.risk_watch import RiskWatch
from bot.store.repo import StateStore
from tests.engine_fixtures import ALL_TOKENS, DAY0, PLAYBOOK_START, UNIVERSE, playbook_market
from tests.test_book_properties import MARKETS, Account
from tests.test_risk_watch import RecordingLog
from tests.test_wallet_transfers import make_rig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MARKET = playbook_market(horizon=12)
PARAMS = StrategyParams()


def paper_watch(tmp_path: Path, limits: RiskLimits) -> tuple[PaperExchange, StateStore,
                                                            Executor, RiskWatch, RecordingLog]:
    ex = PaperExchange(PaperConfig(starting_cash=Decimal(10000)), ["BTC", "SOL"], ["SOL"])
    ex.update_market(T0, {"BTC": Decimal(40000), "SOL": Decimal(100)}, {})
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    executor = Executor(ex, store, log)
    return ex, store, executor, RiskWatch(ex, store, executor, limits, log), log


def test_a_leg_stopped_out_between_readings_is_a_loss_not_a_withdrawal(tmp_path: Path) -> None:
    ex, store, executor, watch, log = paper_watch(tmp_path,
                                                  RiskLimits(max_drawdown_fraction=0.04))
    read = lambda: read_portfolio(ex, ["BTC", "SOL"])  # noqa: E731
    watch.run(read, salt="rw-1")
    before = read().equity()
    report = ExecutionReport()
    executor.submit(OrderIntent("sb-o", "SOL", MarketKind.PERP, Side.BUY, Decimal(60),
                                leverage=Decimal(3)), "d1", report)
    executor.protect({"SOL"}, {"SOL": 0.08}, 0.08, "d1", report)
    ex.update_market(T0 + timedelta(hours=12), {"SOL": Decimal(95)}, {},
                     {"SOL": (Decimal(90), Decimal(101))})  # the stop fires in between
    assert ex.fetch_positions() == []
    assert (before - read().equity()) / before > Decimal("0.04")
    watch.run(read, salt="rw-2")
    assert log.named("equity.external_flow") == []
    assert watch.killed, "a real 4.8 % loss must trip a 4 % switch"
    store.close()


def test_a_flow_moves_the_high_water_mark_in_proportion() -> None:
    # 20 % down from 100k; a deposit of 100k leaves it 20 % down, not 10 %
    assert rebased_high_water(Decimal(100_000), Decimal(100_000), Decimal(180_000)) \
        == Decimal(225_000)
    # a withdrawal of 40k leaves it 20 % down too, not 33 % (a false trip)
    assert rebased_high_water(Decimal(100_000), Decimal(-40_000), Decimal(40_000)) \
        == Decimal(50_000)


def test_unpriced_dust_does_not_switch_flow_detection_off() -> None:
    def account(cash: int) -> Portfolio:
        return Portfolio(Decimal(cash), {"BTC": Decimal(1), "BNB": Decimal("0.01")}, {},
                         {"BTC": Decimal(40_000)})

    assert external_flow(Reading.of(account(60_000)), Reading.of(account(20_000)),
                         0.03) == Decimal(-40_000)


def test_a_rotation_left_is_never_bought_back_when_nothing_else_is_eligible() -> None:
    prices = MARKET.prices(DAY0)
    equity = Decimal(100_000)
    tokens = {"SOL": equity * Decimal("0.05") / prices["SOL"],
              "AVAX": equity * Decimal("0.05") / prices["AVAX"],
              "ARB": equity * Decimal("0.10") / prices["ARB"]}
    account = Account(equity * Decimal("0.80"), None, tokens, {}, prices)
    stale = frozenset(f"prices:{t}" for t in ALL_TOKENS if t not in ("SOL", "AVAX"))
    state = RotationState("L1", "L2", DAY0 - timedelta(days=10), 0.3,
                          PARAMS.exit_confirmations, DAY0 - timedelta(days=1))
    decision = evaluate(MARKET.snapshot(DAY0, stale=stale), account.portfolio(), UNIVERSE,
                        PARAMS, state).decision
    plan = plan_orders(decision, account.portfolio(), MARKETS, (), plan_id="p")
    bought = sum(float(i.amount * (i.reference_price or 0)) for i in plan.intents
                 if i.side is Side.BUY and i.token in ("SOL", "AVAX"))
    assert bought == 0.0
    residual = PARAMS.exit_residual_fraction * 0.3
    assert decision.spot_weights.get("SOL", 0) + decision.spot_weights.get("AVAX", 0) \
        <= residual + 1e-9


def test_a_trip_for_failed_jobs_freezes_spot(tmp_path: Path) -> None:
    _ex, store, _executor, watch, _log = paper_watch(tmp_path, RiskLimits())
    store.trip_kill_switch("5 consecutive failed jobs >= 5")
    assert watch.kill_action() == "freeze"
    store.clear_kill_switch("test")
    store.trip_kill_switch("drawdown 26.0% from high-water 100.00 >= 25%")
    assert watch.kill_action() == RiskLimits().kill_switch_action == "to_cash"
    store.close()


def test_a_tripped_switch_never_buys_even_after_prices_move() -> None:
    prices = MARKET.prices(DAY0)
    invested = Decimal(80_000)
    tokens = {t: invested * Decimal(repr(w)) / prices[t] for t, w in PLAYBOOK_START.items()}
    account = Account(Decimal(10_000), Decimal(10_000), tokens, {}, prices)
    decision = evaluate(MARKET.snapshot(DAY0), account.portfolio(), UNIVERSE, PARAMS, None,
                        kill_switch="to_core").decision
    fallen = {**prices, "BTC": prices["BTC"] * Decimal("0.95"),
              "ETH": prices["ETH"] * Decimal("0.95")}
    later = Account(Decimal(11_000), Decimal(9_000), tokens, {}, fallen).portfolio()
    plan = plan_orders(decision, later, MARKETS, (), plan_id="p-kill", sell_only=True)
    assert [i for i in plan.intents if i.side is Side.BUY and i.market is MarketKind.SPOT] == []
    assert all(i.reduce_only for i in plan.intents if i.market is MarketKind.PERP)


def test_refused_transfers_stop_the_pooled_planning(tmp_path: Path) -> None:
    rigs = make_rig(tmp_path, "demo", Decimal(20_000))
    rig = next(rigs)
    try:
        for hour in range(4):
            rig.cycle.run(DAY0 + timedelta(hours=hour))
        assert [r.status for r in rig.store.transfers()] == ["rejected"]
    finally:
        rigs.close()


def test_idle_cash_funds_buys_at_once_whatever_the_sell_cap() -> None:
    moved, step, sells = slow_move({"A": 0.5}, {"B": 0.95}, 0.15)
    assert sells == 0.5 and abs(step - 0.3) < 1e-12
    assert abs(moved["A"] - 0.35) < 1e-12
    # 45 % idle cash plus the 15 % sold pays for 60 % of B at once (not 28.5 %)
    assert abs(moved["B"] - 0.60) < 1e-12
