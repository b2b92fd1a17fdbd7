"""Sector TVL from DefiLlama's free API, with history from the first cycle.

DefiLlama's category history is a paid endpoint, so a sector's daily TVL is built from free
series instead:
- a **chain** sector (L1s, L2s) sums ``/v2/historicalChainTvl/{chain}`` over its chains;
- a **category** sector (DEXs, lending, RWA ...) takes the largest protocols of its categories
  in ``/protocols`` (matched through aliases: DefiLlama renamed "Dexes" to "Dexs") and sums
  their ``/protocol/{slug}`` histories.
Either way a fresh daemon has the whole history on its first cycle, not just today's number.

Each answer is validated (pydantic). A sector whose fetch or validation fails is marked stale
(``metric:tvl_usd:<SECTOR>``, with the reason) and keeps its last good series: its age shows
in the series itself, and the engine does not move money on a stale metric. Points follow
the replay's convention: the value of day D is stamped D+1 00:00 UTC, visible once D is over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, field_validator

from bot.config import SectorSources
from bot.domain.models import Series
from bot.sources.http_client import PoliteClient, ProviderError, ProviderUnreachable

METRIC = "tvl_usd"
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


def _tvl(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"TVL must be finite and >= 0, got {value}")
    return value


class _ChainPoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    date: int
    tvl: float

    _check = field_validator("tvl")(_tvl)


class _ProtocolPoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    date: int
    totalLiquidityUSD: float

    _check = field_validator("totalLiquidityUSD")(_tvl)


class _ProtocolHistory(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tvl: list[_ProtocolPoint]


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


class DefiLlamaTvl:
    """Daily TVL per sector. ``refresh`` bounds how often one sector is fetched (the
    figures update about hourly; a daily signal needs far less)."""

    def __init__(self, client: PoliteClient, sources: Mapping[str, SectorSources],
                 top_protocols: int = 10,
                 refresh: timedelta = timedelta(hours=6)) -> None:
        self.client = client
        self.sources = {s: src for s, src in sorted(sources.items())
                        if src.chains or src.categories}
        self.top_protocols = top_protocols
        self.refresh = refresh
        self._kept: dict[str, _Kept] = {}
        self._failed: dict[str, str] = {}

    def metrics(self, as_of: datetime) -> tuple[dict[str, dict[str, Series]], dict[str, str]]:
        """``({sector: {"tvl_usd": series}}, {stale key: reason})`` as of ``as_of``."""
        listing: list[_ProtocolListing] | None = None
        listing_error: str | None = None
        due = [sector for sector in self.sources
               if sector in self._failed or sector not in self._kept
               or as_of - self._kept[sector].fetched >= self.refresh]
        for n, sector in enumerate(due):
            src = self.sources[sector]
            try:
                if src.categories and listing is None and listing_error is None:
                    try:
                        listing = self._listing()
                    except ProviderUnreachable:
                        raise
                    except ProviderError as exc:
                        listing_error = str(exc)
                if src.categories and listing is None:
                    raise ProviderError(listing_error or "no protocol list")
                series = self._sector_series(src, listing or [])
            except ProviderUnreachable as exc:
                # The host is down or silent: every other sector would wait out the same
                # timeouts. They keep their last good series and are marked stale.
                for rest in due[n:]:
                    self._failed[rest] = str(exc)
                break
            except ProviderError as exc:
                self._failed[sector] = str(exc)
                continue
            self._kept[sector] = _Kept(series, as_of)
            self._failed.pop(sector, None)
        out: dict[str, dict[str, Series]] = {}
        stale: dict[str, str] = {}
        for sector in self.sources:
            kept = self._kept.get(sector)
            if kept is not None:
                visible = tuple(p for p in kept.series.points if p[0] <= as_of)
                if visible:
                    out[sector] = {METRIC: Series(visible)}
            if sector in self._failed:
                stale[f"metric:{METRIC}:{sector}"] = self._failed[sector]
        if self.sources and len(stale) == len(self.sources):
            stale[f"metric:{METRIC}"] = "no sector's TVL could be read"
        return out, stale

    # -- fetching ---------------------------------------------------------------------------
    def _listing(self) -> list[_ProtocolListing]:
        raw = self.client.get_json("/protocols")
        if not isinstance(raw, list):
            raise ProviderError("/protocols: expected a list")
        try:
            return [_ProtocolListing.model_validate(item) for item in raw]
        except ValidationError as exc:
            raise ProviderError(f"/protocols: unexpected shape ({_first_error(exc)})") \
                from None

    def _sector_series(self, src: SectorSources,
                       listing: list[_ProtocolListing]) -> Series:
        components: list[list[tuple[int, float]]] = []
        for chain in src.chains:
            path = f"/v2/historicalChainTvl/{chain}"
            rows = self._validated(path, list[_ChainPoint])
            components.append([(r.date, r.tvl) for r in rows])
        for slug in self._top_slugs(src.categories, listing):
            path = f"/protocol/{slug}"
            history = self._validated(path, _ProtocolHistory)
            components.append([(r.date, r.totalLiquidityUSD) for r in history.tvl])
        if not components or not any(components):
            raise ProviderError("no TVL series for this sector")
        return _summed(components)

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

    def _validated(self, path: str, model: Any) -> Any:
        raw = self.client.get_json(path)
        try:
            return TypeAdapter(model).validate_python(raw)
        except ValidationError as exc:
            raise ProviderError(f"{path}: unexpected shape ({_first_error(exc)})") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg"))


def _summed(components: list[list[tuple[int, float]]]) -> Series:
    """The daily sum of the components, each carried forward over its own gaps (a missed
    day is not a day of zero TVL); a component counts from its first day on."""
    by_day: list[dict[datetime, float]] = []
    for points in components:
        days: dict[datetime, float] = {}
        for stamp, value in points:
            day = datetime.fromtimestamp(stamp - stamp % 86_400, UTC)
            days[day] = value  # a day given twice keeps its later point
        if days:
            by_day.append(days)
    calendar = sorted(set().union(*by_day))
    last: list[float | None] = [None] * len(by_day)
    out: list[tuple[datetime, float]] = []
    for day in calendar:
        for i, days in enumerate(by_day):
            if day in days:
                last[i] = days[day]
        out.append((day + DAY, sum(v for v in last if v is not None)))
    return Series(tuple(out))
