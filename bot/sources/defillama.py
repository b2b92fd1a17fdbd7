"""Sector TVL and DEX volume from DefiLlama's free API, with history from the first cycle.

DefiLlama's category history is a paid endpoint, so a sector's daily TVL is built from free
series instead:
- a **chain** sector (L1s, L2s) sums ``/v2/historicalChainTvl/{chain}`` over its chains;
- a **category** sector (DEXs, lending, RWA ...) takes the largest protocols of its categories
  in ``/protocols`` (matched through aliases: DefiLlama renamed "Dexes" to "Dexs") and sums
  their ``/protocol/{slug}`` histories.
Either way a fresh daemon has the whole history on its first cycle, not just today's number.
DEX volume (``volume_usd``) is ``/overview/dexs/{chain}`` summed over a chain sector's chains,
and ``/overview/dexs`` (every DEX) for a sector of the DEX category; other sectors have none.

Each answer is validated (pydantic). A sector whose fetch or validation fails is marked stale
(``metric:<metric>:<SECTOR>``, with the reason) and keeps its last good series: its age shows
in the series itself, and the engine does not move money on a stale metric. Points follow
the replay's convention: the value of day D is stamped D+1 00:00 UTC, visible once D is over.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, field_validator

from bot.config import SectorSources
from bot.domain.models import Series
from bot.sources.http_client import (
    PoliteClient,
    ProviderError,
    ProviderStatusError,
    ProviderUnreachable,
)

TVL = "tvl_usd"
VOLUME = "volume_usd"
DAY = timedelta(days=1)

CATEGORY_ALIASES: Mapping[str, frozenset[str]] = {
    "dexs": frozenset({"dexs", "dexes", "dex"}),
    "lending": frozenset({"lending"}),
    "cdp": frozenset({"cdp"}),
    "rwa": frozenset({"rwa", "real world assets"}),
    "rwa lending": frozenset({"rwa lending"}),
    "oracle": frozenset({"oracle", "oracles"}),
    "privacy": frozenset({"privacy"}),
    "yield": frozenset({"yield"}),
}
"""Our name for a DefiLlama category -> every spelling it has had (lower case)."""


def spellings_of(category: str) -> frozenset[str]:
    """Every spelling of the category named (in any of its spellings), lower case."""
    name = category.lower()
    for spellings in CATEGORY_ALIASES.values():
        if name in spellings:
            return spellings
    return frozenset({name})


# ------------------------------------------------------------------------ response models


EARLIEST = 1_230_768_000
"""2009-01-01: no DeFi figure is older; a timestamp below it is in the wrong unit."""


def _amount(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be finite and >= 0, got {value}")
    return value


def _day_stamp(value: int) -> int:
    """Unix seconds, not in the future (a millisecond stamp would be far past it)."""
    if not EARLIEST <= value <= time.time() + 2 * 86_400:
        raise ValueError(f"{value} is not a unix time in seconds of a past day")
    return value


class _ChainPoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    date: int
    tvl: float

    _check = field_validator("tvl")(_amount)
    _when = field_validator("date")(_day_stamp)


class _ProtocolPoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    date: int
    totalLiquidityUSD: float

    _check = field_validator("totalLiquidityUSD")(_amount)
    _when = field_validator("date")(_day_stamp)


class _ProtocolHistory(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tvl: list[_ProtocolPoint]


class _Overview(BaseModel):
    """``/overview/dexs[/{chain}]``: only the daily chart is read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    totalDataChart: list[tuple[int, float]]  # DefiLlama's field name

    @field_validator("totalDataChart")
    @classmethod
    def _finite(cls, chart: list[tuple[int, float]]) -> list[tuple[int, float]]:
        for ts, value in chart:
            _day_stamp(ts)
            _amount(value)
        return chart


