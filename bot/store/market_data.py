"""Venue market data as first seen: the daily candles and funding each decision read.

A mixin of :class:`bot.store.repo.StateStore` (which provides ``session`` and ``engine``),
beside :mod:`bot.store.sector_metrics`. A venue's candle of a closed day, or a funding
reading, once kept is never replaced (a venue revising a candle later does not change what
a decision saw). Only what is newer than the newest kept per token is written: the newest
kept day and reading per token are read from the tables once per store and then followed in
memory, so a cycle costs a comparison per point and one small insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.logs import get_logger
from bot.store.schema import VenueCandleRow, VenueFundingRow


@dataclass(frozen=True, slots=True)
class KeptCandle:
    """One closed daily candle as the engine read it (exact text of its values)."""

    token: str
    day: date
    market: str
    open: Decimal
    high: Decimal | None
    low: Decimal | None
    close: Decimal
    volume: Decimal
    quote_volume: Decimal


@dataclass(frozen=True, slots=True)
class KeptFunding:
    """One funding reading: ``rate`` over ``interval_hours`` is the per-hour rate read."""

    token: str
    ts: datetime
    rate: Decimal
    interval_hours: Decimal


class MarketDataLog:
    engine: Engine
    _candle_days: dict[str, date] | None = None
    """The newest kept candle day per token, read from the table once per store."""
    _funding_times: dict[str, datetime] | None = None
    """The newest kept funding reading per token, likewise."""
    _venue: tuple[str | None] | None = None
    """The venue whose data the tables hold (``(None,)``: none yet), read once per store."""
    _refused: str | None = None
    """The other venue last refused (said once)."""

    def session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def newest_kept_candles(self) -> Mapping[str, date]:
        if self._candle_days is None:
            with self.session() as s:
                rows = s.execute(select(VenueCandleRow.token, func.max(VenueCandleRow.day))
                                 .group_by(VenueCandleRow.token)).all()
            self._candle_days = {token: day for token, day in rows}
        return self._candle_days

    def newest_kept_funding(self) -> Mapping[str, datetime]:
        if self._funding_times is None:
            with self.session() as s:
                rows = s.execute(select(VenueFundingRow.token, func.max(VenueFundingRow.ts))
                                 .group_by(VenueFundingRow.token)).all()
            self._funding_times = {token: ts for token, ts in rows}  # max() keeps UtcDateTime
        return self._funding_times

    def kept_venue(self) -> str | None:
        """The venue whose candles and funding the store keeps, None before any."""
        if self._venue is None:
            with self.session() as s:
                venue = s.scalar(select(VenueCandleRow.venue)
                                 .order_by(VenueCandleRow.fetched_at).limit(1))
                if venue is None:
                    venue = s.scalar(select(VenueFundingRow.venue)
                                     .order_by(VenueFundingRow.ts).limit(1))
            self._venue = (venue,)
        return self._venue[0]

    def record_market_data(self, venue: str, candles: Iterable[KeptCandle],
                           funding: Iterable[KeptFunding], fetched_at: datetime) -> tuple[int, int]:
        """Keep every candle day and funding reading newer than the newest kept for its
        token (one older or equal is what was seen already, or a revision of it: skipped).
        Returns how many candles and readings were written.

        The tables hold one venue's data: they are keyed by token and day (or time), and
        "newer" is followed per token, so a store reused after switching venue would mix
        the two under one token. Another venue's data is refused (said once, nothing kept);
        the export's provenance then names the one venue honestly."""
        kept = self.kept_venue()
        if kept is not None and venue != kept:
            if self._refused != venue:
                self._refused = venue
                get_logger().warning(
                    "market_data.other_venue", kept_venue=kept, venue=venue,
                    detail="this store keeps another venue's candles and funding: nothing "
                           "from this venue is kept (use a new state store to keep it)")
            return 0, 0
        days, times = self.newest_kept_candles(), self.newest_kept_funding()
        candle_rows: list[dict[str, object]] = []
        new_days: dict[str, date] = {}
        for c in candles:
            last = days.get(c.token)
            if last is not None and c.day <= last:
                continue
            candle_rows.append({"token": c.token, "day": c.day, "venue": venue,
                                "market": c.market, "open": c.open, "high": c.high,
                                "low": c.low, "close": c.close, "volume": c.volume,
                                "quote_volume": c.quote_volume, "fetched_at": fetched_at})
            new_days[c.token] = max(c.day, new_days.get(c.token, c.day))
        funding_rows: list[dict[str, object]] = []
        new_times: dict[str, datetime] = {}
        for f in funding:
            newest = times.get(f.token)
            if newest is not None and f.ts <= newest:
                continue
            funding_rows.append({"token": f.token, "ts": f.ts, "venue": venue, "rate": f.rate,
                                 "interval_hours": f.interval_hours})
            new_times[f.token] = max(f.ts, new_times.get(f.token, f.ts))
        if not candle_rows and not funding_rows:
            return 0, 0
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" \
            else sqlite_insert
        with self.session() as s:
            if candle_rows:
                s.execute(insert(VenueCandleRow).on_conflict_do_nothing(), candle_rows)
            if funding_rows:
                s.execute(insert(VenueFundingRow).on_conflict_do_nothing(), funding_rows)
        # Only once committed: a failed write leaves the cache at what the tables hold.
        assert self._candle_days is not None and self._funding_times is not None
        self._venue = (venue,)
        self._candle_days.update(new_days)
        self._funding_times.update(new_times)
        return len(candle_rows), len(funding_rows)

    def venue_candles(self) -> list[VenueCandleRow]:
        with self.session() as s:
            return list(s.scalars(select(VenueCandleRow).order_by(VenueCandleRow.token,
                                                                  VenueCandleRow.day)))

    def venue_funding(self) -> list[VenueFundingRow]:
        with self.session() as s:
            return list(s.scalars(select(VenueFundingRow).order_by(VenueFundingRow.token,
                                                                   VenueFundingRow.ts)))
