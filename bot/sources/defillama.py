"""Sector TVL, DEX volume and fees from DefiLlama's free API, with history from the first
cycle.

DefiLlama's category history is a paid endpoint, so a sector's daily TVL is built from free
series instead:
- a **chain** sector (L1s, L2s) sums ``/v2/historicalChainTvl/{chain}`` over its chains;
- a **category** sector (DEXs, lending, RWA ...) takes the largest protocols of its categories
  in ``/protocols`` (matched through aliases: DefiLlama renamed "Dexes" to "Dexs") and sums
  their ``/protocol/{slug}`` histories.
Either way a fresh daemon has the whole history on its first cycle, not just today's number.
DEX volume (``volume_usd``) is ``/overview/dexs/{chain}`` summed over a chain sector's chains,
and ``/overview/dexs`` (every DEX) for a sector of the DEX category; other sectors have none.
Protocol fees (``fees_usd``, ``dataType=dailyFees``) are ``/overview/fees/{chain}`` summed over
a chain sector's chains, and for a category sector the daily fees of its categories' largest
fee earners (the per-protocol breakdown of ``/overview/fees``), through the same aliases.

Each answer is validated (pydantic). A sector whose fetch or validation fails is marked stale
(``metric:<metric>:<SECTOR>``, with the reason) and keeps its last good series: its age shows
in the series itself, and the engine does not move money on a stale metric. Points follow
the replay's convention: the value of day D is stamped D+1 00:00 UTC, visible once D is over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
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
from bot.sources.provider_rounds import EARLIEST, Job, Round, RoundedProvider

TVL = "tvl_usd"
VOLUME = "volume_usd"
FEES = "fees_usd"
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


class _FeesProtocol(BaseModel):
    """A row of ``/overview/fees``' ``protocols``: the category of a breakdown key."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    displayName: str | None = None  # DefiLlama's field name
    category: str | None = None


