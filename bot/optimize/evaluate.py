"""One trial on one fold: the real backtest over the fold's windows, scored on its test window.

The fold runs ``run_backtest`` (the paper daemon, step by step) from its training start to its
test end on a throwaway store, with ``replay.end`` at the test end, so the replay data is
loaded up to that day only. The figures the objective reads are taken from the test window:
daily returns from the last training day's equity onwards, the trades filled in the window,
its drawdown. Nothing here knows which parameters are being tried.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
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
    """Daily returns of the test window, the first from the last training day's equity."""
    test_days: tuple[date, ...] = field(default=())
    """The market day each test return covers (close of the day before to its close)."""
    score: float = 0.0


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


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


def run_fold(settings: Settings, fold: Fold, objective: Objective, log: Any,
             data_dir: Path | None = None, workdir: Path | None = None) -> FoldResult:
    """Backtest ``settings`` over ``fold`` and score its test window."""
    scratch = Path(tempfile.mkdtemp(prefix=f"sectorbot-fold{fold.index}-", dir=workdir))
    try:
        run = run_backtest(settings, log, workdir=scratch, data_dir=data_dir,
                           start=fold.train_start, end=fold.test_end)
        daemon = run.daemon
        assert daemon is not None
        try:
            # A step stamped D marks the book at day D-1's close: the test window's returns
            # run from the close before its first day to the close of its last day.
            split = _day_start(fold.test_start + timedelta(days=1))
            train = [p for p in run.points if p.ts < split]
            test = [p for p in run.points if p.ts >= split]
            if not test:
                raise ValueError(f"fold {fold.index}: the backtest ran no step in its test "
                                 f"window {fold.test_start} .. {fold.test_end}")
            analysis = analyse(run.points, daemon.store, daemon.universe,
                               run.settings.strategy.exit_confirmations)
        finally:
            daemon.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    window = ([train[-1]] if train else []) + test
    in_test = [t for t in analysis.trades if t.ts >= split]
    test_figures = window_figures(window, float(sum(t.notional for t in in_test)),
                                  len(in_test))
    in_train = [t for t in analysis.trades if t.ts < split]
    train_figures = window_figures(train, float(sum(t.notional for t in in_train)),
                                   len(in_train))
    returns = tuple(daily_returns([float(p.equity) for p in window]))
    days = tuple((p.ts - timedelta(days=1)).date() for p in window[1:])
    return FoldResult(fold, test_figures, train_figures, returns, days,
                      fold_score(test_figures, objective))


__all__ = ["FoldResult", "WindowFigures", "aggregate", "fold_score", "run_fold",
           "window_figures"]
