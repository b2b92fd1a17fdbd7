"""Replayed market data: the directory format of ``docs/data-format.md`` as point-in-time snapshots.

Everything is parsed and validated once in :meth:`ReplayData.load` (the CSV readers are in
``replay_csv``), so a bad file fails at start-up with its path, line and reason rather than in
the middle of a backtest. After that each query is a few ``bisect`` calls on pre-built time
lists, because the replay asks for a snapshot once per simulated day.

Visibility (the rule that prevents look-ahead): a daily row dated ``D`` (candle or sector
metric) closes at the end of ``D`` and is stamped ``D+1 00:00 UTC``; a funding row is stamped
at its settlement. A query at ``as_of`` sees exactly the points stamped ``<= as_of``.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.data import bundled_sample_dir
from bot.domain.models import (
    DailySeries,
    FiniteSeries,
    FundingRate,
    MarketSnapshot,
    Series,
)
from bot.sources.replay_csv import (
    Candle,
    ReplayDataError,
    close_time,
    read_funding,
    read_metrics,
    read_ohlcv,
    token_of_file,
)

__all__ = ["DEFAULT_MAX_AGE", "Candle", "CandleRange", "ReplayData", "ReplayDataError",
           "bundled_sample_dir", "close_time"]

#: How old the newest visible point may be before its signal counts as stale. Keys in a
#: ``max_age`` override are tried most specific first: ``prices:BTC`` then ``prices``;
#: ``funding:ETH`` then ``funding``; ``metric:tvl_usd:L1`` then ``metric:tvl_usd`` then
#: ``metric``. Two days on prices tolerates one missed daily candle; metrics from DefiLlama
#: routinely lag a day more.
DEFAULT_MAX_AGE: Mapping[str, timedelta] = {
    "prices": timedelta(days=2),
    "funding": timedelta(days=2),
    "metric": timedelta(days=3),
}


@dataclass(frozen=True, slots=True)
class CandleRange:
    """The candles that closed in ``(start, end]`` merged into one bar.

    A paper exchange uses ``high``/``low`` to trigger stops and liquidations on intraday
    extremes that the closes alone would hide.
    """

    token: str
    start: datetime
    end: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    candles: int


@dataclass(frozen=True, slots=True)
class _Track:
    """One time-ordered signal: times for ``bisect`` and points ready to slice into a Series.

    A daily track (one finite value per day: candles, sector metrics) also keeps its days
    and values, so each decision's window is three tuple slices (a ``DailySeries``) rather
    than a per-point conversion of 400 days of history.
    """

    times: tuple[datetime, ...]
    points: tuple[tuple[datetime, float], ...]
    days: tuple[date, ...] | None = None
    floats: tuple[float, ...] | None = None
    finite: bool = False

    def series(self, since: datetime, as_of: datetime) -> Series:
        lo, hi = bisect_right(self.times, since), bisect_right(self.times, as_of)
        if self.days is not None and self.floats is not None:
            return DailySeries(self.points[lo:hi], self.days[lo:hi], self.floats[lo:hi])
        if self.finite:
            return FiniteSeries(self.points[lo:hi])
        return Series(self.points[lo:hi])


def _track(points: list[tuple[datetime, float]]) -> _Track:
    points = sorted(points, key=lambda p: p[0])
    return _Track(tuple(t for t, _ in points), tuple(points),
                  finite=all(math.isfinite(v) for _, v in points))


@functools.lru_cache(maxsize=1 << 17)
def _date_of(when: datetime) -> date:
    """One shared ``date`` per close time (every track of every token repeats them)."""
    return when.date()


def _daily_track(points: list[tuple[datetime, float]]) -> _Track:
    """A track of daily points; a day given twice keeps its later point, and a non-finite
    value is dropped (missing stays missing), exactly as a decision would read them."""
    per_day: dict[date, tuple[datetime, float]] = {}
    for when, value in sorted(points, key=lambda p: p[0]):
        if math.isfinite(value):
            per_day[_date_of(when)] = (when, value)
    days = tuple(sorted(per_day))
    kept = tuple(per_day[d] for d in days)
    return _Track(tuple(t for t, _ in kept), kept, days, tuple(v for _, v in kept))


# --------------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class _PriceHistory:
    """One token's candles as the queries need them: float tracks for the engine, exact
    prices for marks and intraday ranges. Built file by file, so a large data set never
    holds every candle's seven Decimals at once (~120 MB at 100 tokens x 4 years)."""

    times: tuple[datetime, ...]
    closes: _Track
    quote_volumes: _Track
    highs: _Track
    lows: _Track
    bars: _Bars
    """(open, high, low, close) per candle."""
    days: tuple[date, ...]

    @classmethod
    def of(cls, candles: list[Candle]) -> _PriceHistory:
        times = tuple(close_time(c.day) for c in candles)

        def track(field: str) -> _Track:
            return _daily_track([(w, float(getattr(c, field)))
                                 for w, c in zip(times, candles, strict=True)])

        return cls(times, track("close"), track("quote_volume"), track("high"), track("low"),
                   _Bars.of([(c.open, c.high, c.low, c.close) for c in candles]),
                   tuple(c.day for c in candles))


