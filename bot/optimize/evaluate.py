"""One trial on one fold: the real backtest over the fold's windows, scored on its test window.

Each window (the test window, then the training window apart) runs ``run_backtest`` (the paper
daemon, step by step) on a throwaway store with ``replay.end`` at the window's last day, so
the replay data is loaded up to that day only. The objective reads the test window alone: its
daily returns from the starting cash, the trades filled in it, its drawdown; the training
window's figures are reported as in-sample. Nothing here knows which parameters are tried.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.backtest.analysis import analyse
from bot.backtest.metrics import (
    cagr,
    calmar,
    daily_returns,
    max_drawdown,
    sharpe,
    sortino,
    years_between,
)
from bot.backtest.runner import BookPoint, run_backtest
from bot.config import Settings
from bot.optimize.folds import Fold
from bot.optimize.space import Objective


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """The headline figures of one window of a fold."""

    sharpe: float
    sortino: float
    cagr: float
    calmar: float
    total_return: float
    max_drawdown: float
    turnover_per_year: float = 0.0
    trades: int = 0

    def metric(self, name: str) -> float:
        value: float = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: Fold
    test: WindowFigures
    train: WindowFigures
    test_returns: tuple[float, ...]
    """Daily returns of the test window, the first from the starting cash."""
    test_days: tuple[date, ...] = field(default=())
    """The market day each test return covers (close of the day before to its close)."""
    score: float = 0.0


def window_figures(points: Sequence[BookPoint], traded: float = 0.0,
                   trades: int = 0) -> WindowFigures:
    """Figures of the equity ``points`` (the first is the window's base)."""
    if len(points) < 2:
        return WindowFigures(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, trades)
    times = [p.ts for p in points]
    values = [float(p.equity) for p in points]
    returns = daily_returns(values)
    growth = cagr(values, times[0], times[-1])
    drawdown = max_drawdown(times, values).depth
    mean_equity = statistics.fmean(values)
    years = years_between(times[0], times[-1])
    return WindowFigures(
        sharpe=sharpe(returns), sortino=sortino(returns), cagr=growth,
        calmar=calmar(growth, drawdown),
        total_return=values[-1] / values[0] - 1.0 if values[0] > 0 else 0.0,
        max_drawdown=drawdown,
        turnover_per_year=traded / mean_equity / years if mean_equity > 0 else 0.0,
        trades=trades)


def fold_score(test: WindowFigures, objective: Objective) -> float:
    """The test window's metric less the turnover and drawdown penalties."""
    return (test.metric(objective.metric)
            - objective.turnover_penalty * test.turnover_per_year
            - objective.drawdown_penalty * test.max_drawdown)


def aggregate(scores: Sequence[float], how: str) -> float:
    if how == "mean":
        return statistics.fmean(scores)
    if how == "min":
        return min(scores)
    return statistics.median(scores)


def _run_window(settings: Settings, start: date, end: date, log: Any,
                data_dir: Path | None, workdir: Path | None) -> tuple[list[BookPoint], float,
                                                                      int]:
    """Backtest ``[start, end]`` from cash on data loaded up to ``end``; the equity points
    from the starting cash (the close before ``start``) to the close of ``end``, the
    notional traded and the number of fills."""
    scratch = Path(tempfile.mkdtemp(prefix="sectorbot-window-", dir=workdir))
    try:
        run = run_backtest(settings, log, workdir=scratch, data_dir=data_dir, start=start,
                           end=end)
        daemon = run.daemon
        assert daemon is not None
        try:
            if not run.points:
                raise ValueError(f"the backtest ran no step in {start} .. {end}")
            analysis = analyse(run.points, daemon.store, daemon.universe,
                               run.settings.strategy.exit_confirmations)
        finally:
            daemon.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # The first step (stamped ``start``) trades on the close before ``start``; the capital at
    # that close is the starting cash, so the first day's return pays the first buys' costs.
    cash = Decimal(str(settings.paper.starting_cash))
    first = run.points[0]
    base = BookPoint(first.ts, cash, cash, {}, {}, {}, {})
    traded = float(sum(t.notional for t in analysis.trades))
    return [base, *run.points[1:]], traded, len(analysis.trades)


def run_fold(settings: Settings, fold: Fold, objective: Objective, log: Any,
             data_dir: Path | None = None, workdir: Path | None = None) -> FoldResult:
    """Backtest ``settings`` on the fold's test window, and on its training window apart.

    Each window starts in cash, its indicators warmed up on the history before it (what a
    daemon started that day would read), on data loaded up to the window's last day. Run
    apart, nothing carries from one window into the other: a kill switch tripped in the
    training window (it latches until a person resumes) would otherwise leave the test
    window in cash and score the trip, not the parameters.
    """
    points, traded, trades = _run_window(settings, fold.test_start, fold.test_end, log,
                                         data_dir, workdir)
    test = window_figures(points, traded, trades)
    train = WindowFigures(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if fold.train_days > 0:
        train_points, train_traded, train_trades = _run_window(
            settings, fold.train_start, fold.test_start - timedelta(days=1), log, data_dir,
            workdir)
        train = window_figures(train_points, train_traded, train_trades)
    returns = tuple(daily_returns([float(p.equity) for p in points]))
    # A point stamped D marks the book at day D-1's close: each return covers that day.
    days = tuple((p.ts - timedelta(days=1)).date() for p in points[1:])
    return FoldResult(fold, test, train, returns, days, fold_score(test, objective))


__all__ = ["FoldResult", "WindowFigures", "aggregate", "fold_score", "run_fold",
           "window_figures"]
