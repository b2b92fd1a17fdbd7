"""The daemon: wires adapters to the cycle and lets APScheduler drive it.

Three jobs, as the strategy needs them: signal refresh, the rotation/rebalance cycle, and a
more frequent risk watch. They share one worker thread, so no job overlaps itself or another
(the paper exchange and the journal are single-writer by design); ``coalesce`` and
``max_instances=1`` keep a slow job from piling up runs.

One daemon per store: the store's owner lock (:mod:`bot.store.owner`) is taken before
anything is written, and a second daemon is refused.

Stopping is a promise. After SIGTERM/SIGINT no new order is sent: the step checks between
its parts (reconcile, risk watch, cycle) and the executor between orders. The order in
flight finishes and is journalled (with the stop of a perp leg that filled: a leveraged
position is never left without one), retries and backoffs end early, and only then is
``daemon.stopped`` logged, as the last line, and the store and venue closed. That takes at
most ``scheduler.shutdown_timeout_seconds`` plus one venue request timeout; a job still
running past that bound is abandoned with ``daemon.stopped clean=false`` and the process
exits at once (exit status 1), leaving the journal for the next start to reconcile.

Two clocks. Paper mode replays history: each tick advances the simulated clock (the
``ReplayDriver``) by ``replay.step_days`` every ``replay.tick_seconds``. Testnet, demo and live
modes trade a real venue through ccxt on the wall clock (``bot.service.clock.WallClock``), and
the jobs run every ``scheduler.cycle_seconds`` / ``signal_refresh_seconds`` /
``risk_watch_seconds``.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Settings, load_universe
from bot.domain.models import SectorSpec, Universe
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.exchange.port import ExchangePort
from bot.service.clock import WallClock
from bot.service.cycle import SignalSource, TradingCycle, TransferPolicy
from bot.service.observer import DaemonObserver, NullObserver
from bot.service.reconcile import reconcile
from bot.service.replay_driver import PAPER_KEY, ReplayDriver, ReplaySignals
from bot.service.start_checks import record_starting_cash, replay_window_problem
from bot.sources.replay import ReplayData, bundled_sample_dir
from bot.store.engine import parse_target
from bot.store.owner import OwnerLock, OwnerLockError, acquire_owner_lock
from bot.store.repo import StateStore

LOOKBACK_DAYS = 400
"""History handed to the engine each cycle: enough for a 200-day average and funding p90."""
TRADING_JOBS = ("cycle", "risk_watch")
"""Jobs whose repeated failure trips the kill switch. Each job keeps its own count, so one
job's success (the hourly signal refresh, which marks what it could not read stale) never
resets another's run of failures."""


BACKTEST_MARK_KEY = "store.backtest"


class StartupError(Exception):
    """The daemon cannot start with this configuration (exit status 2)."""


def restrict_universe(universe: Universe, available: set[str], log: Any) -> Universe:
    """Drop tokens the venue (or replay data) does not list, and say which."""
    dropped = sorted(t.symbol for t in universe.all_tokens() if t.symbol not in available)
    if dropped:
        log.info("universe.dropped", tokens=dropped, reason="not listed by the venue/data")
    sectors = tuple(
        SectorSpec(s.name, s.bucket, tuple(t for t in s.tokens if t.symbol in available),
                   s.cycle_stage)
        for s in universe.sectors
    )
    core = tuple(t for t in universe.core if t.symbol in available)
    if not core:
        raise StartupError("universe: no core token is available on this venue/data")
    return Universe(core=core, sectors=sectors)


