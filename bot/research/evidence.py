"""Does a signal predict anything? Rank information coefficients of each engine component.

For every day of the replay data the engine's own sector table is built exactly as a
decision would see it (``score_sectors`` on the point-in-time snapshot at that day's close),
and each component's cross-sectional z-scores are compared with what the sectors did next:
the equal-weighted return of each sector's index basket (the same basket the engine uses)
over the following 7, 14 and 28 days. The comparison is the Spearman rank correlation across
sectors (the information coefficient, IC) of that day.

Over the period, a component's evidence is its mean IC, how often it was positive, and a
t-statistic that counts only ``days / horizon`` independent observations: daily samples of a
28-day forward return share 27 of their days with the next sample, and counting them as
independent would inflate t by about sqrt(28). ICs by calendar year show whether an
edge is stable or one good year. The decay (IC against the horizon) shows how long a signal
lasts.

A component earns weight only with evidence: a positive mean IC with t >= 2 at the horizon
the strategy trades on (14 days by default). The suggested weights are proportional to the
mean IC of the components that pass, scaled to the sum of the configured weights.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.domain.market_view import MarketView
from bot.domain.models import Universe
from bot.domain.params import StrategyParams
from bot.domain.signals import basket_for, score_sectors
from bot.sources.replay import ReplayData, close_time

HORIZONS = (7, 14, 28)
DECISION_HORIZON = 14
MIN_SECTORS = 3
T_STAT_NEEDED = 2.0
LOOKBACK_DAYS = 400


@dataclass(frozen=True, slots=True)
class Evidence:
    """One component at one horizon."""

    component: str
    horizon: int
    days: int
    """Days with an IC (at least ``MIN_SECTORS`` sectors with both figures)."""
    mean_ic: float
    hit_rate: float
    """Share of days with a positive IC."""
    t_stat: float
    """Mean IC over its standard error with ``days / horizon`` independent observations."""
    independent_days: int
    by_year: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvidenceReport:
    first: date
    last: date
    sectors: int
    evidence: tuple[Evidence, ...]
    daily: Mapping[tuple[str, int], tuple[tuple[date, float], ...]]
    """(component, horizon) -> each day's IC."""

    def of(self, component: str, horizon: int) -> Evidence | None:
        return next((e for e in self.evidence
                     if e.component == component and e.horizon == horizon), None)

    def components(self) -> list[str]:
        return sorted({e.component for e in self.evidence})


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Rank correlation; None when either side has no spread."""
    if len(xs) != len(ys) or len(xs) < 2:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)


def _forward_return(data: ReplayData, basket: Sequence[str], day: date,
                    horizon: int) -> float | None:
    """Equal-weighted log return of ``basket`` from the close of ``day`` to the close
    ``horizon`` days later (members without both closes are left out)."""
    start, end = close_time(day), close_time(day + timedelta(days=horizon))
    now = data.marks(start)
    rets = []
    for token in basket:
        rng = data.candle_range(token, start, end)
        if rng is None or token not in now or now[token] <= 0 or rng.close <= 0:
            continue
        if rng.candles < max(1, horizon - 3):  # it stopped trading inside the window
            continue
        rets.append(math.log(float(rng.close) / float(now[token])))
    return statistics.fmean(rets) if rets else None


MIN_INDEPENDENT = 10
"""Fewer non-overlapping days than this give no t-statistic (reported as 0)."""


def _t_stat(values: Sequence[float], horizon: int) -> float:
    """Mean over its standard error, with ``days / horizon`` independent observations."""
    independent = len(values) // horizon
    if independent < MIN_INDEPENDENT:
        return 0.0
    sd = statistics.stdev(values)
    if sd == 0:
        return 0.0
    return statistics.fmean(values) / sd * math.sqrt(independent)


def daily_ics(data: ReplayData, universe: Universe, params: StrategyParams,
              days: Iterable[date], horizons: Sequence[int] = HORIZONS,
              ) -> dict[tuple[str, int], list[tuple[date, float]]]:
    """Each component's IC per day and horizon (days with too few sectors are skipped)."""
    out: dict[tuple[str, int], list[tuple[date, float]]] = defaultdict(list)
    for day in days:
        snapshot = data.snapshot(close_time(day), lookback_days=LOOKBACK_DAYS)
        view = MarketView.build(snapshot)
        report = score_sectors(view, universe, params)
        ready = {t.symbol for t in universe.all_tokens() if report.is_ready(t.symbol)}
        baskets = {s.name: basket_for(s, ready, report.liquidity, params.basket_size)
                   for s in universe.sectors}
        forward = {h: {name: _forward_return(data, basket, day, h)
                       for name, basket in baskets.items() if basket} for h in horizons}
        columns: dict[str, dict[str, float]] = defaultdict(dict)
        for score in report.scores:
            for name, value in score.components.items():
                if value is not None:
                    columns[name][score.sector] = value
            if score.score is not None:
                columns["composite"][score.sector] = score.score
        for name, column in columns.items():
            for h in horizons:
                pairs = [(v, fwd) for sector, v in column.items()
                         if (fwd := forward[h].get(sector)) is not None]
                if len(pairs) < MIN_SECTORS:
                    continue
                ic = spearman([p[0] for p in pairs], [p[1] for p in pairs])
                if ic is not None:
                    out[(name, h)].append((day, ic))
    return out


def summarise(daily: Mapping[tuple[str, int], Sequence[tuple[date, float]]]
              ) -> tuple[Evidence, ...]:
    out = []
    for (name, h), series in sorted(daily.items()):
        values = [ic for _, ic in series]
        if not values:
            continue
        years: dict[int, list[float]] = defaultdict(list)
        for day, ic in series:
            years[day.year].append(ic)
        out.append(Evidence(name, h, len(values), statistics.fmean(values),
                            sum(1 for v in values if v > 0) / len(values),
                            _t_stat(values, h), len(values) // h,
                            {y: statistics.fmean(v) for y, v in sorted(years.items())}))
    return tuple(out)


def evidence_report(data: ReplayData, universe: Universe, params: StrategyParams,
                    first: date, last: date, horizons: Sequence[int] = HORIZONS
                    ) -> EvidenceReport:
    """ICs for every day in ``[first, last - max(horizons)]`` (each needs its future)."""
    end = min(last, data.last_day - timedelta(days=max(horizons)))
    days = [first + timedelta(days=i) for i in range((end - first).days + 1)]
    daily = daily_ics(data, universe, params, days, horizons)
    return EvidenceReport(first, end, len(universe.sectors), summarise(daily),
                          {k: tuple(v) for k, v in daily.items()})


def suggested_weights(report: EvidenceReport, params: StrategyParams,
                      horizon: int = DECISION_HORIZON) -> dict[str, float]:
    """Composite weights from the evidence: components with a positive mean IC and
    t >= 2 share the configured total in proportion to their mean IC; the rest get 0."""
    configured = params.component_weights()
    passing = {name: e.mean_ic for name in configured
               if (e := report.of(name, horizon)) is not None
               and e.mean_ic > 0 and e.t_stat >= T_STAT_NEEDED}
    total = sum(configured.values())
    scale = sum(passing.values())
    return {name: (total * passing[name] / scale if name in passing and scale > 0 else 0.0)
            for name in configured}


__all__ = ["DECISION_HORIZON", "HORIZONS", "Evidence", "EvidenceReport", "daily_ics",
           "evidence_report", "ranks", "spearman", "suggested_weights", "summarise"]
