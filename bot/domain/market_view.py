"""A point-in-time, per-day view of a snapshot, built once per decision.

Every series is cut at ``as_of`` (nothing a live bot could not have known), reduced to one
value per UTC day (the last point of the day) and indexed for lookups by day. Missing days
stay missing: lookups take a tolerance and return ``None`` rather than inventing a value.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot.domain.models import DailySeries, FiniteSeries, MarketSnapshot, Series, TokenSpec
from bot.domain.params import StrategyParams
from bot.domain.volatility import atr_fraction


def _finite_points(series: Series, as_of: datetime) -> tuple[tuple[datetime, float], ...]:
    """The finite points of ``series`` up to ``as_of``."""
    points = series.points
    if isinstance(series, FiniteSeries) and (not points or points[-1][0] <= as_of):
        return points
    return tuple((w, float(v)) for w, v in points if w <= as_of and math.isfinite(v))


@dataclass(frozen=True, slots=True)
class DailyValues:
    """One finite value per day, sorted by day, plus when the newest point was stamped."""

    days: tuple[date, ...]
    values: tuple[float, ...]
    last_time: datetime | None

    @classmethod
    def from_series(cls, series: Series, as_of: datetime) -> DailyValues:
        if isinstance(series, DailySeries) and (not series.points
                                                or series.points[-1][0] <= as_of):
            last = series.points[-1][0] if series.points else None
            return cls(series.days, series.floats, last)
        per_day: dict[date, float] = {}
        last_time: datetime | None = None
        for when, value in series.points:
            if when > as_of:
                break
            if isinstance(value, int | float) and math.isfinite(value):
                per_day[when.date()] = float(value)
                last_time = when
        days = tuple(sorted(per_day))
        return cls(days, tuple(per_day[d] for d in days), last_time)

    def __len__(self) -> int:
        return len(self.days)

    @property
    def last_day(self) -> date | None:
        return self.days[-1] if self.days else None

    def on_or_before(self, day: date, tolerance_days: int) -> float | None:
        """The value of ``day``, or of the latest day before it within the tolerance."""
        idx = bisect.bisect_right(self.days, day)
        if not idx or (day - self.days[idx - 1]).days > tolerance_days:
            return None
        return self.values[idx - 1]

    def window(self, after: date, until: date) -> list[float]:
        """Values of the days in ``(after, until]``."""
        lo = bisect.bisect_right(self.days, after)
        hi = bisect.bisect_right(self.days, until)
        return list(self.values[lo:hi])

    def by_day(self, first: date, last: date) -> dict[date, float]:
        """The values of the days in ``[first, last]``, by day: one slice for a window
        read day by day, instead of a search per day."""
        lo = bisect.bisect_left(self.days, first)
        hi = bisect.bisect_right(self.days, last)
        return dict(zip(self.days[lo:hi], self.values[lo:hi], strict=True))

    def count_since(self, first: date) -> int:
        return len(self.days) - bisect.bisect_left(self.days, first)

    def tail(self, n: int, until: date) -> list[float]:
        """The last ``n`` values on or before ``until`` (fewer when history is short)."""
        hi = bisect.bisect_right(self.days, until)
        return list(self.values[max(0, hi - n):hi])


@dataclass(frozen=True, slots=True)
class MarketView:
    """The snapshot as daily series, plus the reference day every window is measured from.

    ``anchor`` is the newest day with any close: windows are aligned on it across sectors,
    so every sector's momentum covers the same calendar days.
    """

    as_of: datetime
    anchor: date
    closes: Mapping[str, DailyValues]
    volumes: Mapping[str, DailyValues]
    metrics: Mapping[str, Mapping[str, DailyValues]]
    funding: Mapping[str, tuple[tuple[datetime, float], ...]]
    stale: frozenset[str]
    highs: Mapping[str, DailyValues]
    lows: Mapping[str, DailyValues]
    open_interest: Mapping[str, DailyValues] = field(default_factory=dict)

    @classmethod
    def build(cls, snapshot: MarketSnapshot) -> MarketView:
        as_of = snapshot.as_of
        closes = {t: DailyValues.from_series(s, as_of) for t, s in sorted(snapshot.closes.items())}
        volumes = {t: DailyValues.from_series(s, as_of)
                   for t, s in sorted(snapshot.quote_volumes.items())}
        metrics = {sector: {m: DailyValues.from_series(s, as_of) for m, s in sorted(per.items())}
                   for sector, per in sorted(snapshot.sector_metrics.items())}
        funding = {t: _finite_points(s, as_of) for t, s in sorted(snapshot.funding.items())}
        highs = {t: DailyValues.from_series(s, as_of) for t, s in sorted(snapshot.highs.items())}
        lows = {t: DailyValues.from_series(s, as_of) for t, s in sorted(snapshot.lows.items())}
        last_days = [d.last_day for d in closes.values() if d.last_day is not None]
        anchor = max(last_days) if last_days else as_of.date()
        oi = {t: DailyValues.from_series(s, as_of)
              for t, s in sorted(snapshot.open_interest.items())}
        return cls(as_of, anchor, closes, volumes, metrics, funding, snapshot.stale, highs, lows,
                   oi)

    @property
    def prices_stale(self) -> bool:
        return "prices" in self.stale

    def price_stale(self, token: str, max_age_days: float) -> bool:
        """No fresh close for ``token``: its feed is marked stale, it has no history, or its
        newest close is older than ``max_age_days``. A held token in this state is frozen:
        its price is not known, so it is neither bought nor sold."""
        if self.prices_stale or f"prices:{token}" in self.stale:
            return True
        series = self.closes.get(token)
        if series is None or series.last_time is None:
            return True
        return self.as_of - series.last_time > timedelta(days=max_age_days)

    def price_on(self, token: str, day: date, tolerance_days: int) -> float | None:
        """A positive close for ``token`` on ``day`` (within the tolerance), else None."""
        series = self.closes.get(token)
        value = series.on_or_before(day, tolerance_days) if series else None
        return value if value is not None and value > 0 else None

    def log_return(self, token: str, start: date, end: date, tolerance_days: int) -> float | None:
        first = self.price_on(token, start, tolerance_days)
        last = self.price_on(token, end, tolerance_days)
        if first is None or last is None:
            return None
        return math.log(last / first)

    def atr(self, token: str, days: int) -> float | None:
        """Average true range over the last ``days`` closes as a fraction of the last close
        (see :mod:`bot.domain.volatility`); None when prices are stale or history is short."""
        series = self.closes.get(token)
        if series is None or self.prices_stale or f"prices:{token}" in self.stale:
            return None
        hi = bisect.bisect_right(series.days, self.anchor)
        lo = max(0, hi - days - 1)
        closes, wanted = series.values[lo:hi], series.days[lo:hi]
        if not wanted:
            return atr_fraction(closes, [], [], days)
        highs, lows = self.highs.get(token), self.lows.get(token)
        by_day_high = highs.by_day(wanted[0], wanted[-1]) if highs else {}
        by_day_low = lows.by_day(wanted[0], wanted[-1]) if lows else {}
        high = [by_day_high.get(d) for d in wanted]
        low = [by_day_low.get(d) for d in wanted]
        return atr_fraction(closes, high, low, days)

    def closes_by_day(self, token: str, first: date, last: date) -> dict[date, float]:
        """``token``'s closes of the days in ``[first, last]``, by day (empty if unknown)."""
        series = self.closes.get(token)
        return series.by_day(first, last) if series is not None else {}

    def liquidity(self, token: str, window_days: int) -> float:
        """Average daily quote volume over the window ending at the anchor (0 if unknown)."""
        series = self.volumes.get(token)
        if series is None:
            return 0.0
        values = [v for v in series.window(self.anchor - timedelta(days=window_days),
                                           self.anchor) if v >= 0]
        return sum(values) / len(values) if values else 0.0

    def token_unready_reason(self, token: TokenSpec, params: StrategyParams) -> str | None:
        """Why a token does not count at ``as_of`` (None when it does).

        Point in time: a token counts only from its listing date and only once it has
        ``min_history_days`` closes since then, with a recent close. A token that stopped
        trading (delisted) falls out by the age rule, so no hindsight enters the universe.
        """
        today = self.as_of.date()
        if not token.is_listed(today):
            return f"not listed until {token.listed}"
        if f"prices:{token.symbol}" in self.stale:
            return "prices stale"
        series = self.closes.get(token.symbol)
        if series is None or not series.days:
            return "no price history"
        first = token.listed or series.days[0]
        count = series.count_since(first)
        if count < params.min_history_days:
            return f"{count} closes < {params.min_history_days}"
        assert series.last_time is not None
        age = self.as_of - series.last_time
        if age > timedelta(days=params.max_price_age_days):
            return f"last close {age.days} days old"
        return None

    def metric_series(self, sector: str, metric: str) -> DailyValues | None:
        return self.metrics.get(sector, {}).get(metric)
