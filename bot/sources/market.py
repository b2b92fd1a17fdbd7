"""Signals read from the trading venue itself, for the testnet, demo and live modes.

Replay mode gets its history from files; outside replay the only source wired today is the
exchange: daily candles (closes and quote volumes) per token and the current funding rate
per perpetual. Sector metrics come from a provider when one is configured (sector TVL from
DefiLlama: ``bot.sources.defillama``); what no provider serves yet (DEX volume, fees,
developer activity) is left absent: the engine treats missing as missing and scores sectors
on what it has, saying so in its reasons.

Time follows the replay's convention so the engine cannot tell the two sources apart: the
candle of day D is stamped at D+1 00:00 UTC (the moment it closed), and only candles closed
at ``as_of`` are visible, so today's still-open candle never enters a decision.

A fetch that fails after the adapter's retries does not raise: it marks its signal stale
(``prices:<TOKEN>``; ``prices`` when no token's prices could be read; ``funding``), and the
engine holds rather than move money on a partial picture.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from bot.domain.models import FundingRate, MarketKind, MarketSnapshot, Series, TokenSpec
from bot.exchange.port import ExchangeError, MarketDataPort, OpenInterestHistory
from bot.sources.venue_read import VenueRead

DAY = timedelta(days=1)
DAY_MS = 86_400_000
MAX_CANDLES = 1000
"""Candles asked for per token (Binance spot serves at most 1000 klines per request)."""
OI_DAYS = 30
"""Daily open-interest readings asked for per perp (Binance keeps the last 30 days)."""


class DailyCandles(NamedTuple):
    """A token's closed daily candles as the series a snapshot carries."""

    closes: Series
    volumes: Series
    highs: Series
    lows: Series

    def after(self, since: datetime) -> DailyCandles:
        return DailyCandles(*(_after(series, since) for series in self))


def candle_series(rows: Iterable[Any], visible_until: datetime) -> DailyCandles:
    """ccxt daily OHLCV rows as closes, quote volumes, highs and lows, stamped at the close.

    Rows whose candle has not closed by ``visible_until`` are dropped (today's open candle).
    ccxt's unified OHLCV has base volume only, so the quote volume is base volume x close:
    the engine uses it to rank liquidity, where that approximation is ample. A row whose
    high or low is missing or inconsistent keeps its close; only the extremes are dropped.
    """
    closes: dict[datetime, float] = {}
    volumes: dict[datetime, float] = {}
    highs: dict[datetime, float] = {}
    lows: dict[datetime, float] = {}
    for row in rows:
        try:
            opened, close, volume = int(row[0]), float(row[4]), float(row[5] or 0.0)
        except (TypeError, ValueError, IndexError):
            continue  # a malformed row is missing data, not a reason to drop the token
        stamp = datetime.fromtimestamp((opened - opened % DAY_MS) / 1000, UTC) + DAY
        if stamp > visible_until or not close > 0:
            continue
        closes[stamp] = close
        volumes[stamp] = max(volume, 0.0) * close
        try:
            high, low = float(row[2]), float(row[3])
        except (TypeError, ValueError):
            continue
        if 0 < low <= min(close, high) and high >= close:
            highs[stamp], lows[stamp] = high, low

    def series(values: dict[datetime, float]) -> Series:
        return Series(tuple((t, values[t]) for t in sorted(values)))

    return DailyCandles(series(closes), series(volumes), series(highs), series(lows))


class SectorMetricsSource(Protocol):
    """Per-sector daily metrics from a provider (DefiLlama TVL ...): the series it has, and
    the stale keys (``metric:<metric>:<SECTOR>``) with why each could not be refreshed."""

    name: str
    round_budget: float

    @property
    def started(self) -> bool:
        """Whether a round was ever asked for (it may still be running)."""

    @property
    def published(self) -> bool:
        """Whether a round has ended and published."""

    @property
    def dropped(self) -> Mapping[str, str]:
        """Parts left out of a sector's sum (unknown to the provider, dead, too young)."""

    def refresh(self, as_of: datetime) -> None:
        """Fetch what is due (the network round; may take a while)."""

    def metrics(self, as_of: datetime) -> tuple[dict[str, dict[str, Series]],
                                                dict[str, str]]:
        """What the last round published (the first call may run a round)."""

    def close(self) -> None: ...