class _FeesOverview(BaseModel):
    """``/overview/fees`` with its per-protocol daily breakdown (``[[ts, {name: usd}]]``).
    A protocol without a figure that day (null) is missing that day, not zero."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    totalDataChartBreakdown: list[tuple[int, dict[str, float | None]]]  # DefiLlama's name
    protocols: list[_FeesProtocol]

    @field_validator("totalDataChartBreakdown")
    @classmethod
    def _finite(cls, chart: list[tuple[int, dict[str, float | None]]],
                ) -> list[tuple[int, dict[str, float | None]]]:
        for ts, values in chart:
            _day_stamp(ts)
            for value in values.values():
                if value is not None:
                    _amount(value)
        return chart


class _ProtocolListing(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    slug: str
    category: str | None = None
    tvl: float | None = None


# ---------------------------------------------------------------------------- the provider


DEX_CATEGORY = "dexs"


class DefiLlamaSectors(RoundedProvider):
    """Daily TVL (``tvl_usd``), DEX volume (``volume_usd``) and protocol fees (``fees_usd``)
    per sector, fetched in rounds
    (``bot.sources.provider_rounds``): a decision reads what the last round published."""

    name = "defillama"

    def __init__(self, client: PoliteClient, sources: Mapping[str, SectorSources],
                 top_protocols: int = 10,
                 refresh_every: timedelta = timedelta(hours=6),
                 round_budget_seconds: float = 90.0,
                 stopping: Callable[[], bool] | None = None) -> None:
        self.top_protocols = top_protocols
        self._sources = dict(sorted(sources.items()))
        jobs: list[Job] = []
        for sector, src in self._sources.items():
            if src.chains or src.categories:
                jobs.append((sector, TVL))
            if src.chains or _trades_on_dexes(src):
                jobs.append((sector, VOLUME))
            if src.chains or src.categories:
                jobs.append((sector, FEES))
        super().__init__(client, jobs, refresh_every, round_budget_seconds, stopping)

    # -- fetching ---------------------------------------------------------------------------
    def fetch(self, job: Job, round_: Round) -> Series:
        sector, metric = job
        src = self._sources[sector]
        if metric == VOLUME:
            return self._volume(src, round_)
        if metric == FEES:
            return self._fees(src, round_)
        if src.categories and "listing" not in round_.shared:
            try:  # once per round, for every category sector
                round_.shared["listing"] = self._listing()
            except ProviderUnreachable:
                raise
            except ProviderError as exc:
                round_.shared["listing"] = exc
        listing = round_.shared.get("listing", []) if src.categories else []
        if isinstance(listing, ProviderError):
            raise ProviderError(str(listing))
        return self._tvl(src, listing, round_)

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

    def _component(self, path: str, model: Any, name: str, round_: Round,
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

    def _tvl(self, src: SectorSources, listing: list[_ProtocolListing],
             round_: Round) -> Series:
        components: dict[str, list[tuple[int, float]]] = {}
        for chain in src.chains:
            rows = self._component(f"/v2/historicalChainTvl/{quote(chain, safe='')}",
                                   list[_ChainPoint], f"tvl chain {chain}", round_)
            if rows is not None:
                components[f"tvl chain {chain}"] = [(r.date, r.tvl) for r in rows]
        for slug in self._top_slugs(src.categories, listing):
            history = self._component(f"/protocol/{quote(slug, safe='')}", _ProtocolHistory,
                                      f"tvl protocol {slug}", round_)
            if history is not None:
                components[f"tvl protocol {slug}"] = [(r.date, r.totalLiquidityUSD)
                                                      for r in history.tvl]
        return self.summed(components, "TVL", round_)

    def _volume(self, src: SectorSources, round_: Round) -> Series:
        """DEX volume: on the sector's chains, or on every DEX for a DEX category sector."""
        paths = ({f"volume chain {c}": f"/overview/dexs/{quote(c, safe='')}"
                  for c in src.chains} if src.chains else {"volume all DEXs": "/overview/dexs"})
        components: dict[str, list[tuple[int, float]]] = {}
        for name, path in paths.items():
            overview = self._component(path, _Overview, name, round_, params=_CHART_ONLY)
            if overview is not None:
                components[name] = [(int(ts), value) for ts, value in overview.totalDataChart]
        return self.summed(components, "volume", round_)

    def _fees(self, src: SectorSources, round_: Round) -> Series:
        """Daily fees: on the sector's chains, plus its categories' largest fee earners."""
        components: dict[str, list[tuple[int, float]]] = {}
        for chain in src.chains:
            name = f"fees chain {chain}"
            overview = self._component(f"/overview/fees/{quote(chain, safe='')}", _Overview,
                                       name, round_, params=_FEES_CHART_ONLY)
            if overview is not None:
                components[name] = [(int(ts), value) for ts, value in overview.totalDataChart]
        if src.categories:
            if "fees" not in round_.shared:
                try:  # once per round, for every category sector
                    round_.shared["fees"] = self._validated("/overview/fees", _FeesOverview,
                                                            _FEES_BREAKDOWN_ONLY)
                except ProviderUnreachable:
                    raise
                except ProviderError as exc:
                    round_.shared["fees"] = exc
            overview = round_.shared["fees"]
            if isinstance(overview, ProviderError):
                raise ProviderError(str(overview))
            components.update(self._category_fees(src.categories, overview))
        return self.summed(components, "fees", round_)

    def _category_fees(self, categories: tuple[str, ...], overview: _FeesOverview,
                       ) -> dict[str, list[tuple[int, float]]]:
        """The ``top_protocols`` largest fee earners of the categories over the last 30
        days of the breakdown, each a part of the sum (a young or dead one is left out by
        the usual rules, so the sum's make-up does not change inside the series)."""
        spellings = set().union(*(spellings_of(c) for c in categories))
        keys: set[str] = set()
        for p in overview.protocols:
            if p.category and p.category.lower() in spellings:
                keys |= {p.name} | ({p.displayName} if p.displayName else set())
        series: dict[str, list[tuple[int, float]]] = {}
        for ts, values in overview.totalDataChartBreakdown:
            for key, value in values.items():
                if key in keys and value is not None:
                    series.setdefault(key, []).append((ts, value))
        if not series:
            raise ProviderError(f"/overview/fees lists no protocol fees in "
                                f"{', '.join(categories)}")
        last = max(ts for points in series.values() for ts, _ in points)
        recent = {k: sum(v for ts, v in pts if ts > last - 30 * 86_400)
                  for k, pts in series.items()}
        top = sorted(series, key=lambda k: (-recent[k], k))[:self.top_protocols]
        return {f"fees protocol {k}": series[k] for k in top}

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
_FEES_CHART_ONLY = {**_CHART_ONLY, "dataType": "dailyFees"}
_FEES_BREAKDOWN_ONLY = {"excludeTotalDataChart": "true", "excludeTotalDataChartBreakdown": "false",
                        "dataType": "dailyFees"}


def _trades_on_dexes(src: SectorSources) -> bool:
    return any(DEX_CATEGORY in spellings_of(c) for c in src.categories)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg"))
