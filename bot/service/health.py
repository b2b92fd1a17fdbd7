"""Whether the daemon is healthy: a snapshot the daemon writes and ``/healthz`` reads.

The endpoint must never reach the venue or wait for the trading lock (a probe that blocks
behind a slow cycle would report the daemon dead exactly when it is busiest), so the daemon
writes what it learns after each job into :class:`HealthState`, under a lock of its own, and
:func:`health_report` judges a copy of it against a clock the caller passes in (tests inject
one).

The rule (``docs/operations.md``), unhealthy when any holds:

- the scheduler is not running (not started yet, stopped, or its thread gone);
- the last completed cycle is older than ``STALE_FACTOR`` cycle intervals plus a grace of
  ``STALE_GRACE_SECONDS`` or ``STALE_GRACE_INTERVALS`` intervals, whichever is shorter (a
  fast replay tick is not left a minute to stall unseen); before the first cycle the clock
  runs from the scheduler's start, which is the start-up grace period, lengthened by the
  providers' prefill budget when a prefill runs before the first cycle (a short cycle's
  limit is shorter than that budget). One missed cycle is tolerated, the second is not;
- the last ``VENUE_FAILURES_UNHEALTHY`` trading jobs (cycle or risk watch) in a row failed on
  the venue (an ``ExchangeError`` escaped the job or failed a risk-watch step): one blip is not
  an outage, two in a row on a 60 s risk watch is;
- the kill switch is tripped: the daemon still runs, but takes no risk until an operator
  looks and runs ``sectorbot resume``, so the probe says so (503, with the reason).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

STALE_FACTOR = 2.0
STALE_GRACE_SECONDS = 60.0
STALE_GRACE_INTERVALS = 10.0
VENUE_FAILURES_UNHEALTHY = 2


@dataclass(frozen=True)
class HealthFacts:
    """What the daemon last said about itself (wall-clock times, UTC)."""

    mode: str = "paper"
    scheduler_alive: bool = False
    service_started_at: datetime | None = None
    cycle_interval_seconds: float | None = None
    first_cycle_grace_seconds: float = 0.0
    """Added to the limit before the first cycle: the providers' prefill runs first."""
    last_cycle_at: datetime | None = None
    last_cycle_as_of: datetime | None = None
    last_cycle_outcome: str | None = None
    cycles_completed: int = 0
    venue_attempts: int = 0
    venue_consecutive_failures: int = 0
    last_venue_error: str | None = None
    kill_switch_reason: str | None = None
    kill_switch_tripped_at: datetime | None = None


class HealthState:
    """Thread-safe holder of :class:`HealthFacts`: the daemon's jobs write, HTTP threads read."""

    def __init__(self, mode: str) -> None:
        self._lock = threading.Lock()
        self._facts = HealthFacts(mode=mode)
        self._alive: Callable[[], bool] = lambda: False

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._facts = replace(self._facts, **changes)

    def set_alive_probe(self, alive: Callable[[], bool]) -> None:
        """How to ask whether the scheduler still runs (asked at each probe, not cached)."""
        with self._lock:
            self._alive = alive

    def venue_attempt(self, error: str | None) -> None:
        """One trading job ended: ``error`` names the venue error class, None if none."""
        with self._lock:
            f = self._facts
            self._facts = replace(
                f, venue_attempts=f.venue_attempts + 1,
                venue_consecutive_failures=0 if error is None
                else f.venue_consecutive_failures + 1,
                last_venue_error=error if error is not None else f.last_venue_error)

    def facts(self) -> HealthFacts:
        with self._lock:
            facts, alive = self._facts, self._alive
        try:
            running = bool(alive())
        except Exception:  # a probe must answer, whatever the scheduler's state
            running = False
        return replace(facts, scheduler_alive=facts.scheduler_alive and running)


def stale_grace(interval: float) -> float:
    """Slack beyond the missed cycles: a minute, or ten intervals of a faster cadence."""
    return min(STALE_GRACE_SECONDS, STALE_GRACE_INTERVALS * interval)


def stale_after(interval: float) -> float:
    """Seconds without a completed cycle after which the daemon counts as stalled."""
    return STALE_FACTOR * interval + stale_grace(interval)


