"""``sectorbot backtest``: run, compare with the benchmarks, measure, write the files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest.analysis import Analysis, analyse, reconcile, time_in_sectors
from bot.backtest.benchmarks import Curve, benchmark_curves
from bot.backtest.metrics import curve_metrics, max_drawdown, years_between
from bot.backtest.report import figures, write_csvs, write_html, write_metrics
from bot.backtest.runner import BacktestRun, BookPoint, Progress, run_backtest
from bot.config import Settings


@dataclass
class BacktestResult:
    run: BacktestRun
    curves: list[Curve]
    analysis: Analysis
    metrics: dict[str, Any]


def summarise(points: list[BookPoint], curves: list[Curve], analysis: Analysis,
              starting: Decimal, exit_confirmations: int) -> dict[str, Any]:
    """``metrics.json``: the strategy and the benchmarks on the same figures, then costs,
    activity, exposure and time in each sector. Nothing in it depends on the wall clock,
    so the same data and config give the same bytes."""
    times = [p.ts for p in points]
    values = [float(p.equity) for p in points]
    years = years_between(times[0], times[-1])
    mean_equity = sum(values) / len(values)
    traded = sum(float(t.notional) for t in analysis.trades)
    rotations = analysis.rotations
    return {
        "period": f"{times[0]:%Y-%m-%d} .. {times[-1]:%Y-%m-%d} ({len(points)} daily steps)",
        "starting_equity": float(starting),
        "final_equity": values[-1],
        "strategy": curve_metrics(times, values),
        "benchmarks": {c.name: {**curve_metrics(times, list(c.values)), "costs": c.costs}
                       for c in curves},
        "costs": {"fees": float(analysis.fees), "execution": float(analysis.execution),
                  "funding": float(analysis.funding)},
        "activity": {
            "trades": len(analysis.trades),
            "turnover_per_year": traded / mean_equity / years if mean_equity else 0.0,
            "rotations_started": len(rotations),
            "rotations_completed": sum(1 for r in rotations if r.outcome == "completed"),
            "rotations_abandoned": sum(1 for r in rotations if r.outcome == "abandoned"),
            "stop_outs": analysis.stop_outs,
        },
        "exposure": {
            "gross_mean": sum(analysis.gross) / len(analysis.gross),
            "net_mean": sum(analysis.net) / len(analysis.net),
            "perp_leverage_mean": sum(analysis.perp_leverage) / len(analysis.perp_leverage),
            "perp_leverage_max": max(analysis.perp_leverage),
        },
        "time_in_sector": time_in_sectors(analysis),
        "reconciliation_residual": float(reconcile(points, analysis, starting)),
        "exit_confirmations": exit_confirmations,
    }


def backtest(settings: Settings, out: Path, log: Any, data_dir: Path | None = None,
             start: date | None = None, end: date | None = None,
             progress: Progress | None = None) -> BacktestResult:
    """Run the daemon over history on a store in ``out/.state`` and write the report."""
    out.mkdir(parents=True, exist_ok=True)
    run = run_backtest(settings, log, workdir=out / ".state", data_dir=data_dir, start=start,
                       end=end, progress=progress)
    daemon = run.daemon
    assert daemon is not None
    try:
        if not run.points:
            raise ValueError("the backtest ran no step: check replay.start/end against the "
                             "data's dates")
        times = [p.ts for p in run.points]
        marks = [daemon.data.marks(t) for t in times]
        paper = run.settings.paper
        starting = Decimal(str(paper.starting_cash))
        curves = benchmark_curves(times, marks, daemon.universe, run.settings.strategy,
                                  starting, Decimal(str(paper.spot_fee_bps + paper.slippage_bps)))
        del marks  # a Decimal per token and day: not held through the report's peak
        exits = run.settings.strategy.exit_confirmations
        analysis = analyse(run.points, daemon.store, daemon.universe, exits)
        metrics = summarise(run.points, curves, analysis, starting, exits)
        drawdowns = {"sectorbot": _drawdown_series([float(p.equity) for p in run.points]),
                     **{c.name: _drawdown_series(list(c.values)) for c in curves}}
        write_csvs(out, run.points, curves, analysis)
        write_metrics(out, metrics)
        write_html(out, "sectorbot backtest", metrics,
                   figures(run.points, curves, analysis, drawdowns), analysis,
                   {k: float(v) for k, v in analysis.pnl_by_sector(daemon.universe).items()})
    finally:
        daemon.shutdown()
    return BacktestResult(run, curves, analysis, metrics)


def run_summary(store: Any, data: Any, universe: Any, settings: Settings) -> dict[str, Any]:
    """The end-of-run figures of a paper replay (``sectorbot run``): the equity curve the
    store holds against BTC buy-and-hold and the static buckets, on the same costs."""
    curve = store.equity_curve()
    if len(curve) < 2:
        return {}
    times = [p.ts for p in curve]
    marks = [data.marks(t) for t in times]
    paper = settings.paper
    starting = Decimal(str(paper.starting_cash))
    benchmarks = benchmark_curves(times, marks, universe, settings.strategy, starting,
                                  Decimal(str(paper.spot_fee_bps + paper.slippage_bps)))
    return {
        "period": f"{times[0]:%Y-%m-%d} .. {times[-1]:%Y-%m-%d} ({len(times)} daily steps)",
        "strategy": curve_metrics(times, [float(p.equity) for p in curve]),
        "benchmarks": {c.name: curve_metrics(times, list(c.values)) for c in benchmarks
                       if c.name != "equal weight"},
    }


def _drawdown_series(values: list[float]) -> list[float]:
    peak, out = 0.0, []
    for value in values:
        peak = max(peak, value)
        out.append(1.0 - value / peak if peak > 0 else 0.0)
    return out


__all__ = ["BacktestResult", "backtest", "max_drawdown", "run_summary", "summarise"]
