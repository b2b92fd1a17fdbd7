"""The observer that publishes: daemon hooks and log events into health and metrics.

It turns what the daemon already computed (a cycle's outcome with its portfolio and signal
snapshot, a risk watch's failed steps, the store's kill-switch row and high-water mark) into
the :class:`~bot.service.health.HealthState` ``/healthz`` judges and the
:class:`~bot.service.metrics.DaemonMetrics` ``/metrics`` serves. It runs in the daemon's own
job thread, after the job, and never raises into it: a failure is logged once
(``metrics.update_failed``) and trading goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.domain.models import MarketSnapshot, Portfolio, Universe
from bot.exchange.port import ExchangeError
from bot.service.cycle import CycleOutcome
from bot.service.health import HealthState
from bot.service.log_tap import TappedLog
from bot.service.metrics import DaemonMetrics
from bot.service.risk_watch import HIGH_WATER_KEY
from bot.store.repo import StateStore

ORDER_EVENTS = {
    "order.submitted": "submitted",
    "order.filled": "filled",
    "order.partially_filled": "partially_filled",
    "order.rejected": "rejected",
    "order.unknown": "unknown",
    "order.id_conflict": "id_conflict",
    "order.skipped": "skipped",
    "stoploss.placed": "stop_placed",
    "stoploss.triggered": "stop_triggered",
}
"""Log events (docs/log-events.md) counted in ``sectorbot_orders_total{status}``."""
CASH = "CASH"


def venue_error_class(error: BaseException | str | None) -> str | None:
    """The class name of a venue error (an :class:`ExchangeError`), else None."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        return type(error).__name__ if isinstance(error, ExchangeError) else None
    return error if error in _exchange_error_names() else None