def stall_reason(interval: float | None, last_cycle_at: datetime | None,
                 started_at: datetime | None, now: datetime,
                 first_cycle_grace: float = 0.0) -> str | None:
    """Why the daemon counts as stalled, None if it does not: no cycle completed for more
    than :func:`stale_after` the interval, counted from the start before the first cycle,
    which is allowed ``first_cycle_grace`` seconds more (a daemon's providers' prefill runs
    before it: a short cycle's limit is shorter than the prefill's budget).
    ``/healthz`` and ``sectorbot status`` judge by this one rule."""
    since = last_cycle_at or started_at
    if interval is None or since is None:
        return None
    extra = first_cycle_grace if last_cycle_at is None else 0.0
    limit = stale_after(interval) + extra
    waited = (now - since).total_seconds()
    if waited <= limit:
        return None
    what = "no cycle completed" if last_cycle_at is None else "last cycle completed"
    prefill = f" + {extra:g}s prefill" if extra else ""
    return (f"{what} for {waited:.0f}s > {limit:.0f}s ({STALE_FACTOR:g} x {interval:g}s "
            f"interval + {stale_grace(interval):g}s{prefill})")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def health_report(facts: HealthFacts, now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Judge ``facts`` at ``now``: (healthy, the JSON body ``/healthz`` serves)."""
    now = now or datetime.now(UTC)
    reasons: list[str] = []
    if not facts.scheduler_alive:
        reasons.append("scheduler not running")
    interval = facts.cycle_interval_seconds
    age = None if facts.last_cycle_at is None else (now - facts.last_cycle_at).total_seconds()
    limit = None if interval is None else stale_after(interval)
    stalled = stall_reason(interval, facts.last_cycle_at, facts.service_started_at, now,
                           facts.first_cycle_grace_seconds)
    if stalled is not None:
        reasons.append(stalled)
    reachable = (None if facts.venue_attempts == 0
                 else facts.venue_consecutive_failures == 0)
    if facts.venue_consecutive_failures >= VENUE_FAILURES_UNHEALTHY:
        reasons.append(f"venue unreachable: {facts.venue_consecutive_failures} trading jobs in "
                       f"a row failed on it ({facts.last_venue_error})")
    if facts.kill_switch_reason is not None:
        reasons.append(f"kill switch tripped: {facts.kill_switch_reason}; clear with "
                       "`sectorbot resume`")
    healthy = not reasons
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unhealthy",
        "reasons": reasons,
        "mode": facts.mode,
        "scheduler_alive": facts.scheduler_alive,
        "service_started_at": _iso(facts.service_started_at),
        "last_cycle_at": _iso(facts.last_cycle_at),
        "last_cycle_age_seconds": None if age is None else round(age, 3),
        "last_cycle_as_of": _iso(facts.last_cycle_as_of),
        "last_cycle_outcome": facts.last_cycle_outcome,
        "cycles_completed": facts.cycles_completed,
        "cycle_interval_seconds": interval,
        "stale_after_seconds": limit,
        "venue_reachable": reachable,
        "venue_consecutive_failures": facts.venue_consecutive_failures,
        "last_venue_error": facts.last_venue_error,
        "kill_switch": None if facts.kill_switch_reason is None else {
            "reason": facts.kill_switch_reason,
            "tripped_at": _iso(facts.kill_switch_tripped_at)},
        "checked_at": now.isoformat(),
    }
    return healthy, body


def liveness_report(facts: HealthFacts,
                    now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Judge only whether the process still works (``/livez``): its scheduler runs and its
    cycles complete. A restart cures nothing else: a tripped kill switch stays tripped in
    the store and a venue outage outlives the pod, so an orchestrator that restarted on
    ``/healthz`` would loop a daemon that is doing exactly what it should."""
    now = now or datetime.now(UTC)
    reasons: list[str] = []
    if not facts.scheduler_alive:
        reasons.append("scheduler not running")
    stalled = stall_reason(facts.cycle_interval_seconds, facts.last_cycle_at,
                           facts.service_started_at, now,
                           facts.first_cycle_grace_seconds)
    if stalled is not None:
        reasons.append(stalled)
    return not reasons, {"status": "alive" if not reasons else "stalled", "reasons": reasons,
                         "checked_at": now.isoformat()}