class _ProtocolListing(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    slug: str
    category: str | None = None
    tvl: float | None = None


# ---------------------------------------------------------------------------- the provider


@dataclass
class _Kept:
    series: Series
    fetched: datetime


class _Round:
    """What one refresh round fetched once for every sector that needs it."""

    def __init__(self) -> None:
        self.listing: list[_ProtocolListing] | None = None
        self.listing_error: str | None = None
        self.dropped: dict[str, str] = {}


DEX_CATEGORY = "dexs"


class DefiLlamaSectors:
    """Daily TVL (``tvl_usd``) and DEX volume (``volume_usd``) per sector.

    Fetching (:meth:`refresh`) and reading (:meth:`metrics`) are apart: the daemon runs the
    network round as a job of its own, outside the lock its trading jobs share, so a slow
    provider never holds up the risk watch; a decision reads what the last round published.
    Only the very first read waits for a round (a fresh daemon decides with history).
    ``refresh_every`` bounds how often one sector's metric is fetched (DefiLlama updates
    about hourly; a daily signal needs far less); a failed one is tried on the next round.
    """

    def __init__(self, client: PoliteClient, sources: Mapping[str, SectorSources],
                 top_protocols: int = 10,
                 refresh_every: timedelta = timedelta(hours=6),
                 round_budget_seconds: float = 90.0,
                 stopping: Callable[[], bool] | None = None) -> None:
        """``round_budget_seconds`` bounds one round; jobs left over stay due for the next.
        ``stopping`` ends a round between requests when the daemon is asked to stop."""
        self.client = client
        self.top_protocols = top_protocols
        self.refresh_every = refresh_every
        self.round_budget = round_budget_seconds
        self.stopping = stopping or (lambda: False)
        self._sources = dict(sorted(sources.items()))
        self.jobs: list[tuple[str, str]] = []
        for sector, src in self._sources.items():
            if src.chains or src.categories:
                self.jobs.append((sector, TVL))
            if src.chains or _trades_on_dexes(src):
                self.jobs.append((sector, VOLUME))
        self._lock = threading.Lock()  # guards what a round publishes
        self._round_lock = threading.Lock()  # one round at a time
        self._rounds = 0
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._failed: dict[tuple[str, str], str] = {}
        self._dropped: dict[str, str] = {}

    @property
    def dropped(self) -> dict[str, str]:
        """Components left out of a sum (not on DefiLlama, dead, too young) and why."""
        with self._lock:
            return dict(self._dropped)

    def close(self) -> None:
        self.client.close()

    def refresh(self, as_of: datetime) -> None:
        """One network round: fetch what is due, then publish it at once."""
        with self._round_lock:
            with self._lock:
                due = [job for job in self.jobs
                       if job in self._failed or job not in self._kept
                       or as_of - self._kept[job].fetched >= self.refresh_every]
            round_ = _Round()
            fetched: dict[tuple[str, str], Series] = {}
            failed: dict[tuple[str, str], str] = {}
            started = time.monotonic()
            for n, job in enumerate(due):
                if self.stopping() or time.monotonic() - started > self.round_budget:
                    break  # the rest stay due: next round
                try:
                    series = self._fetch(job, round_)
                except ProviderUnreachable as exc:
                    # No connection to the host: every other job would wait the same way.
                    # They keep their last good series and are marked stale.
                    failed.update({rest: str(exc) for rest in due[n:]})
                    break
                except ProviderError as exc:
                    failed[job] = str(exc)
                    continue
                except Exception as exc:  # a provider must never fail the cycle
                    failed[job] = f"unexpected {type(exc).__name__}: {exc}"
                    continue
                # Fetched during a day, DefiLlama's last point is that day so far: only
                # what had closed at the fetch is kept, so a later decision never reads a
                # partial day as a close.
                fetched[job] = Series(tuple(p for p in series.points if p[0] <= as_of))
            with self._lock:
                for job, series in fetched.items():
                    self._kept[job] = _Kept(series, as_of)
                    self._failed.pop(job, None)
                self._failed.update(failed)
                self._dropped.update(round_.dropped)
                self._rounds += 1

    def metrics(self, as_of: datetime) -> tuple[dict[str, dict[str, Series]], dict[str, str]]:
        """``({sector: {metric: series}}, {stale key: reason})`` as of ``as_of``, from what
        the last round published (the first call runs a round itself)."""
        if self._rounds == 0:
            self.refresh(as_of)
        out: dict[str, dict[str, Series]] = {}
        stale: dict[str, str] = {}
        with self._lock:
            for sector, metric in self.jobs:
                kept = self._kept.get((sector, metric))
                if kept is not None:
                    visible = tuple(p for p in kept.series.points if p[0] <= as_of)
                    if visible:
                        out.setdefault(sector, {})[metric] = Series(visible)
                if (sector, metric) in self._failed:
                    stale[f"metric:{metric}:{sector}"] = self._failed[(sector, metric)]
            for metric in (TVL, VOLUME):
                jobs = [job for job in self.jobs if job[1] == metric]
                if jobs and all(job in self._failed for job in jobs):
                    stale[f"metric:{metric}"] = f"no sector's {metric} could be read"
        return out, stale

    # -- fetching ---------------------------------------------------------------------------
    def _fetch(self, job: tuple[str, str], round_: _Round) -> Series:
        sector, metric = job
        src = self._sources[sector]
        if metric == VOLUME:
            return self._volume(src, round_)
        if src.categories and round_.listing is None:
            if round_.listing_error is None:
                try:
                    round_.listing = self._listing()
                except ProviderUnreachable:
                    raise
                except ProviderError as exc:
                    round_.listing_error = str(exc)
            if round_.listing is None:
                raise ProviderError(round_.listing_error or "no protocol list")
        return self._tvl(src, round_)

    def _listing(self) -> list[_ProtocolListing]:
        """Rows that do not validate are skipped; most of them failing is a schema change."""
        raw = self.client.get_json("/protocols")
        if not isinstance(raw, list):
            raise ProviderError("/protocols: expected a list")
        rows: list[_ProtocolListing] = []
        first: str | None = None
        for item in raw:
            try:
                rows.append(_ProtocolListing.model_validate(item))
            except ValidationError as exc:
                first = first or _first_error(exc)
        if raw and len(rows) < len(raw) / 2:
            raise ProviderError(f"/protocols: unexpected shape ({first})")
        return rows

    def _component(self, path: str, model: Any, name: str, round_: _Round,
                   params: Mapping[str, str] | None = None) -> Any:
        """One part of a sector's sum; None when DefiLlama does not know it (4xx): that
        part is left out, not the whole sector."""
        try:
            return self._validated(path, model, params)
        except ProviderStatusError as exc:
            if 400 <= exc.status < 500:
                round_.dropped[name] = str(exc)
                return None
            raise

    def _tvl(self, src: SectorSources, round_: _Round) -> Series:
        components: dict[str, list[tuple[int, float]]] = {}
        for chain in src.chains:
            rows = self._component(f"/v2/historicalChainTvl/{quote(chain, safe='')}",
                                   list[_ChainPoint], f"tvl chain {chain}", round_)
            if rows is not None:
                components[f"tvl chain {chain}"] = [(r.date, r.tvl) for r in rows]
        for slug in self._top_slugs(src.categories, round_.listing or []):
            history = self._component(f"/protocol/{quote(slug, safe='')}", _ProtocolHistory,
                                      f"tvl protocol {slug}", round_)
            if history is not None:
                components[f"tvl protocol {slug}"] = [(r.date, r.totalLiquidityUSD)
                                                      for r in history.tvl]
        return self._summed(components, "TVL", round_)

    def _volume(self, src: SectorSources, round_: _Round) -> Series:
        """DEX volume: on the sector's chains, or on every DEX for a DEX category sector."""
        paths = ({f"volume chain {c}": f"/overview/dexs/{quote(c, safe='')}"
                  for c in src.chains} if src.chains else {"volume all DEXs": "/overview/dexs"})
        components: dict[str, list[tuple[int, float]]] = {}
        for name, path in paths.items():
            overview = self._component(path, _Overview, name, round_, params=_CHART_ONLY)
            if overview is not None:
                components[name] = [(int(ts), value) for ts, value in overview.totalDataChart]
        return self._summed(components, "volume", round_)

    def _summed(self, components: dict[str, list[tuple[int, float]]], what: str,
                round_: _Round) -> Series:
        kept, dropped = consistent_components(components)
        round_.dropped.update(dropped)
        if not kept:
            raise ProviderError(f"no {what} series for this sector"
                                + (f" ({'; '.join(sorted(dropped.values()))})" if dropped
                                   else ""))
        return _summed(list(kept.values()))

    def _top_slugs(self, categories: tuple[str, ...],
                   listing: list[_ProtocolListing]) -> list[str]:
        if not categories:
            return []
        spellings = set().union(*(spellings_of(c) for c in categories))
        members = [p for p in listing if p.category and p.category.lower() in spellings
                   and p.slug and p.tvl is not None and math.isfinite(p.tvl)]
        if not members:
            raise ProviderError(f"/protocols lists no protocol in {', '.join(categories)}")
        members.sort(key=lambda p: (-(p.tvl or 0.0), p.slug))
        return [p.slug for p in members[:self.top_protocols]]

    def _validated(self, path: str, model: Any,
                   params: Mapping[str, str] | None = None) -> Any:
        raw = self.client.get_json(path, params)
        try:
            return TypeAdapter(model).validate_python(raw)
        except ValidationError as exc:
            raise ProviderError(f"{path}: unexpected shape ({_first_error(exc)})") from None


_CHART_ONLY = {"excludeTotalDataChart": "false", "excludeTotalDataChartBreakdown": "true"}


def _trades_on_dexes(src: SectorSources) -> bool:
    return any(DEX_CATEGORY in spellings_of(c) for c in src.categories)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg"))


DEAD_AFTER_DAYS = 7
"""A component whose newest day is this far behind the others' has stopped reporting."""
MIN_COMPONENT_DAYS = 90
"""A component with a shorter history would step the sum up inside the growth windows."""


def consistent_components(components: dict[str, list[tuple[int, float]]],
                          ) -> tuple[dict[str, list[tuple[int, float]]], dict[str, str]]:
    """The components a sum can be built of over one common span, and why the others are
    left out: a part that stopped reporting would keep an old value under new dates (the
    sum would look fresh while part of it is stale), and one that started recently would
    show up as growth. Left-out parts are named, so the loss of coverage is visible."""
    spans = {name: (min(d for d, _ in pts), max(d for d, _ in pts))
             for name, pts in components.items() if pts}
    dropped = {name: f"{name}: no data" for name in components if name not in spans}
    if not spans:
        return {}, dropped
    newest = max(last for _, last in spans.values())
    alive = {n: s for n, s in spans.items() if newest - s[1] <= DEAD_AFTER_DAYS * 86_400}
    dropped.update({n: f"{n}: stopped reporting" for n in spans if n not in alive})
    mature = {n: s for n, s in alive.items()
              if s[1] - s[0] >= MIN_COMPONENT_DAYS * 86_400}
    if not mature:  # all young (a new sector): one common span is still consistent
        mature = alive
    dropped.update({n: f"{n}: under {MIN_COMPONENT_DAYS} days of history"
                    for n in alive if n not in mature})
    return {n: components[n] for n in mature}, dropped


def _summed(components: list[list[tuple[int, float]]]) -> Series:
    """The daily sum of the components over the span they all cover (from the latest
    first day to the earliest last day), each carried forward over its own gaps inside it
    (a missed day is not a day of zero)."""
    by_day: list[dict[datetime, float]] = []
    for points in components:
        days: dict[datetime, float] = {}
        for stamp, value in points:
            day = datetime.fromtimestamp(stamp - stamp % 86_400, UTC)
            days[day] = value  # a day given twice keeps its later point
        if days:
            by_day.append(days)
    start = max(min(days) for days in by_day)
    end = min(max(days) for days in by_day)
    last: list[float] = [days[max(d for d in days if d <= start)] for days in by_day]
    out: list[tuple[datetime, float]] = []
    for day in sorted(set().union(*by_day)):
        if not start <= day <= end:
            continue
        for i, days in enumerate(by_day):
            if day in days:
                last[i] = days[day]
        out.append((day + DAY, sum(last)))
    return Series(tuple(out))
