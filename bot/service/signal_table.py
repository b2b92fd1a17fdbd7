"""``sectorbot signals``: the sector table the engine would decide on now, without trading.

Paper mode reads the replay data (as of the close of its last day, or ``--as-of``); the
venue modes read the venue and the signal providers exactly as a cycle does. Nothing is
written and no order is sent: the state store is only read (the daily category figures a
daemon kept, which CoinGecko attention needs as history), so it runs beside a daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.config import Settings, load_universe
from bot.domain.market_view import MarketView
from bot.domain.models import MarketSnapshot, Universe
from bot.domain.signals import SignalReport, score_sectors

METRICS = ("tvl_usd", "volume_usd", "fees_usd", "dev_commits", "category_volume_usd")


@dataclass(frozen=True)
class SignalTable:
    as_of: datetime
    source: str
    report: SignalReport
    ages: dict[str, dict[str, float | None]]
    """Sector -> metric -> days since its newest point (None: no series)."""
    stale: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "source": self.source,
            "stale": sorted(self.stale),
            "sectors": [
                {"sector": s.sector, "rank": s.rank, "score": s.score,
                 "confidence": s.confidence, "components": dict(s.components),
                 "metric_age_days": self.ages.get(s.sector, {})}
                for s in sorted(self.report.scores,
                                key=lambda s: (s.rank is None, s.rank or 0, s.sector))],
        }


def build_table(snapshot: MarketSnapshot, universe: Universe, settings: Settings,
                source: str) -> SignalTable:
    view = MarketView.build(snapshot)
    report = score_sectors(view, universe, settings.strategy)
    ages: dict[str, dict[str, float | None]] = {}
    for sector in universe.sectors:
        per: dict[str, float | None] = {}
        for metric in METRICS:
            series = view.metric_series(sector.name, metric)
            last = series.last_time if series is not None else None
            per[metric] = None if last is None else (snapshot.as_of - last) / timedelta(days=1)
        ages[sector.name] = per
    return SignalTable(snapshot.as_of, source, report, ages, snapshot.stale)


def current_table(settings: Settings, log: Any, as_of: date | None = None) -> SignalTable:
    """The table from replay data (paper) or from the venue and providers (other modes)."""
    from bot.service.daemon import LOOKBACK_DAYS, restrict_universe

    if settings.mode == "paper":
        from bot.sources.replay import ReplayData, bundled_sample_dir

        data_dir = settings.replay.data_dir or bundled_sample_dir()
        data = ReplayData.load(data_dir)
        universe = restrict_universe(load_universe(settings.universe_file),
                                     set(data.tokens), log)
        day = as_of or data.last_day
        when = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        snapshot = data.snapshot(when, lookback_days=LOOKBACK_DAYS)
        return build_table(snapshot, universe, settings, f"replay data {data_dir}")
    from bot.service.venue import build_venue

    venue = build_venue(settings, load_universe(settings.universe_file), LOOKBACK_DAYS, log,
                        metric_history=lambda: kept_metric_points(settings))
    try:
        snapshot = venue.signals.snapshot(venue.clock.as_of())
    finally:
        venue.signals.close()
        venue.exchange.close()
    return build_table(snapshot, venue.universe, settings,
                       f"{settings.exchange.name} {settings.mode}")


def kept_metric_points(settings: Settings) -> list[tuple[str, str, date, float]]:
    """The sector figures a daemon kept, read-only; none when there is no store yet."""
    from bot.store.repo import StateStore

    target = settings.state.target()
    if settings.state.url is None and not settings.state.path.exists():
        return []
    store = StateStore(target, read_only=True)
    try:
        return [(r.sector, r.metric, r.day, r.value) for r in store.sector_metric_points()]
    finally:
        store.close()
