"""The daemon's Prometheus metrics, in a registry of its own.

One :class:`CollectorRegistry` per daemon, never the process-wide default: two daemons in
one process (tests) must not share, or refuse to register, the same series. Everything here
only sets numbers; what they mean is computed where the daemon already has the figures
(:mod:`bot.service.telemetry`) and listed in ``docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CYCLE_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""A paper step takes tens of milliseconds, a venue cycle tens of seconds."""


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycles = Counter("sectorbot_cycles", "Trading cycles run, by outcome "
                              "(completed, conflict, failed).", ["outcome"], registry=r)
        self.cycle_seconds = Histogram("sectorbot_cycle_duration_seconds",
                                       "Wall time of one trading cycle.",
                                       buckets=CYCLE_SECONDS_BUCKETS, registry=r)
        self.orders = Counter("sectorbot_orders", "Order outcomes as logged (submitted, "
                              "filled, partially_filled, rejected, unknown, id_conflict, "
                              "skipped, stop_placed, stop_triggered).", ["status"], registry=r)
        self.venue_errors = Counter("sectorbot_venue_errors", "Venue errors that failed a "
                                    "trading job or a risk-watch step, by exception class.",
                                    ["error_class"], registry=r)
        self.equity = Gauge("sectorbot_equity_usdt", "Account equity after the last cycle.",
                            registry=r)
        self.drawdown = Gauge("sectorbot_drawdown_ratio", "Drawdown from the kill switch's "
                              "high-water mark (0.1 = 10 %).", registry=r)
        self.gross_leverage = Gauge("sectorbot_gross_leverage", "Sum of perp notionals / "
                                    "equity (what risk.max_account_leverage caps).", registry=r)
        self.net_leverage = Gauge("sectorbot_net_leverage", "Signed sum of perp notionals "
                                  "(long +, short -) / equity.", registry=r)
        self.sector_weight = Gauge("sectorbot_sector_weight_ratio", "Share of equity held "
                                   "spot per sector (CORE, each sector, CASH).", ["sector"],
                                   registry=r)
        self.funding_paid = Counter("sectorbot_funding_paid_usdt", "Funding paid on perps "
                                    "(USDT, settlements this process saw).", registry=r)
        self.funding_received = Counter("sectorbot_funding_received_usdt", "Funding received "
                                        "on perps (USDT, settlements this process saw).",
                                        registry=r)
        self.signal_age = Gauge("sectorbot_signal_age_seconds", "Age of each sector metric's "
                                "newest point at the last cycle's as-of time.",
                                ["sector", "metric"], registry=r)
        self.stale_signals = Gauge("sectorbot_stale_signals", "Signals the last snapshot "
                                   "marked stale.", registry=r)
        self.stops_missing = Gauge("sectorbot_stops_missing", "Leveraged positions the last "
                                   "risk watch found without a stop covering them.", registry=r)
        self.kill_switch = Gauge("sectorbot_kill_switch_tripped", "1 while the kill switch is "
                                 "tripped, else 0.", registry=r)
        self.last_cycle = Gauge("sectorbot_last_cycle_timestamp_seconds", "Wall-clock Unix "
                                "time of the last completed cycle.", registry=r)
        self.last_cycle_as_of = Gauge("sectorbot_last_cycle_as_of_timestamp_seconds",
                                      "The as-of time of the last completed cycle (simulated "
                                      "in paper mode).", registry=r)
        for outcome in ("completed", "conflict", "failed"):
            self.cycles.labels(outcome=outcome)

    def set_sector_weights(self, weights: Mapping[str, float]) -> None:
        """Every sector every time, so one the book left reads 0 rather than its old value."""
        for sector, weight in weights.items():
            self.sector_weight.labels(sector=sector).set(weight)

    def set_signal_ages(self, ages: Iterable[tuple[str, str, float]]) -> None:
        """Replace the series: a sector metric that disappeared must not keep its last age."""
        self.signal_age.clear()
        for sector, metric, seconds in ages:
            self.signal_age.labels(sector=sector, metric=metric).set(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
