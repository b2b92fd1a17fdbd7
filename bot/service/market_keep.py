"""The venue market data a decision read, as rows to keep (``venue_candles``/``venue_funding``).

The snapshot the engine decided on is the reference: a candle is kept for each close it
held, with that close, quote volume, high and low exactly as the engine read them (the
decimal text of the float: ``float(Decimal(repr(x))) == x``, so a replay reads the same
number); the open and base volume, which the snapshot does not carry, come from the venue's
candle row of that day. A funding reading is kept as the venue's rate over its interval,
written so that ``rate / interval_hours`` is exactly the per-hour rate the engine read.

Only points newer than the newest kept per token are converted, so a cycle that adds
nothing costs a comparison per point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from bot.domain.models import MarketKind, MarketSnapshot, Series, TokenSpec
from bot.sources.market import DAY_MS
from bot.sources.venue_read import VenueRead
from bot.store.market_data import KeptCandle, KeptFunding

DAY = timedelta(days=1)


def exact(value: float) -> Decimal:
    """The decimal text of a float, shortest that reads back as the same float."""
    return Decimal(repr(float(value)))


def _number(row: Sequence[Any] | None, i: int) -> float | None:
    try:
        value = float(row[i]) if row is not None else None
    except (TypeError, ValueError, IndexError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _rows_by_day(rows: Sequence[Sequence[Any]]) -> dict[date, Sequence[Any]]:
    """Each candle row under its UTC day (the day ``candle_series`` stamps at its close)."""
    out: dict[date, Sequence[Any]] = {}
    for row in rows:
        try:
            opened = int(row[0])
        except (TypeError, ValueError, IndexError):
            continue
        out[datetime.fromtimestamp((opened - opened % DAY_MS) / 1000, UTC).date()] = row
    return out


def kept_candles(snapshot: MarketSnapshot, read: VenueRead,
                 markets: Mapping[str, MarketKind],
                 newest: Mapping[str, date]) -> list[KeptCandle]:
    """The closed candles of ``snapshot`` newer than ``newest`` kept per token.

    ``markets`` says which market each token's candles came from (spot, else its perp)."""
    out: list[KeptCandle] = []
    for token, closes in sorted(snapshot.closes.items()):
        last = newest.get(token)
        new = [(stamp, close) for stamp, close in closes.points
               if (last is None or (stamp - DAY).date() > last) and math.isfinite(close)]
        if not new:
            continue
        rows = _rows_by_day(read.candles.get(token, ()))
        highs = dict(snapshot.highs.get(token, Series()).points)
        lows = dict(snapshot.lows.get(token, Series()).points)
        quote = dict(snapshot.quote_volumes.get(token, Series()).points)
        market = markets.get(token, MarketKind.SPOT).value
        for stamp, close in new:
            day = (stamp - DAY).date()
            row = rows.get(day)
            opened = _number(row, 1)
            volume = max(_number(row, 5) or 0.0, 0.0)
            high, low = highs.get(stamp), lows.get(stamp)
            qv = quote.get(stamp)
            out.append(KeptCandle(
                token, day, market,
                exact(opened if opened is not None and opened > 0 else close),
                None if high is None else exact(high), None if low is None else exact(low),
                exact(close), exact(volume),
                exact(qv if qv is not None and math.isfinite(qv) else volume * close)))
    return out


def kept_funding(snapshot: MarketSnapshot, read: VenueRead,
                 newest: Mapping[str, datetime]) -> list[KeptFunding]:
    """The funding points of ``snapshot`` newer than ``newest`` kept per token, each as a
    rate over the interval read with it (1 hour where none was read)."""
    out: list[KeptFunding] = []
    for token, series in sorted(snapshot.funding.items()):
        last = newest.get(token)
        rate = read.funding.get(token)
        hours = exact(rate.interval_hours if rate is not None and rate.interval_hours > 0
                      else 1.0)
        for when, hourly in series.points:
            if (last is not None and when <= last) or not math.isfinite(hourly):
                continue
            with localcontext() as ctx:
                ctx.prec = 80  # exact: a float's repr has at most 17 digits
                per_interval = exact(hourly) * hours
            out.append(KeptFunding(token, when, per_interval, hours))
    return out


def candle_markets(tokens: Sequence[TokenSpec],
                   listed: Mapping[tuple[str, MarketKind], Any]) -> dict[str, MarketKind]:
    """Which market each token's candles are read from: spot where it has one, else its
    perpetual (``VenueSignals._daily_candles``)."""
    return {t.symbol: MarketKind.SPOT if t.spot and (t.symbol, MarketKind.SPOT) in listed
            else MarketKind.PERP for t in tokens}
