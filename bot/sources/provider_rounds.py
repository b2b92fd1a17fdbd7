"""What every sector-metrics provider does the same way: fetch in rounds, publish at once.

A provider has jobs, one per (sector, metric) it can serve. A round fetches the jobs that are
due (never fetched, failed last time, or older than ``refresh_every``), within a time budget
and until the daemon is asked to stop, then publishes the results under a lock. Reading
(:meth:`RoundedProvider.metrics`) never waits for a round in progress: the daemon runs
rounds outside the lock its trading jobs share, each provider's round on a thread of its
own (``VenueSignals.start_rounds``), so one slow host never holds up another's round. Until
a provider's first round has ended, each of its jobs reads as stale ("first round not
finished"): a fresh daemon whose prefill ran out of time decides without it. A job that fails keeps
its last good series and is reported stale with the reason; a provider error of any kind is
a stale signal, never a failed cycle.

Subclasses say which jobs exist and how one is fetched (:meth:`RoundedProvider.fetch`);
``consistent_components`` and ``summed`` build a sector's series from its parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.models import Series
from bot.sources.http_client import PoliteClient, ProviderError, ProviderUnreachable

DAY = timedelta(days=1)
EARLIEST = 1_230_768_000
"""2009-01-01: no sector figure is older; a timestamp below it is in the wrong unit."""
DEAD_AFTER_DAYS = 7
"""A component whose newest day is this far behind the others' has stopped reporting."""
MIN_COMPONENT_DAYS = 90
"""A component with a shorter history would step the sum up inside the growth windows."""

Job = tuple[str, str]
"""(sector, metric)"""


@dataclass
class Round:
    """Scratch space of one round: what was fetched once for every job that needs it, and
    the parts left out of sums (with why)."""

    dropped: dict[str, str] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Kept:
    series: Series
    fetched: datetime


class RoundedProvider:
    """The round machinery; see the module docstring."""

    name = "provider"
    """Short name for logs and thread names (``defillama``, ``github``, ``coingecko``)."""

    def __init__(self, client: PoliteClient, jobs: list[Job], refresh_every: timedelta,
                 round_budget_seconds: float, stopping: Callable[[], bool] | None) -> None:
        self.client = client
        self.jobs = jobs
        self.refresh_every = refresh_every
        self.round_budget = round_budget_seconds
        self.stopping = stopping or (lambda: False)
        self._lock = threading.Lock()  # guards what a round publishes
        self._round_lock = threading.Lock()  # one round at a time
        self._rounds = 0
        self._started = False
        self._kept: dict[Job, _Kept] = {}
        self._failed: dict[Job, str] = {}
        self._dropped: dict[str, str] = {}

    def fetch(self, job: Job, round_: Round) -> Series:
        """One job's whole series (raise :class:`ProviderError` with the reason)."""
        raise NotImplementedError

    @property
    def dropped(self) -> dict[str, str]:
        """Components left out of a sum and why."""
        with self._lock:
            return dict(self._dropped)

    def close(self) -> None:
        self.client.close()

    def begin_round(self, as_of: datetime) -> None:
        """Called at the start of every round, inside the round lock (nothing by default)."""

    @property
    def started(self) -> bool:
        """Whether a round was ever asked for (it may still be running)."""
        return self._started

    @property
    def published(self) -> bool:
        """Whether a round has ended and published what it fetched."""
        return self._rounds > 0

    def refresh(self, as_of: datetime) -> None:
        """One network round: fetch what is due, then publish it at once."""
        self._started = True
        with self._round_lock:
            self.begin_round(as_of)
            with self._lock:
                due = [job for job in self.jobs
                       if job in self._failed or job not in self._kept
                       or as_of - self._kept[job].fetched >= self.refresh_every]
            round_ = Round()
            fetched: dict[Job, Series] = {}
            failed: dict[Job, str] = {}
            started = time.monotonic()
            for n, job in enumerate(due):
                if self.stopping() or time.monotonic() - started > self.round_budget:
                    break  # the rest stay due: next round
                try:
                    series = self.fetch(job, round_)
                except ProviderUnreachable as exc:
                    # No connection to the host: every other job would wait the same way.
                    # They keep their last good series and are marked stale.
                    failed.update({rest: str(exc) for rest in due[n:]})
                    break
                except ProviderError as exc:
                    failed[job] = str(exc)
                    continue
                except Exception as exc:  # a provider must never fail the cycle
                    failed[job] = f"unexpected {type(exc).__name__}: {exc}"
                    continue
                # Fetched during a day, a provider's last point is that day so far: only
                # what had closed at the fetch is kept, so a later decision never reads a
                # partial day as a close.
                fetched[job] = Series(tuple(p for p in series.points if p[0] <= as_of))
            with self._lock:
                for job, series in fetched.items():
                    self._kept[job] = _Kept(series, as_of)
                    self._failed.pop(job, None)
                self._failed.update(failed)
                self._dropped.update(round_.dropped)
                self._rounds += 1

    def metrics(self, as_of: datetime) -> tuple[dict[str, dict[str, Series]], dict[str, str]]:
        """``({sector: {metric: series}}, {stale key: reason})`` as of ``as_of``, from what
        the last round published. The first call runs a round itself when none was ever
        started (a caller without a prefill, e.g. a test); it never waits for one in
        progress: until the first round ends, every job reads as stale."""
        if not self._started:
            self.refresh(as_of)
        out: dict[str, dict[str, Series]] = {}
        stale: dict[str, str] = {}
        with self._lock:
            for sector, metric in self.jobs:
                kept = self._kept.get((sector, metric))
                if kept is not None:
                    visible = tuple(p for p in kept.series.points if p[0] <= as_of)
                    if visible:
                        out.setdefault(sector, {})[metric] = Series(visible)
                if (sector, metric) in self._failed:
                    stale[f"metric:{metric}:{sector}"] = self._failed[(sector, metric)]
                elif self._rounds == 0 and kept is None:
                    stale[f"metric:{metric}:{sector}"] = (
                        f"{self.name}: first round not finished yet")
            for metric in sorted({m for _, m in self.jobs}):
                jobs = [job for job in self.jobs if job[1] == metric]
                if jobs and all(job in self._failed for job in jobs):
                    stale[f"metric:{metric}"] = f"no sector's {metric} could be read"
        return out, stale

    def summed(self, components: dict[str, list[tuple[int, float]]], what: str,
               round_: Round) -> Series:
        """A sector's series from its parts (unix day, value), the unusable parts named."""
        kept, dropped = consistent_components(components)
        round_.dropped.update(dropped)
        if not kept:
            raise ProviderError(f"no {what} series for this sector"
                                + (f" ({'; '.join(sorted(dropped.values()))})" if dropped
                                   else ""))
        return summed(list(kept.values()))


