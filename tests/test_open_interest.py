"""Open interest in the crowding component: rising OI with rising funding is leverage
crowding; without OI data the component is exactly what it was (the bundled backtest is
unchanged); a failed OI read leaves that token's crowding unread, as stale funding does.
Also the ccxt adapter against the Binance emulator's ``/futures/data/openInterestHist``."""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal

from bot.domain.market_view import MarketView
from bot.domain.models import MarketSnapshot, Series
from bot.domain.params import StrategyParams
from bot.domain.signals import score_sectors
from tests.engine_fixtures import UNIVERSE, at, playbook_market

PARAMS = StrategyParams()


def oi(as_of_day: int, growth: float) -> Series:
    """30 daily readings, flat, then ``growth`` (a ratio) spread over the last 7 days."""
    points = []
    for back in range(29, -1, -1):
        value = 1000.0 * (growth ** (max(0, 7 - back) / 7) if back < 7 else 1.0)
        points.append((at(as_of_day - back), value))
    return Series(tuple(points))


def crowding(snapshot: MarketSnapshot) -> tuple[dict[str, float | None], tuple[str, ...]]:
    report = score_sectors(MarketView.build(snapshot), UNIVERSE, PARAMS)
    return {s.sector: s.components["crowding"] for s in report.scores}, report.notes


def test_flat_or_no_open_interest_changes_nothing() -> None:
    snapshot = playbook_market().snapshot(at(0))
    before, notes = crowding(snapshot)
    flat = dataclasses.replace(snapshot, open_interest={t: oi(0, 1.0) for t in
                                                        ("SOL", "AVAX", "ADA", "ARB", "OP")})
    after, with_oi = crowding(flat)
    assert after == before, "the penalty is unchanged; the notes show the reading"
    assert [n.split(", open interest")[0] for n in with_oi] == list(notes)
    assert "crowded: SOL funding 44% APR > 30%, open interest +0% in 7d" in with_oi


def test_rising_open_interest_with_rich_funding_deepens_the_crowding_penalty() -> None:
    snapshot = playbook_market().snapshot(at(0))  # L1's SOL/AVAX/ADA pay ~44 % APR
    before, _ = crowding(snapshot)
    rising = dataclasses.replace(snapshot, open_interest={"SOL": oi(0, 1.5), "ARB": oi(0, 1.5)})
    after, notes = crowding(rising)
    assert after["L1"] is not None and before["L1"] is not None
    assert after["L1"] < before["L1"], "rising OI with rising funding: leverage crowding"
    assert after["L2"] == before["L2"], "ARB's OI rose but its funding is at the baseline"
    assert any(n.startswith("leverage crowding: SOL open interest +50% in 7d") for n in notes)
    assert any(n.startswith("crowded: SOL funding") and "open interest +50%" in n
               for n in notes)


def test_a_failed_open_interest_read_leaves_that_token_s_crowding_unread() -> None:
    snapshot = playbook_market().snapshot(at(0))
    before, _ = crowding(snapshot)
    failed = dataclasses.replace(snapshot, stale=frozenset({"oi:SOL", "oi:AVAX", "oi:ADA"}))
    after, _ = crowding(failed)
    assert after["L1"] is None and before["L1"] is not None
    assert after["L2"] == before["L2"]


def test_old_open_interest_is_not_read() -> None:
    snapshot = playbook_market().snapshot(at(0))
    before, _ = crowding(snapshot)
    old = dataclasses.replace(snapshot, open_interest={"SOL": oi(-5, 1.5)})
    assert crowding(old)[0] == before


def test_the_adapter_reads_binance_open_interest_statistics() -> None:
    """ccxt's ``fetch_open_interest_history(symbol, "1d")`` against the emulator's route in
    Binance's dialect: base-asset amounts, oldest first, one request per perp."""
    from tests.exchange_emulator import BinanceEmulator
    from tests.test_ccxt_exchange import KEY, SECRET, make

    with BinanceEmulator(KEY, SECRET) as emu:
        emu.book.open_interest = {"SOLUSDT": [Decimal(1000)] * 23 + [Decimal(1000 + 100 * i)
                                                                     for i in range(1, 8)]}
        adapter = make(emu, perp_tokens=("SOL", "BTC"))
        adapter.load_markets()
        answer = adapter.fetch_open_interest_history(["SOL", "BTC", "NOPE"], 30)
        adapter.close()
        paths = [r.path for r in emu.requests if "openInterestHist" in r.path]
    assert answer is not None and answer.failed == {}
    sol = answer.history["SOL"]
    assert len(sol) == 30 and [v for _, v in sol][-8:] == [1000.0] + [1000.0 + 100 * i
                                                                      for i in range(1, 8)]
    assert all(b[0] - a[0] == 86_400_000 for a, b in itertools.pairwise(sol))
    assert [v for _, v in answer.history["BTC"]] == [1000.0] * 30
    assert len(paths) == 2 and "NOPE" not in answer.history
