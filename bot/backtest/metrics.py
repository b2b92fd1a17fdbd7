"""Performance figures of an equity curve, the way the field reports them.

Daily points; returns are simple daily returns; annualised with 365 days (crypto trades every
day); risk-free rate 0. Sharpe and Sortino use the mean daily return over its deviation
(Sortino: the downside deviation, returns below 0), times sqrt(365). Calmar is CAGR over the
maximum drawdown. Pure functions on floats: no I/O, no library beyond the standard one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class Drawdown:
    depth: float
    peak: datetime | None
    trough: datetime | None
    recovered: datetime | None


def daily_returns(values: Sequence[float]) -> list[float]:
    return [b / a - 1.0 for a, b in pairwise(values) if a > 0]


def years_between(first: datetime, last: datetime) -> float:
    return max((last - first).total_seconds() / (DAYS_PER_YEAR * 86_400), 1e-9)


def cagr(values: Sequence[float], first: datetime, last: datetime) -> float:
    if len(values) < 2 or values[0] <= 0 or values[-1] <= 0:
        return 0.0
    growth: float = (values[-1] / values[0]) ** (1.0 / years_between(first, last)) - 1.0
    return growth


def volatility(returns: Sequence[float]) -> float:
    if len(returns) < 2:
        return 0.0
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return math.sqrt(var) * math.sqrt(DAYS_PER_YEAR)


def sharpe(returns: Sequence[float]) -> float:
    vol = volatility(returns)
    if vol == 0:
        return 0.0
    return (sum(returns) / len(returns)) * DAYS_PER_YEAR / vol


def sortino(returns: Sequence[float]) -> float:
    if len(returns) < 2:
        return 0.0
    downside = math.sqrt(sum(min(0.0, r) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return 0.0
    return (sum(returns) / len(returns)) / downside * math.sqrt(DAYS_PER_YEAR)


def max_drawdown(times: Sequence[datetime], values: Sequence[float]) -> Drawdown:
    """The deepest fall from a running peak, with the peak, trough and recovery dates."""
    peak_value, peak_at = -math.inf, None
    worst = Drawdown(0.0, None, None, None)
    worst_peak = math.inf
    for when, value in zip(times, values, strict=True):
        if value > peak_value:
            peak_value, peak_at = value, when
        depth = 1.0 - value / peak_value if peak_value > 0 else 0.0
        if depth > worst.depth:
            worst, worst_peak = Drawdown(depth, peak_at, when, None), peak_value
    if worst.trough is not None:
        for when, value in zip(times, values, strict=True):
            if when > worst.trough and value >= worst_peak:
                worst = Drawdown(worst.depth, worst.peak, worst.trough, when)
                break
    return worst


def calmar(growth: float, drawdown: float) -> float:
    return growth / drawdown if drawdown > 0 else 0.0


def curve_metrics(times: Sequence[datetime], values: Sequence[float]) -> dict[str, object]:
    """The headline figures of one equity curve (also used for the benchmarks)."""
    returns = daily_returns(values)
    growth = cagr(values, times[0], times[-1]) if times else 0.0
    dd = max_drawdown(times, values) if times else Drawdown(0.0, None, None, None)
    return {
        "start": times[0].date().isoformat() if times else None,
        "end": times[-1].date().isoformat() if times else None,
        "total_return": values[-1] / values[0] - 1.0 if values and values[0] > 0 else 0.0,
        "cagr": growth,
        "volatility": volatility(returns),
        "sharpe": sharpe(returns),
        "sortino": sortino(returns),
        "calmar": calmar(growth, dd.depth),
        "max_drawdown": dd.depth,
        "max_drawdown_peak": dd.peak.date().isoformat() if dd.peak else None,
        "max_drawdown_trough": dd.trough.date().isoformat() if dd.trough else None,
        "max_drawdown_recovered": dd.recovered.date().isoformat() if dd.recovered else None,
    }