def _exchange_error_names() -> set[str]:
    names: set[str] = set()
    todo: list[type[BaseException]] = [ExchangeError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def leverage(portfolio: Portfolio, equity: Decimal) -> tuple[float, float]:
    """(gross, net) perp notional over equity: the account leverage the risk limit caps."""
    if equity <= 0:
        return 0.0, 0.0
    gross = sum((p.notional for p in portfolio.perps.values()), Decimal(0))
    net = sum((p.notional if p.amount > 0 else -p.notional
               for p in portfolio.perps.values()), Decimal(0))
    return float(gross / equity), float(net / equity)


def sector_weights(portfolio: Portfolio, equity: Decimal,
                   sector_of: Mapping[str, str]) -> dict[str, float]:
    """Each sector's share of equity held spot, every known sector (0 if none) and cash."""
    weights = dict.fromkeys(sorted(set(sector_of.values())), 0.0)
    if equity <= 0:
        return weights
    for token in portfolio.spot:
        sector = sector_of.get(token, "OTHER")
        weights[sector] = weights.get(sector, 0.0) + float(portfolio.spot_value(token) / equity)
    weights[CASH] = float(portfolio.cash / equity)
    return weights


def signal_ages(snapshot: MarketSnapshot) -> list[tuple[str, str, float]]:
    """(sector, metric, seconds since its newest point) at the snapshot's as-of time."""
    out = []
    for sector, metrics in sorted(snapshot.sector_metrics.items()):
        for metric, series in sorted(metrics.items()):
            last = series.last()
            if last is not None:
                out.append((sector, metric, (snapshot.as_of - last[0]).total_seconds()))
    return out


class Telemetry:
    """Implements :class:`bot.service.observer.DaemonObserver` for one daemon."""

    def __init__(self, mode: str, log: Any,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.health = HealthState(mode)
        self.metrics = DaemonMetrics()
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._sector_of: dict[str, str] = {}
        self._missing_stops = 0
        self._risk_venue_error: str | None = None
        self._cycles = 0
        self._failed_once = False

    # -- the log tap ----------------------------------------------------------------------
    def wrap_log(self, log: Any) -> Any:
        self._log = log
        return TappedLog(log, self.on_event)

    def on_event(self, event: str, fields: Mapping[str, Any]) -> None:
        status = ORDER_EVENTS.get(event)
        if status is not None:
            self.metrics.orders.labels(status=status).inc()
        elif event == "stoploss.missing":
            with self._lock:
                self._missing_stops += 1
        elif event == "funding.paid":
            try:
                delta = Decimal(str(fields.get("cash_delta")))
            except InvalidOperation:
                return
            if delta < 0:
                self.metrics.funding_paid.inc(float(-delta))
            elif delta > 0:
                self.metrics.funding_received.inc(float(delta))
        elif event == "risk.step_failed":
            cls = venue_error_class(str(fields.get("error_type")))
            if cls is not None:
                self.metrics.venue_errors.labels(error_class=cls).inc()
                with self._lock:
                    self._risk_venue_error = cls
        elif event == "killswitch.tripped":
            self.metrics.kill_switch.set(1)
            self.health.update(kill_switch_reason=str(fields.get("reason")),
                               kill_switch_tripped_at=self._clock())

    # -- daemon hooks -----------------------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if not self._failed_once:  # once: a broken metric must not flood the log
                self._failed_once = True
                self._log.warning("metrics.update_failed", error=str(exc),
                                  error_type=type(exc).__name__)

    def service_started(self, cycle_interval_seconds: float, alive: Callable[[], bool],
                        store: StateStore, universe: Universe,
                        first_cycle_grace: float = 0.0) -> None:
        with self._guard():
            self._sector_of = {t.symbol: t.sector for t in universe.all_tokens()}
            self.health.set_alive_probe(alive)
            self.health.update(scheduler_alive=True, service_started_at=self._clock(),
                               cycle_interval_seconds=cycle_interval_seconds,
                               first_cycle_grace_seconds=first_cycle_grace)
            self._read_kill_switch(store)

    def service_stopped(self) -> None:
        self.health.update(scheduler_alive=False)

    def cycle_completed(self, outcome: CycleOutcome, seconds: float,
                        store: StateStore) -> None:
        with self._guard():
            now = self._clock()
            m = self.metrics
            m.cycles.labels(outcome="conflict" if outcome.report.conflicts else
                            "completed").inc()
            m.cycle_seconds.observe(seconds)
            equity = outcome.equity
            m.equity.set(float(equity))
            high_water = Decimal(str(store.get(HIGH_WATER_KEY) or 0))
            peak = max(high_water, equity)
            m.drawdown.set(float(1 - equity / peak) if peak > 0 else 0.0)
            if outcome.portfolio is not None:
                gross, net = leverage(outcome.portfolio, equity)
                m.gross_leverage.set(gross)
                m.net_leverage.set(net)
                m.set_sector_weights(sector_weights(outcome.portfolio, equity,
                                                    self._sector_of))
            if outcome.snapshot is not None:
                m.set_signal_ages(signal_ages(outcome.snapshot))
                m.stale_signals.set(len(outcome.snapshot.stale))
            m.last_cycle.set(now.timestamp())
            m.last_cycle_as_of.set(outcome.decision.as_of.timestamp())
            self._cycles += 1
            self.health.update(last_cycle_at=now, last_cycle_as_of=outcome.decision.as_of,
                               last_cycle_outcome="completed", cycles_completed=self._cycles)
            self.health.venue_attempt(None)
            self._read_kill_switch(store)

    def cycle_failed(self, error: BaseException, seconds: float) -> None:
        with self._guard():
            self.metrics.cycles.labels(outcome="failed").inc()
            self.metrics.cycle_seconds.observe(seconds)
            self.health.update(last_cycle_outcome="failed")
            self._venue_failure(error)

    def risk_watch_done(self, failed_steps: Sequence[str] | None,
                        error: BaseException | None, store: StateStore) -> None:
        with self._guard():
            with self._lock:
                missing, self._missing_stops = self._missing_stops, 0
                step_error, self._risk_venue_error = self._risk_venue_error, None
            if error is not None:
                self._venue_failure(error)
                return
            self.metrics.stops_missing.set(missing)
            if step_error is not None:
                self.health.venue_attempt(step_error)
            elif not failed_steps:
                self.health.venue_attempt(None)
            self._read_kill_switch(store)

    def _venue_failure(self, error: BaseException) -> None:
        cls = venue_error_class(error)
        if cls is not None:
            self.metrics.venue_errors.labels(error_class=cls).inc()
            self.health.venue_attempt(cls)

    def _read_kill_switch(self, store: StateStore) -> None:
        """The store is the truth: ``sectorbot resume`` (another process) clears it there."""
        trip = store.active_kill_switch()
        self.metrics.kill_switch.set(0 if trip is None else 1)
        self.health.update(kill_switch_reason=None if trip is None else trip.reason,
                           kill_switch_tripped_at=None if trip is None else trip.tripped_at)
