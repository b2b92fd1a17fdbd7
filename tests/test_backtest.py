"""``sectorbot backtest`` on the bundled data (issue #12).

The backtest is the paper daemon stepped over history on a throwaway store, so these tests
hold it to what that promises: the files a user reads, the same trades and equity as a
step-by-step ``sectorbot run`` over the same days, a deterministic ``metrics.json``, and an
equity that every fee, slippage, funding payment and price move accounts for.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store.repo import StateStore
from tests.browser import screenshot_bytes
from tests.daemon_proc import env_for, run_cli

REFERENCE = Path(__file__).parent / "data" / "backtest_reference.json"
# About five months through the 2021 rotations, with perps, stops, funding and a kill switch.
START, END = "2021-09-24", "2022-02-28"


def backtest(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["backtest", "--out", str(tmp_path / "out"), "--start", START,
                    "--end", END, *extra], tmp_path / "unused.sqlite3", tmp_path)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("backtest")
    proc = backtest(tmp)
    assert proc.returncode == 0, proc.stderr
    assert "sectorbot" in proc.stdout and "static buckets" in proc.stdout
    return tmp / "out"


def test_the_backtest_writes_what_a_user_reads(report: Path) -> None:
    for name in ("report.html", "metrics.json", "equity.csv", "trades.csv"):
        assert (report / name).stat().st_size > 0, name
    page = (report / "report.html").read_text()
    assert "plotly" in page.lower() and "<script" in page
    assert not re.search(r"<script[^>]+src=", page), "the report must work offline"
    for title in ("Equity against holding", "Drawdown", "Where the money was", "Rotations",
                  "Exposure and leverage", "Funding", "P&L by token", "static buckets",
                  "BTC buy and hold", "equal weight"):
        assert title in page, title
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                "max_drawdown_peak", "max_drawdown_trough"):
        assert key in metrics["strategy"], key
    assert set(metrics["benchmarks"]) == {"BTC buy and hold", "equal weight", "static buckets"}
    assert {"fees", "execution", "funding"} <= set(metrics["costs"])
    assert {"turnover_per_year", "rotations_started", "rotations_completed",
            "rotations_abandoned", "stop_outs"} <= set(metrics["activity"])
    assert metrics["activity"]["trades"] > 0 and metrics["costs"]["fees"] > 0
    with (report / "equity.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 100 and float(rows[-1]["equity"]) == pytest.approx(
        metrics["final_equity"], abs=0.01)
    with (report / "trades.csv").open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == metrics["activity"]["trades"]


def test_every_change_of_equity_is_accounted_for(report: Path) -> None:
    """start + mark-to-market P&L - fees - execution + funding = final equity."""
    metrics = json.loads((report / "metrics.json").read_text())
    assert abs(metrics["reconciliation_residual"]) < 1e-6
    assert metrics["activity"]["stop_outs"] > 0  # stops filled off the close are in it


def test_metrics_reproduce_the_stored_reference(report: Path) -> None:
    """Same data, same config, same bytes (regenerate with SECTORBOT_UPDATE_REFERENCE=1)."""
    produced = (report / "metrics.json").read_text()
    if not REFERENCE.exists() or os.environ.get("SECTORBOT_UPDATE_REFERENCE"):
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(produced)
    assert json.loads(produced) == json.loads(REFERENCE.read_text())


def test_the_backtest_is_the_daemon_stepped_over_the_same_days(report: Path,
                                                              tmp_path: Path) -> None:
    """``sectorbot run`` replaying the same days gives the same trades and final equity:
    the code path is shared, not reimplemented."""
    state = tmp_path / "run.sqlite3"
    days = len((report / "equity.csv").read_text().splitlines()) - 1
    proc = subprocess.run([sys.executable, "-m", "bot", "run", "--cycles", str(days + 5)],
                          cwd=tmp_path, env=env_for(state, SECTORBOT__REPLAY__START=START,
                                                    SECTORBOT__REPLAY__END=END),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ran = StateStore(state, read_only=True)
    tested = StateStore(report / ".state" / "backtest.sqlite3", read_only=True)
    try:
        def trades(store: StateStore) -> list[tuple[object, ...]]:
            return [(f.ts, f.token, f.market, f.side, f.amount, f.price, f.fee)
                    for f in store.fills()]

        assert trades(ran) == trades(tested)
        assert ran.equity_curve()[-1].equity == tested.equity_curve()[-1].equity
        assert len(ran.equity_curve()) == days
    finally:
        ran.close()
        tested.close()


def test_the_report_renders_in_a_browser(report: Path, tmp_path: Path) -> None:
    size = screenshot_bytes(report / "report.html", tmp_path)
    assert size > 50_000, "no (or an empty) screenshot"


def test_a_bad_range_is_refused_without_a_traceback(tmp_path: Path) -> None:
    proc = run_cli(["backtest", "--out", str(tmp_path / "o"), "--start", "2024-01-01",
                    "--end", "2023-01-01"], tmp_path / "x.sqlite3", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "after --end" in proc.stderr