class VenueSignals:
    """A :class:`bot.service.cycle.SignalSource` over a venue's market data (the
    :class:`bot.exchange.port.MarketDataPort` side of its adapter).

    ``tokens`` is the (venue-restricted) universe. A token's closes come from its spot
    market, or from its perpetual when it has no spot market (hedge-only tokens), so every
    token the engine may score has a price history.
    """

    def __init__(self, exchange: MarketDataPort, tokens: Iterable[TokenSpec],
                 lookback_days: int, log: Any,
                 sector_metrics: Sequence[SectorMetricsSource] = ()) -> None:
        self.exchange = exchange
        self.tokens = tuple(tokens)
        self.lookback_days = lookback_days
        self.log = log
        self.sector_metrics = tuple(sector_metrics)
        self._rounds: dict[int, threading.Thread] = {}
        self._rounds_lock = threading.Lock()
        self._reported: dict[str, str] = {}
        """What was last said about each provider key (failure reason, dropped part): said
        again only when it changes, so an outage is one line, not one per round."""
        self.last_read: VenueRead | None = None
        """The venue's answers behind the last snapshot (kept by the cycle as first seen)."""

    def snapshot(self, as_of: datetime) -> MarketSnapshot:
        as_of = as_of.astimezone(UTC)
        since = as_of - timedelta(days=self.lookback_days)
        stale: set[str] = set()
        closes: dict[str, Series] = {}
        volumes: dict[str, Series] = {}
        highs: dict[str, Series] = {}
        lows: dict[str, Series] = {}
        read_candles: dict[str, list[Any]] = {}
        for token in self.tokens:
            try:
                rows = self._daily_candles(token)
            except ExchangeError as exc:
                # The error text is already scrubbed of secrets by the adapter.
                self.log.warning("signal.fetch_failed", signal=f"prices:{token.symbol}",
                                 error=str(exc))
                stale.add(f"prices:{token.symbol}")
                continue
            read_candles[token.symbol] = rows
            daily = candle_series(rows, as_of).after(since)
            if daily.closes.points:
                closes[token.symbol] = daily.closes
                volumes[token.symbol] = daily.volumes
                highs[token.symbol], lows[token.symbol] = daily.highs, daily.lows
        if not closes:
            stale.add("prices")
        funding: dict[str, Series] = {}
        read_rates: dict[str, FundingRate] = {}
        perps = [t.symbol for t in self.tokens if t.perp]
        if perps:
            try:
                rates = self.exchange.fetch_funding_rates(perps)
            except ExchangeError as exc:
                self.log.warning("signal.fetch_failed", signal="funding", error=str(exc))
                stale.add("funding")
            else:
                # The venue reports the rate for the period under way; it is what is known
                # at this cycle, so it is stamped at ``as_of`` (a later stamp would be
                # invisible to a decision taken as of ``as_of``).
                funding = {t: Series(((as_of, r.hourly_rate),)) for t, r in sorted(rates.items())}
                read_rates = rates
        open_interest = self._open_interest(perps, as_of, stale) if perps else {}
        metrics: dict[str, dict[str, Series]] = {}
        reported: dict[str, str] = {}
        if any(not p.started for p in self.sector_metrics):
            # The first read of a daemon that did not prefill (``sectorbot signals``, a test):
            # every provider's first round at once, each bounded by its own budget.
            self.refresh_providers(as_of, wait=self.prefill_budget)
        for provider in self.sector_metrics:
            served, failed = provider.metrics(as_of)
            for sector, per in served.items():
                metrics.setdefault(sector, {}).update(per)
            dropped = provider.dropped
            for key, reason in sorted(failed.items()):
                if self._reported.get(key) != reason:
                    self.log.warning("signal.fetch_failed", signal=key, error=reason)
            for name, why in sorted(dropped.items()):
                if self._reported.get(name) != why:
                    self.log.warning("signal.component_dropped", component=name, reason=why)
            reported |= {**failed, **dropped}
            stale |= set(failed)
        self._reported = reported
        self.last_read = VenueRead(as_of, read_candles, read_rates)
        return MarketSnapshot(as_of=as_of, closes=closes, quote_volumes=volumes,
                              sector_metrics=metrics, funding=funding,
                              stale=frozenset(stale), highs=highs, lows=lows,
                              open_interest=open_interest)

    def _open_interest(self, perps: list[str], as_of: datetime,
                       stale: set[str]) -> dict[str, Series]:
        """Each perp's daily open interest where the venue serves it; a token whose read
        failed or came back empty is ``oi:<TOKEN>`` stale (its crowding is then not read,
        as with stale funding). A venue without open interest adds nothing and no stale key."""
        try:
            answer: OpenInterestHistory | None = self.exchange.fetch_open_interest_history(
                perps, OI_DAYS)
        except ExchangeError as exc:
            self.log.warning("signal.fetch_failed", signal="oi", error=str(exc))
            stale.update(f"oi:{t}" for t in perps)
            return {}
        if answer is None:
            return {}
        out: dict[str, Series] = {}
        for token in perps:
            rows = answer.history.get(token)
            points = tuple((datetime.fromtimestamp(ms / 1000, UTC), value)
                           for ms, value in rows or () if ms / 1000 <= as_of.timestamp())
            if points:
                out[token] = Series(points)
            elif token in answer.failed or rows is not None:
                reason = answer.failed.get(token, "no open interest reading")
                self.log.warning("signal.fetch_failed", signal=f"oi:{token}", error=reason)
                stale.add(f"oi:{token}")
        return out

    @property
    def has_providers(self) -> bool:
        return bool(self.sector_metrics)

    @property
    def prefill_budget(self) -> float:
        """How long a first read waits for the providers' first rounds: the longest round
        budget (a round checks its budget between requests, so one request may overrun it
        by a timeout; the read does not wait for that)."""
        return max((p.round_budget for p in self.sector_metrics), default=0.0)

    def start_rounds(self, as_of: datetime) -> list[str]:
        """Start each provider's network round on a thread of its own, unless its previous
        round is still running (that one is left to finish: it ends at its budget or its
        timeouts). Returns the providers started. Nothing here waits: a stalled host delays
        no other provider's round and no trading job."""
        started: list[str] = []
        with self._rounds_lock:
            for provider in self.sector_metrics:
                running = self._rounds.get(id(provider))
                if running is not None and running.is_alive():
                    continue
                thread = threading.Thread(target=self._round, args=(provider, as_of),
                                          name=f"round-{provider.name}", daemon=True)
                self._rounds[id(provider)] = thread
                thread.start()
                started.append(provider.name)
        return started

    def _round(self, provider: SectorMetricsSource, as_of: datetime) -> None:
        try:
            provider.refresh(as_of)
        except Exception as exc:  # refresh catches per job; this is the last line of defence
            self.log.warning("signal.fetch_failed", signal=f"provider:{provider.name}",
                             error=f"unexpected {type(exc).__name__}: {exc}")

    def running_rounds(self) -> list[str]:
        """The providers whose round is still running."""
        with self._rounds_lock:
            return [p.name for p in self.sector_metrics
                    if (t := self._rounds.get(id(p))) is not None and t.is_alive()]

    def refresh_providers(self, as_of: datetime, wait: float = 0.0,
                          stopping: Any = None) -> list[str]:
        """Start the providers' rounds (:meth:`start_rounds`) and wait up to ``wait``
        seconds for them to end (or until ``stopping()``); the names still running."""
        self.start_rounds(as_of)
        deadline = time.monotonic() + wait
        while True:
            running = self.running_rounds()
            left = deadline - time.monotonic()
            if not running or left <= 0 or (stopping is not None and stopping()):
                return running
            time.sleep(min(0.05, left))

    def close(self) -> None:
        """Close the providers' connections (the exchange is closed by its owner)."""
        for provider in self.sector_metrics:
            provider.close()

    def _daily_candles(self, token: TokenSpec) -> list[Any]:
        """A token's daily candles from its spot market, else its perpetual."""
        kinds = (MarketKind.SPOT, MarketKind.PERP) if token.spot else (MarketKind.PERP,)
        markets = self.exchange.load_markets()
        kind = next((k for k in kinds if (token.symbol, k) in markets), None)
        if kind is None:
            raise ExchangeError(f"{token.symbol} has no listed market on {self.exchange.name}")
        return list(self.exchange.fetch_daily_candles(
            token.symbol, kind, min(self.lookback_days + 2, MAX_CANDLES)))


def _after(series: Series, since: datetime) -> Series:
    return Series(tuple(p for p in series.points if p[0] > since))