def consistent_components(components: dict[str, list[tuple[int, float]]],
                          ) -> tuple[dict[str, list[tuple[int, float]]], dict[str, str]]:
    """The components a sum can be built of over one common span, and why the others are
    left out: a part that stopped reporting would keep an old value under new dates (the
    sum would look fresh while part of it is stale), and one that started recently would
    show up as growth. Left-out parts are named, so the loss of coverage is visible."""
    spans = {name: (min(d for d, _ in pts), max(d for d, _ in pts))
             for name, pts in components.items() if pts}
    dropped = {name: f"{name}: no data" for name in components if name not in spans}
    if not spans:
        return {}, dropped
    newest = max(last for _, last in spans.values())
    alive = {n: s for n, s in spans.items() if newest - s[1] <= DEAD_AFTER_DAYS * 86_400}
    dropped.update({n: f"{n}: stopped reporting" for n in spans if n not in alive})
    mature = {n: s for n, s in alive.items()
              if s[1] - s[0] >= MIN_COMPONENT_DAYS * 86_400}
    if not mature:  # all young (a new sector): one common span is still consistent
        mature = alive
    dropped.update({n: f"{n}: under {MIN_COMPONENT_DAYS} days of history"
                    for n in alive if n not in mature})
    return {n: components[n] for n in mature}, dropped


def summed(components: list[list[tuple[int, float]]]) -> Series:
    """The daily sum of the components over the span they all cover (from the latest
    first day to the earliest last day), each carried forward over its own gaps inside it
    (a missed day is not a day of zero). Day D is stamped D+1 00:00 UTC: visible once over."""
    by_day: list[dict[datetime, float]] = []
    for points in components:
        days: dict[datetime, float] = {}
        for stamp, value in points:
            day = datetime.fromtimestamp(stamp - stamp % 86_400, UTC)
            days[day] = value  # a day given twice keeps its later point
        if days:
            by_day.append(days)
    start = max(min(days) for days in by_day)
    end = min(max(days) for days in by_day)
    last: list[float] = [days[max(d for d in days if d <= start)] for days in by_day]
    out: list[tuple[datetime, float]] = []
    for day in sorted(set().union(*by_day)):
        if not start <= day <= end:
            continue
        for i, days in enumerate(by_day):
            if day in days:
                last[i] = days[day]
        out.append((day + DAY, sum(last)))
    return Series(tuple(out))