class Daemon:
    def __init__(self, settings: Settings, log: Any, durable: bool = True,
                 observer: DaemonObserver | None = None) -> None:
        """``durable=False`` (a backtest on a throwaway store) skips the per-commit fsync
        and the per-step write of the simulated account (no crash can observe either: the
        store is never resumed); everything else runs as in the daemon. ``observer`` hears
        what each job did (health and metrics of a service, :mod:`bot.service.observer`)."""
        self.observer: DaemonObserver = observer or NullObserver()
        log = self.observer.wrap_log(log)
        self.settings = settings
        self.durable = durable
        self.log = log
        self.stop_event = threading.Event()
        # Set only once the shutdown bound has passed: from then on the venue adapter
        # refuses every request, so nothing can follow the line that says we stopped.
        self.halted = threading.Event()
        self.unprotected: set[str] = set()
        self.summary: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.cycles_done = 0
        self.failures: dict[str, int] = {"cycle": 0, "risk_watch": 0, "signals": 0}
        self.driver: ReplayDriver | WallClock
        self.exchange: ExchangePort
        self.request_timeout = 0.0
        self.owner: OwnerLock | None = None
        try:
            signals = self._wire_paper() if settings.mode == "paper" else self._wire_venue()
        except BaseException:
            self._release_owner()
            raise
        self.cycle = TradingCycle(
            universe=self.universe, params=settings.strategy, limits=settings.risk.limits(),
            exchange=self.exchange, store=self.store, signals=signals, log=log,
            margin_mode=settings.exchange.margin_mode, should_stop=self._interrupted,
            transfers=self._transfer_policy(),
            keep_metrics=isinstance(self.driver, WallClock))
        replay = isinstance(self.driver, ReplayDriver)
        resumed = isinstance(self.driver, ReplayDriver) and self.driver.resumed
        log.info("daemon.started", mode=settings.mode, exchange=settings.exchange.name,
                 state=self.store.location,
                 data_dir=str(self._data_dir) if replay else None,
                 tokens=len(self.universe.all_tokens()),
                 resumed_at=self.driver.cursor.isoformat() if resumed else None,
                 start=None if resumed else (self._start if replay
                                             else self.driver.cursor).isoformat())
        # Crash-only: every start settles what a previous run left unfinished.
        reconcile(self.exchange, self.store, log)

    def _transfer_policy(self) -> TransferPolicy | None:
        """``exchange.auto_transfer`` where it can work: a live venue (Binance's demo and
        testnet hosts have no wallet API)."""
        ex = self.settings.exchange
        if not ex.auto_transfer:
            return None
        if self.settings.mode != "live":
            self.log.warning("wallet.transfer_rejected", transfer_id=None, amount=None, to=None,
                             reason=f"exchange.auto_transfer needs mode live, not "
                                    f"{self.settings.mode}",
                             action="each side is planned on its own wallet")
            return None
        return TransferPolicy(Decimal(str(ex.max_transfer_usdt)))

    def _wire_paper(self) -> SignalSource:
        """Replayed history on the simulated exchange (unchanged since paper mode shipped)."""
        settings, log = self.settings, self.log
        self._data_dir = settings.replay.data_dir or bundled_sample_dir()
        # Nothing after the last replayed day is loaded: a run ending on replay.end cannot
        # read later data, whatever a bug elsewhere might ask for.
        self.data = ReplayData.load(self._data_dir, until=settings.replay.end)
        # The history is millions of immutable objects alive for the whole run: left to the
        # cyclic collector, every full collection walks them again (5-13 % of a backtest).
        gc.collect()
        gc.freeze()
        problem = replay_window_problem(settings.replay, self.data.first_day, self.data.last_day)
        if problem:  # a cursor past the data would make every later run a no-op
            raise StartupError(problem)
        self.universe = restrict_universe(load_universe(settings.universe_file),
                                          set(self.data.tokens), log)
        self._take_ownership()
        self.store = StateStore(settings.state.target(), durable=self.durable)
        self._claim_purpose()
        paper = self._paper_exchange()
        self.exchange = paper
        self._start = settings.replay.start or (self.data.first_day + timedelta(
            days=settings.replay.warmup_days))
        self.driver = ReplayDriver(self.data, paper, self.store, self._start,
                                   settings.replay.step_days, log, end=settings.replay.end)
        return ReplaySignals(self.data, LOOKBACK_DAYS)

    def _claim_purpose(self) -> None:
        """A backtest store (not durable, its account written only at the end) is marked
        as such, and a daemon refuses one: resumed after a killed backtest, it would hold a
        journal and engine state without the account they belong to."""
        if not self.durable:
            self.store.put(BACKTEST_MARK_KEY, True)
        elif self.store.get(BACKTEST_MARK_KEY):
            self.store.close()
            raise StartupError(f"{self.store.location} was written by `sectorbot backtest` "
                               "and cannot be resumed: point state.path at another file")

    def _wire_venue(self) -> SignalSource:
        """A real venue through ccxt on the wall clock. The store's owner lock comes first
        (a second daemon must not even talk to the account), then the venue is reached
        (markets loaded, universe restricted), and only then is the state store opened, so
        a refused start writes nothing."""
        # Imported here: ccxt takes half a second to import, and paper mode never needs it.
        from bot.service.venue import VenueStartupError, build_venue

        self._take_ownership()
        try:
            venue = build_venue(self.settings, load_universe(self.settings.universe_file),
                                LOOKBACK_DAYS, self.log, halted=self.halted,
                                stopping=self.stop_event.is_set,
                                metric_history=self._kept_metric_points)
        except VenueStartupError as exc:
            raise StartupError(str(exc)) from exc
        self.universe = venue.universe
        self._venue_exchange = venue.exchange
        self._venue_signals = venue.signals
        self.exchange = venue.exchange
        self.request_timeout = venue.exchange.request_timeout_seconds
        try:
            self.store = StateStore(self.settings.state.target())
            self._claim_purpose()
        except BaseException:
            venue.exchange.close()
            raise
        self.driver = venue.clock
        return venue.signals

    def _kept_metric_points(self) -> list[tuple[str, str, date, float]]:
        """The sector figures kept as first seen, read-only: a provider that builds its
        history as it runs (CoinGecko attention) starts from them after a restart. Called
        at the providers' first round, once the store is open."""
        store = getattr(self, "store", None)
        if store is None:
            return []
        return [(r.sector, r.metric, r.day, r.value) for r in store.sector_metric_points()]

    def _take_ownership(self) -> None:
        """The store's owner lock, before the store is opened (and migrated): a refused
        second daemon has written nothing and sent nothing."""
        try:
            self.owner = acquire_owner_lock(parse_target(self.settings.state.target()))
        except OwnerLockError as exc:
            raise StartupError(str(exc)) from exc

    def _release_owner(self) -> None:
        if self.owner is not None:
            self.owner.release()
            self.owner = None

    def _paper_exchange(self) -> PaperExchange:
        p = self.settings.paper
        config = PaperConfig(
            starting_cash=Decimal(str(p.starting_cash)),
            spot_taker_fee_bps=Decimal(str(p.spot_fee_bps)),
            perp_taker_fee_bps=Decimal(str(p.perp_fee_bps)),
            slippage_bps=Decimal(str(p.slippage_bps)),
            depth_notional=Decimal(str(p.depth_notional)),
            max_leverage_hard=Decimal(str(self.settings.risk.max_leverage)),
        )
        saved = self.store.get(PAPER_KEY)
        problem = record_starting_cash(self.store, p.starting_cash, resumed=bool(saved))
        if problem:
            self.store.close()
            raise StartupError(problem)
        if saved:
            return PaperExchange.from_state(config, saved)
        tokens = [t.symbol for t in self.universe.all_tokens() if t.spot]
        perps = [t.symbol for t in self.universe.all_tokens() if t.perp]
        return PaperExchange(config, tokens, perps)

    # -- one step --------------------------------------------------------------------------
    def step(self) -> bool:
        """Advance the clock and run reconcile, risk watch and cycle. False once replay
        history is exhausted or a shutdown was requested."""
        with self.lock:
            if self._stopping() or not self._still_owner():
                return False
            started = time.monotonic()
            try:
                as_of = self.driver.advance()
                if as_of is not None:
                    reconcile(self.exchange, self.store, self.log)
            except Exception as exc:
                self._count("cycle", failed=True)  # a step that cannot start is a failed one
                self.observer.cycle_failed(exc, time.monotonic() - started)
                raise
            if as_of is None:
                self.log.info("replay.finished", last=self.driver.cursor.isoformat(),
                              cycles=self.cycles_done)
                return False
            if self._interrupted():
                return False
            self._run_risk_watch(as_of)
            if self._interrupted():
                return False
            started = time.monotonic()
            try:
                outcome = self.cycle.run(as_of)
            except Exception as exc:
                self._count("cycle", failed=True)
                self.observer.cycle_failed(exc, time.monotonic() - started)
                raise
            seconds = time.monotonic() - started
            report = outcome.report
            self._count("cycle", failed=report.conflicts > 0)
            if report.halted and report.stops_failed:
                # A leg filled in flight and its stop could not be confirmed: the daemon
                # must not report a clean stop (a supervisor should restart it).
                self.unprotected |= report.touched_perps
            if self.durable:
                # A backtest's throwaway store is never resumed: its account is written
                # once, at the end (``finish``), not after every step.
                self.driver.persist()
            self.cycles_done += 1
            self.observer.cycle_completed(outcome, seconds, self.store)
            return True

    def _stopping(self) -> bool:
        return self.stop_event.is_set()

    def _interrupted(self) -> bool:
        """Whether a step in progress must stop sending orders. On a venue, yes as soon as a
        stop is requested. A replay step runs to its end: it takes milliseconds, sends
        nothing anywhere, and cutting it would leave the simulated account, the journal
        and the replay cursor out of step with each other."""
        return isinstance(self.driver, WallClock) and self.stop_event.is_set()

    def _still_owner(self) -> bool:
        """The owner lock can be lost with its PostgreSQL connection: never trade without."""
        if self.owner is None or self.owner.still_held():
            return True
        self.log.error("daemon.lock_lost", state=self.store.location,
                       action="stopping: another daemon may own the store now")
        self.stop_event.set()
        return False

    def _run_risk_watch(self, when: datetime) -> None:
        salt = f"rw-{self._salt_time(when):%Y%m%d%H%M}-{secrets.token_hex(4)}"
        try:
            failed = self.cycle.risk_watch(salt, self._trading_failures())
        except Exception as exc:
            self._count("risk_watch", failed=True)
            self.observer.risk_watch_done(None, exc, self.store)
            raise
        self._count("risk_watch", failed=bool(failed))
        self.observer.risk_watch_done(failed, None, self.store)

    def _trading_failures(self) -> int:
        return max(self.failures[job] for job in TRADING_JOBS)

    def _count(self, job: str, failed: bool) -> None:
        self.failures[job] = self.failures[job] + 1 if failed else 0

    def _salt_time(self, as_of: datetime) -> datetime:
        """The risk watch's id salt: the simulated step in replay, the minute on a venue."""
        return self.driver.salt_time() if isinstance(self.driver, WallClock) else as_of

    def run_cycles(self, count: int) -> int:
        """Run ``count`` cycles back to back (``--once``/``--cycles``); stop early on a signal.
        Returns the exit status (see :meth:`shutdown`)."""
        self._install_signal_handlers()
        try:
            self._prefill()
            for _ in range(count):
                if self.stop_event.is_set() or not self.step():
                    break
        finally:
            code = self.shutdown()
        return code

    # -- scheduled service -----------------------------------------------------------------
    def _intervals(self) -> tuple[float, float, float]:
        """(cycle, signals, risk watch) seconds: replay ticks, or the scheduler's intervals."""
        if isinstance(self.driver, ReplayDriver):
            tick = self.settings.replay.tick_seconds
            return tick, tick, max(tick / 4, 0.05)
        s = self.settings.scheduler
        return s.cycle_seconds, s.signal_refresh_seconds, s.risk_watch_seconds

    def run_forever(self) -> int:
        """Run the scheduled jobs until a signal (or the end of replay history); returns the
        exit status (see :meth:`shutdown`)."""
        cycle_every, signals_every, risk_every = self._intervals()
        scheduler = BackgroundScheduler(
            # Trading jobs share one worker (and the daemon's lock); the signal providers'
            # network rounds have their own, so a slow provider never delays the risk watch.
            executors={"default": ThreadPoolExecutor(max_workers=1),
                       "providers": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        jobs = (("cycle", self._cycle_job, cycle_every, now),
                ("signals", self._signals_job, signals_every,
                 now + timedelta(seconds=min(cycle_every, signals_every) / 2)),
                ("risk_watch", self._risk_job, risk_every, now + timedelta(seconds=risk_every)))
        # The providers' first rounds run before the first cycle (``_prefill``): the cycle
        # and signal jobs are added paused and resumed once it is over.
        prefill = isinstance(self.driver, WallClock) and self._venue_signals.has_providers
        for name, fn, every, first in jobs:
            if isinstance(self.driver, ReplayDriver):
                self._paced(scheduler, self._job(fn, name), name, every, first)
            else:
                held = prefill and name in ("cycle", "signals")
                scheduler.add_job(self._job(fn, name), "interval", seconds=every, id=name,
                                  next_run_time=None if held else first)
        if isinstance(self.driver, WallClock) and self._venue_signals.has_providers:
            # Ahead of the hourly signal refresh, so a cycle reads a fresh round.
            scheduler.add_job(self._job(self._providers_job, "providers"), "interval",
                              seconds=signals_every, id="providers", executor="providers",
                              next_run_time=now + timedelta(seconds=signals_every / 4))
        self._install_signal_handlers()
        # Before the jobs start: it reads the store, which is theirs from then on.
        # The health stall clock starts now, so the first cycle may come the prefill's
        # budget late: with a short cycle, a prefill longer than the stall limit would
        # otherwise report the daemon stalled (and a liveness probe restart it in a loop).
        self.observer.service_started(
            cycle_every, lambda: bool(scheduler.running) and not self.stop_event.is_set(),
            self.store, self.universe,
            first_cycle_grace=self._venue_signals.prefill_budget if prefill else 0.0)
        scheduler.start()
        self.log.info("scheduler.started", tick_seconds=cycle_every,
                      signal_refresh_seconds=signals_every, risk_watch_seconds=risk_every,
                      jobs=[j.id for j in scheduler.get_jobs()])
        try:
            if prefill:
                self._prefill()
                start = datetime.now(UTC)
                with contextlib.suppress(SchedulerNotRunningError):
                    scheduler.modify_job("cycle", next_run_time=start)
                    scheduler.modify_job("signals", next_run_time=start + timedelta(
                        seconds=min(cycle_every, signals_every) / 2))
            while not self.stop_event.wait(0.2):
                pass
        finally:
            self.observer.service_stopped()
            scheduler.shutdown(wait=False)
            code = self.shutdown()
        return code

    def _paced(self, scheduler: BackgroundScheduler, fn: Callable[[], None], name: str,
               every: float, first: datetime) -> None:
        """A replay job that books its next run when it ends, ``every`` seconds after it
        started (at once if it took longer). A replay tick is often shorter than a step: on
        a fixed interval the scheduler would keep finding the job still running, skip it
        and warn each time (150k-276k warnings in one bundled run with a tiny tick)."""
        seq = itertools.count(1)

        def run() -> None:
            started = time.monotonic()
            fn()
            if self.stop_event.is_set():
                return
            delay = max(0.0, every - (time.monotonic() - started))
            # The next run gets an id of its own. Under this run's id, a next run due at once
            # (a step longer than the tick) met this run still counted as running (until it
            # returns) and was refused ("maximum number of running instances reached"); a
            # refused one-shot job is dropped, and the replay stalled for good with the
            # process alive (found by benchmarks/soak.py). Runs never overlap: the default
            # executor has one worker, so a next run waits for this one.
            with contextlib.suppress(SchedulerNotRunningError):
                scheduler.add_job(run, "date", id=f"{name}.{next(seq)}",
                                  run_date=datetime.now(UTC) + timedelta(seconds=delay))

        scheduler.add_job(run, "date", id=name, run_date=first)

    def _job(self, fn: Callable[[], None], name: str) -> Callable[[], None]:
        def wrapped() -> None:
            if self.stop_event.is_set():
                return
            try:
                fn()
            except Exception as exc:
                self.log.exception("job.failed", job=name, error=str(exc),
                                   consecutive_failures=self.failures.get(name, 0))
        return wrapped

    def _cycle_job(self) -> None:
        if not self.step():
            self.stop_event.set()

    def _providers_job(self) -> None:
        """The providers' network rounds: not under the daemon's lock (they send nothing and
        touch only the providers' own cache, which has its own lock). Each provider's round
        runs on a thread of its own and this job does not wait for them: a stalled host
        delays neither the other providers nor the next tick (its own round is skipped
        while the stalled one still runs)."""
        if not self._stopping() and isinstance(self.driver, WallClock):
            self._venue_signals.start_rounds(self.driver.as_of())

    def _prefill(self) -> None:
        """A fresh daemon's first provider rounds, at start-up and all at once, before the
        first cycle: it then decides with history and never holds the trading lock on the
        network. Bounded by the round budget (``signals.round_budget_seconds``) and a stop
        request; a provider still running then is stale for the first cycle
        ("first round not finished yet") and publishes when its round ends."""
        if not isinstance(self.driver, WallClock) or not self._venue_signals.has_providers:
            return
        started = time.monotonic()
        pending = self._venue_signals.refresh_providers(
            self.driver.as_of(), wait=self._venue_signals.prefill_budget,
            stopping=self.stop_event.is_set)
        self.log.info("signals.prefilled", seconds=round(time.monotonic() - started, 3),
                      pending=pending)

    def _signals_job(self) -> None:
        with self.lock:
            if self._stopping():
                return
            when = (self.driver.as_of() if isinstance(self.driver, WallClock)
                    else self.driver.cursor)
            try:
                self.cycle.refresh_signals(when)
            except Exception:
                self._count("signals", failed=True)
                raise
            self._count("signals", failed=False)

    def _risk_job(self) -> None:
        with self.lock:
            if self._stopping() or not self._still_owner():
                return
            self._run_risk_watch(self.driver.cursor)

    # -- stopping --------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.log.info("daemon.stopping", signal=signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _summarise(self) -> None:
        """Paper mode ends with how the run did against simply holding (``run.summary``)."""
        if not isinstance(self.driver, ReplayDriver) or self.cycles_done == 0:
            return
        from bot.backtest.command import run_summary  # the report's figures, not its charts

        try:
            self.summary = run_summary(self.store, self.data, self.universe, self.settings)
        except Exception as exc:  # a summary must never cost a clean stop
            self.log.warning("run.summary_failed", error=str(exc))
            return
        if self.summary:
            s = self.summary["strategy"]
            self.log.info("run.summary", period=self.summary["period"],
                          total_return=round(s["total_return"], 4),
                          sharpe=round(s["sharpe"], 3),
                          max_drawdown=round(s["max_drawdown"], 4),
                          benchmarks={name: {"total_return": round(b["total_return"], 4),
                                             "sharpe": round(b["sharpe"], 3),
                                             "max_drawdown": round(b["max_drawdown"], 4)}
                                      for name, b in self.summary["benchmarks"].items()})

    def shutdown(self) -> int:
        """Wait for the job in flight to end, persist, close, and say so (last line).

        Returns the exit status: 0 for a clean stop; 1 when a perp leg that filled in flight
        could not be protected (``clean=false``: a supervisor should restart the daemon, whose
        watchdog then covers it). The job ends on its own soon after a stop request (no new
        order; the order in flight and its leg's stop keep their retries): within
        ``shutdown_timeout_seconds`` plus one request timeout. Past that bound the daemon
        halts: the venue adapter refuses every further request, ``daemon.stopped
        clean=false`` is logged and the process exits at once with status 1, so nothing the
        abandoned job might still try can follow the line that says the daemon stopped.
        """
        self.stop_event.set()
        bound = self.settings.scheduler.shutdown_timeout_seconds + self.request_timeout
        if not self.lock.acquire(timeout=bound):
            self.halted.set()
            self.log.error("daemon.stopped", cycles=self.cycles_done, clean=False,
                           cursor=self.driver.cursor.isoformat(),
                           reason=f"the job in flight did not end within {bound:g}s")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        try:
            # The history frozen at load goes back to the collector: a process that runs
            # daemon after daemon (optimize's folds) would otherwise keep every one's data.
            gc.unfreeze()
            self.halted.set()  # the job has ended: nothing may be sent from here on
            self.driver.persist()
            self._summarise()
            self.store.close()
            if isinstance(self.driver, WallClock):
                self._venue_exchange.close()
                self._venue_signals.close()
            self._release_owner()
            if self.unprotected:
                self.log.error("daemon.stopped", cycles=self.cycles_done, clean=False,
                               cursor=self.driver.cursor.isoformat(),
                               reason="a leg filled while stopping and its stop could not be "
                                      f"confirmed: {sorted(self.unprotected)}")
                return 1
            self.log.info("daemon.stopped", cycles=self.cycles_done, clean=True,
                          cursor=self.driver.cursor.isoformat())
            return 0
        finally:
            self.lock.release()
