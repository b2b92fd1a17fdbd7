"""Category attention per sector from CoinGecko's ``/coins/categories``.

The endpoint gives each category's *current* market cap and trading volume over the last
24 hours (``market_cap``, ``volume_24h``, ``updated_at``), never a history. So the daemon
builds one: each round it reads the listing once, sums a sector's categories
(``[sectors.X.coingecko] categories``) into today's reading of ``category_volume_usd`` and
``category_mcap_usd``, and keeps one point per UTC day (the day's last reading). A day is
published once it is over, stamped D+1 00:00 UTC like every other sector metric, so the
daemon's store keeps it as first seen (``sector_metric_points``) and a restarted daemon
seeds its history from there (``history``): attention needs 7 + 28 days of points.

A category CoinGecko does not list is left out of the sum and named once
(``signal.component_dropped``). A listed category whose figure is missing (null), invalid
(NaN, negative) or older than ``max_age`` fails that sector's reading for the round: it is
stale with the reason and keeps the days it has, so a sum never silently loses a part.
A demo key is optional (``signals.coingecko_api_key``, a secret; sent as
``x-cg-demo-api-key``): without one CoinGecko allows a few calls a minute, ample for one
call per round.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.config import SectorSources
from bot.domain.models import Series
from bot.sources.http_client import PoliteClient, ProviderError
from bot.sources.provider_rounds import Job, Round, RoundedProvider

CATEGORY_VOLUME = "category_volume_usd"
CATEGORY_MCAP = "category_mcap_usd"
FIELDS = {CATEGORY_VOLUME: "volume_24h", CATEGORY_MCAP: "market_cap"}
DAY = timedelta(days=1)

HistoryReader = Callable[[], Iterable[tuple[str, str, date, float]]]
"""Figures kept earlier: ``(sector, metric, day, value)`` rows (the store's
``sector_metric_points``, read-only); the provider takes the rows of its own metrics."""


def _amount(value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ValueError(f"must be finite and >= 0, got {value}")
    return value


class _Category(BaseModel):
    """A row of ``/coins/categories``. The figures are required keys (a renamed field is a
    schema change) but may be null (CoinGecko has no figure for some categories)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str
    market_cap: float | None
    volume_24h: float | None
    updated_at: datetime | None = None

    _check = field_validator("market_cap", "volume_24h")(_amount)


class CoinGeckoCategories(RoundedProvider):
    """Daily category volume and market cap per sector, history kept by the daemon."""

    name = "coingecko"

    def __init__(self, client: PoliteClient, sources: Mapping[str, SectorSources],
                 refresh_every: timedelta = timedelta(hours=6),
                 round_budget_seconds: float = 90.0,
                 stopping: Callable[[], bool] | None = None,
                 history: HistoryReader | None = None,
                 max_age: timedelta = timedelta(hours=36)) -> None:
        self._categories = {s: src.coingecko_categories for s, src in sorted(sources.items())
                            if src.coingecko_categories}
        jobs = [(s, m) for s in self._categories for m in (CATEGORY_VOLUME, CATEGORY_MCAP)]
        super().__init__(client, jobs, refresh_every, round_budget_seconds, stopping)
        self._history = history
        self.max_age = max_age
        self._days: dict[Job, dict[date, float]] = {job: {} for job in jobs}
        self._days_lock = threading.Lock()
        self._seeded = False
        self._seed_problem: str | None = None
        self._as_of = datetime.now(UTC)

    def begin_round(self, as_of: datetime) -> None:
        """The round's clock (a reading is the figure of its day), and the kept history
        before the first round."""
        with self._days_lock:
            if not self._seeded:
                self._seeded = True
                self._seed()
            self._as_of = as_of

    def _seed(self) -> None:
        """The days kept before a restart: without them attention would need five weeks of
        running before it shows. A history that cannot be read is an empty one (logged as
        a dropped part), never a failed start."""
        if self._history is None:
            return
        try:
            rows = list(self._history())
        except Exception as exc:  # a store error must not stop the provider
            self._seed_problem = f"history not read ({type(exc).__name__}: {exc})"
            return
        for sector, metric, day, value in rows:
            days = self._days.get((sector, metric))
            if days is not None and math.isfinite(value) and value >= 0:
                days[day] = value

    def fetch(self, job: Job, round_: Round) -> Series:
        sector, metric = job
        if self._seed_problem is not None:
            round_.dropped["coingecko history"] = f"coingecko {self._seed_problem}"
        if "listing" not in round_.shared:
            try:  # once per round for every sector and metric
                round_.shared["listing"] = self._listing()
            except ProviderError as exc:
                round_.shared["listing"] = exc
        listing = round_.shared["listing"]
        if isinstance(listing, ProviderError):
            raise ProviderError(str(listing))
        rows, invalid = listing
        as_of = self._as_of
        total = 0.0
        used = 0
        for category in self._categories[sector]:
            if category in invalid:
                raise ProviderError(f"/coins/categories: {category}: {invalid[category]}")
            row = rows.get(category)
            if row is None:
                round_.dropped[f"coingecko category {category}"] = (
                    f"coingecko category {category}: not listed by CoinGecko")
                continue
            value = getattr(row, FIELDS[metric])
            if value is None:
                raise ProviderError(f"/coins/categories: {category} has no {FIELDS[metric]}")
            if row.updated_at is not None and as_of - row.updated_at > self.max_age:
                raise ProviderError(f"/coins/categories: {category} last updated "
                                    f"{row.updated_at.isoformat()}, older than "
                                    f"{self.max_age.total_seconds() / 3600:g} h")
            total += value
            used += 1
        if not used:
            raise ProviderError(f"CoinGecko lists none of {', '.join(self._categories[sector])}")
        today = as_of.astimezone(UTC).date()
        with self._days_lock:
            days = self._days[job]
            days[today] = total  # the day's last reading stands for the day
            closed = sorted(d for d in days if d < today)
            return Series(tuple((datetime.combine(d + DAY, time(0), tzinfo=UTC), days[d])
                                for d in closed))

    def _listing(self) -> tuple[dict[str, _Category], dict[str, str]]:
        """Valid rows by id, and why each invalid row with an id failed; most rows failing
        is a schema change and fails every sector."""
        raw = self.client.get_json("/coins/categories")
        if not isinstance(raw, list):
            raise ProviderError("/coins/categories: expected a list")
        rows: dict[str, _Category] = {}
        invalid: dict[str, str] = {}
        first: str | None = None
        for item in raw:
            try:
                row = _Category.model_validate(item)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err.get("loc", ()))
                reason = f"{where}: {err.get('msg', 'invalid')}"
                first = first or reason
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    invalid[item["id"]] = reason
                continue
            if row.updated_at is not None and row.updated_at.tzinfo is None:
                row = row.model_copy(update={"updated_at": row.updated_at.replace(tzinfo=UTC)})
            rows[row.id] = row
        if raw and len(rows) < len(raw) / 2:
            raise ProviderError(f"/coins/categories: unexpected shape ({first})")
        return rows, invalid