class _Bars:
    """Each candle's exact (open, high, low, close), packed as one text per candle.

    Four Decimals and their tuple take about 490 bytes a candle, the text about 90: at 100
    tokens x 4 years that is 71 MB against 13 MB of a backtest's peak memory. A step reads a
    handful of bars (the marks, the intraday range since the last step), so parsing them
    back when read costs microseconds; ``Decimal(str(d)) == d`` exactly, so nothing is lost.
    """

    __slots__ = ("_packed",)

    def __init__(self, packed: tuple[str, ...]) -> None:
        self._packed = packed

    @classmethod
    def of(cls, bars: list[tuple[Decimal, Decimal, Decimal, Decimal]]) -> _Bars:
        return cls(tuple(",".join(str(v) for v in bar) for bar in bars))

    def __len__(self) -> int:
        return len(self._packed)

    def bar(self, i: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        o, h, lo, c = self._packed[i].split(",")
        return Decimal(o), Decimal(h), Decimal(lo), Decimal(c)

    def close(self, i: int) -> Decimal:
        return Decimal(self._packed[i].rpartition(",")[2])

    def between(self, lo: int, hi: int) -> list[tuple[Decimal, Decimal, Decimal, Decimal]]:
        return [self.bar(i) for i in range(lo, hi)]


@dataclass(frozen=True, slots=True)
class _FundingHistory:
    """One perpetual's settlements: the per-hour rate the engine reads (as a track) and each
    row's interval. The exact rows are not kept once divided."""

    hourly: _Track
    intervals: tuple[float, ...]

    @classmethod
    def of(cls, rows: list[tuple[datetime, Decimal, Decimal]]) -> _FundingHistory:
        return cls(_track([(w, float(r / i)) for w, r, i in rows]),
                   tuple(_shared_float(float(i)) for _, _, i in rows))


@functools.lru_cache(maxsize=256)
def _shared_float(value: float) -> float:
    return value


class ReplayData:
    """A loaded replay directory, queried at simulated times. Immutable after load."""

    def __init__(self, root: Path, prices: Mapping[str, _PriceHistory],
                 funding: Mapping[str, _FundingHistory],
                 metrics: Mapping[str, Mapping[str, list[tuple[datetime, float]]]]) -> None:
        self.root = root
        kept = {t: h for t, h in sorted(prices.items()) if h.times}
        self.tokens: tuple[str, ...] = tuple(kept)
        self._candle_times = {t: h.times for t, h in kept.items()}
        self._closes = {t: h.closes for t, h in kept.items()}
        self._qvols = {t: h.quote_volumes for t, h in kept.items()}
        self._highs = {t: h.highs for t, h in kept.items()}
        self._lows = {t: h.lows for t, h in kept.items()}
        self._bars = {t: h.bars for t, h in kept.items()}
        funded = {t: f for t, f in sorted(funding.items()) if f.intervals}
        self._hourly = {t: f.hourly for t, f in funded.items()}
        self._intervals = {t: f.intervals for t, f in funded.items()}
        self._metrics = {s: {m: _daily_track(pts) for m, pts in sorted(ms.items()) if pts}
                         for s, ms in sorted(metrics.items())}
        days = sorted({d for h in kept.values() for d in h.days})
        self._calendar = tuple(days)
        if not days:
            raise ReplayDataError(root, None, "no candles in ohlcv/")
        self.first_day: date = days[0]
        self.last_day: date = days[-1]

    @classmethod
    def load(cls, data_dir: Path, until: date | None = None) -> ReplayData:
        """Parse and validate the whole directory; ``funding/`` and metrics are optional.

        ``until`` keeps only what is visible at the close of that day (stamped
        ``<= close_time(until)``): a run that ends on ``until`` then cannot read a later
        point even by mistake, which is what a walk-forward fold must be able to promise.
        The files are still validated whole, so a bad row fails every run alike.
        """
        root = Path(data_dir)
        if not (root / "ohlcv").is_dir():
            raise ReplayDataError(root, None, "not a replay data directory (no ohlcv/ folder)")
        limit = close_time(until) if until is not None else None

        def visible(when: datetime) -> bool:
            return limit is None or when <= limit

        prices = {token_of_file(p): _PriceHistory.of([c for c in read_ohlcv(p)
                                                      if visible(close_time(c.day))])
                  for p in sorted((root / "ohlcv").glob("*.csv"))}
        funding = {token_of_file(p): _FundingHistory.of([r for r in read_funding(p)
                                                         if visible(r[0])])
                   for p in sorted((root / "funding").glob("*.csv"))}
        metrics_file = root / "sector_metrics.csv"
        metrics = read_metrics(metrics_file) if metrics_file.exists() else {}
        metrics = {s: {m: [pt for pt in pts if visible(pt[0])] for m, pts in ms.items()}
                   for s, ms in metrics.items()}
        if until is not None and not any(h.times for h in prices.values()):
            raise ReplayDataError(root, None, f"no candles on or before {until} (replay.end "
                                  "is before the data starts)")
        return cls(root, prices, funding, metrics)

    @property
    def funding_tokens(self) -> tuple[str, ...]:
        return tuple(self._hourly)

    def calendar(self) -> tuple[date, ...]:
        """Every day with at least one candle; day ``D`` is replayed at ``close_time(D)``."""
        return self._calendar

    def snapshot(self, as_of: datetime, lookback_days: int = 400,
                 max_age: Mapping[str, timedelta] | None = None) -> MarketSnapshot:
        """What a live bot could have known at ``as_of``: points stamped ``<= as_of``, cut to
        those newer than ``as_of - lookback_days``.

        ``stale`` names what the engine must not act on:
        - ``prices:<TOKEN>`` / ``funding:<TOKEN>`` / ``metric:<metric>:<sector>``: that series
          has visible points but the newest is older than its max age. A series with nothing
          visible yet (token not listed, metric not started) gets no key: absent is absent.
        - ``prices`` / ``funding`` / ``metric:<metric>``: no series of that kind is fresh
          while at least one is visible. ``prices`` is also set when no price is visible at
          all, since nothing can be valued or traded then.
        Staleness is judged on the full history, so a series that stopped before the lookback
        window is still reported stale, though it is then omitted from the snapshot.
        """
        as_of = _utc(as_of)
        since = as_of - timedelta(days=lookback_days)
        ages = {**DEFAULT_MAX_AGE, **(max_age or {})}
        stale: set[str] = set()
        closes = self._slice(self._closes, since, as_of, "prices", ages, stale, always=True)
        qvols = {t: self._qvols[t].series(since, as_of) for t in closes}
        highs = {t: self._highs[t].series(since, as_of) for t in closes}
        lows = {t: self._lows[t].series(since, as_of) for t in closes}
        funding = self._slice(self._hourly, since, as_of, "funding", ages, stale)
        metrics: dict[str, dict[str, Series]] = {}
        fresh: dict[str, bool] = {}
        for sector, tracks in self._metrics.items():
            for metric, track in tracks.items():
                newest = _newest(track, as_of)
                if newest is None:
                    continue
                key = f"metric:{metric}:{sector}"
                old = as_of - newest > _age(ages, key, f"metric:{metric}", "metric")
                if old:
                    stale.add(key)
                fresh[metric] = fresh.get(metric, False) or not old
                series = track.series(since, as_of)
                if series.points:
                    metrics.setdefault(sector, {})[metric] = series
        stale.update(f"metric:{m}" for m, ok in fresh.items() if not ok)
        return MarketSnapshot(as_of=as_of, closes=closes, quote_volumes=qvols,
                              sector_metrics=metrics, funding=funding, stale=frozenset(stale),
                              highs=highs, lows=lows)

    def _slice(self, tracks: Mapping[str, _Track], since: datetime, as_of: datetime,
               kind: str, ages: Mapping[str, timedelta], stale: set[str],
               always: bool = False) -> dict[str, Series]:
        """Per-token series in the window, adding ``<kind>:<TOKEN>`` and ``<kind>`` to stale
        (``<kind>`` also when nothing is visible, if ``always``)."""
        out: dict[str, Series] = {}
        visible = fresh = False
        for token, track in tracks.items():
            newest = _newest(track, as_of)
            if newest is None:
                continue
            visible = True
            if as_of - newest > _age(ages, f"{kind}:{token}", kind):
                stale.add(f"{kind}:{token}")
            else:
                fresh = True
            series = track.series(since, as_of)
            if series.points:
                out[token] = series
        if not fresh and (visible or always):
            stale.add(kind)
        return out

    def marks(self, as_of: datetime) -> dict[str, Decimal]:
        """The latest visible close per token (tokens not listed yet are left out)."""
        as_of = _utc(as_of)
        out: dict[str, Decimal] = {}
        for token, times in self._candle_times.items():
            i = bisect_right(times, as_of)
            if i:
                out[token] = self._bars[token].close(i - 1)
        return out

    def candle_range(self, token: str, start: datetime, end: datetime) -> CandleRange | None:
        """The candles of ``token`` that closed in ``(start, end]``, or None if there are none."""
        times = self._candle_times.get(token)
        if times is None:
            return None
        lo, hi = bisect_right(times, _utc(start)), bisect_right(times, _utc(end))
        if lo >= hi:
            return None
        bars = self._bars[token].between(lo, hi)
        return CandleRange(token, start, end, bars[0][0], max(b[1] for b in bars),
                           min(b[2] for b in bars), bars[-1][3], len(bars))

    def funding_rates(self, as_of: datetime, max_age: timedelta | None = None,
                      ) -> dict[str, FundingRate]:
        """The latest settled funding per token; with ``max_age``, only rates that recent."""
        as_of = _utc(as_of)
        out: dict[str, FundingRate] = {}
        for token, track in self._hourly.items():
            i = bisect_right(track.times, as_of)
            if i and (max_age is None or as_of - track.times[i - 1] <= max_age):
                out[token] = self._rate(token, i - 1)
        return out

    def funding_settlements(self, token: str, start: datetime, end: datetime,
                            ) -> tuple[tuple[datetime, FundingRate], ...]:
        """Every settlement of ``token`` in ``(start, end]``, for charging funding exactly."""
        track = self._hourly.get(token)
        if track is None:
            return ()
        lo, hi = bisect_right(track.times, _utc(start)), bisect_right(track.times, _utc(end))
        return tuple((track.times[i], self._rate(token, i)) for i in range(lo, hi))

    def _rate(self, token: str, index: int) -> FundingRate:
        when, hourly = self._hourly[token].points[index]
        hours = self._intervals[token][index]
        return FundingRate(token, hourly, hours, when + timedelta(hours=hours))


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: replay times must be timezone-aware")
    return when.astimezone(UTC)


def _newest(track: _Track, as_of: datetime) -> datetime | None:
    i = bisect_right(track.times, as_of)
    return track.times[i - 1] if i else None


def _age(ages: Mapping[str, timedelta], *keys: str) -> timedelta:
    """The max age of the most specific key present (the last key always has a default)."""
    for key in keys:
        if key in ages:
            return ages[key]
    raise KeyError(keys[-1])
