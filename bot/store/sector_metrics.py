"""Sector metrics as first seen: each provider figure a decision could read, kept for replay.

A mixin of :class:`bot.store.repo.StateStore` (which provides ``session`` and ``engine``).
Only figures newer than the newest kept for their (sector, metric) are written, so a cycle
costs one small insert, however long the history the provider hands over.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.domain.models import Series
from bot.store.schema import SectorMetricPointRow


class SectorMetricLog:
    engine: Engine
    _metric_days: dict[tuple[str, str], date] | None = None
    """The newest kept day per (sector, metric), read from the table once per store."""

    def session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _newest_kept(self) -> dict[tuple[str, str], date]:
        cache = self._metric_days
        if cache is None:
            with self.session() as s:
                rows = s.execute(select(SectorMetricPointRow.sector, SectorMetricPointRow.metric,
                                        func.max(SectorMetricPointRow.day))
                                 .group_by(SectorMetricPointRow.sector,
                                           SectorMetricPointRow.metric)).all()
            cache = {(sector, metric): day for sector, metric, day in rows}
            self._metric_days = cache
        return cache

    def record_sector_metrics(self, metrics: Mapping[str, Mapping[str, Series]],
                              fetched_at: datetime) -> int:
        """Keep every figure not kept yet (a figure once kept is never replaced: it is what
        a decision saw). A point stamped at D+1 00:00 UTC is the figure of day D. Returns
        how many were written."""
        newest = self._newest_kept()
        rows: list[dict[str, object]] = []
        latest: dict[tuple[str, str], date] = {}
        for sector, per in sorted(metrics.items()):
            for metric, series in sorted(per.items()):
                last = newest.get((sector, metric))
                for stamp, value in series.points:
                    day = (stamp - timedelta(days=1)).date()
                    if last is None or day > last:
                        rows.append({"sector": sector, "metric": metric, "day": day,
                                     "value": float(value), "fetched_at": fetched_at})
                        latest[(sector, metric)] = max(day, latest.get((sector, metric), day))
        if not rows:
            return 0
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" \
            else sqlite_insert
        with self.session() as s:
            s.execute(insert(SectorMetricPointRow).on_conflict_do_nothing(), rows)
        newest.update(latest)
        return len(rows)

    def sector_metric_points(self) -> list[SectorMetricPointRow]:
        with self.session() as s:
            return list(s.scalars(select(SectorMetricPointRow).order_by(
                SectorMetricPointRow.day, SectorMetricPointRow.sector,
                SectorMetricPointRow.metric)))
