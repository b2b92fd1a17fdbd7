"""The daemon: wires adapters to the cycle and lets APScheduler drive it.

Three jobs, as the strategy needs them: signal refresh, the rotation/rebalance cycle, and a
more frequent risk watch. They share one worker thread, so no job overlaps itself or another
(the paper exchange and the journal are single-writer by design); ``coalesce`` and
``max_instances=1`` keep a slow job from piling up runs. SIGTERM/SIGINT let the job in flight
finish, persist, log ``daemon.stopped`` and exit 0.

Two clocks. Paper mode replays history: each tick advances the simulated clock (the
``ReplayDriver``) by ``replay.step_days`` every ``replay.tick_seconds``. Testnet, demo and live
modes trade a real venue through ccxt on the wall clock (``bot.service.venue.WallClock``), and
the jobs run every ``scheduler.cycle_seconds`` / ``signal_refresh_seconds`` /
``risk_watch_seconds``.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Settings, load_universe
from bot.domain.models import SectorSpec, Universe
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.exchange.port import ExchangePort
from bot.service.cycle import SignalSource, TradingCycle
from bot.service.reconcile import reconcile
from bot.service.replay_driver import PAPER_KEY, ReplayDriver, ReplaySignals
from bot.service.venue import VenueStartupError, WallClock, build_venue
from bot.sources.replay import ReplayData, bundled_sample_dir
from bot.store.repo import StateStore

LOOKBACK_DAYS = 400
"""History handed to the engine each cycle: enough for a 200-day average and funding p90."""


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
    def __init__(self, settings: Settings, log: Any) -> None:
        self.settings = settings
        self.log = log
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.cycles_done = 0
        self.consecutive_failures = 0
        self.driver: ReplayDriver | WallClock
        self.exchange: ExchangePort
        signals = self._wire_paper() if settings.mode == "paper" else self._wire_venue()
        self.cycle = TradingCycle(
            universe=self.universe, params=settings.strategy, limits=settings.risk.limits(),
            exchange=self.exchange, store=self.store, signals=signals, log=log,
            margin_mode=settings.exchange.margin_mode)
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

    def _wire_paper(self) -> SignalSource:
        """Replayed history on the simulated exchange (unchanged since paper mode shipped)."""
        settings, log = self.settings, self.log
        self._data_dir = settings.replay.data_dir or bundled_sample_dir()
        self.data = ReplayData.load(self._data_dir)
        self.universe = restrict_universe(load_universe(settings.universe_file),
                                          set(self.data.tokens), log)
        self.store = StateStore(settings.state.target())
        paper = self._paper_exchange()
        self.exchange = paper
        self._start = settings.replay.start or (self.data.first_day + timedelta(
            days=settings.replay.warmup_days))
        self.driver = ReplayDriver(self.data, paper, self.store, self._start,
                                   settings.replay.step_days, log)
        return ReplaySignals(self.data, LOOKBACK_DAYS)

    def _wire_venue(self) -> SignalSource:
        """A real venue through ccxt on the wall clock. The venue is reached (markets
        loaded, universe restricted) before the state store is opened, so a refused start
        writes nothing."""
        try:
            venue = build_venue(self.settings, load_universe(self.settings.universe_file),
                                LOOKBACK_DAYS, self.log)
        except VenueStartupError as exc:
            raise StartupError(str(exc)) from exc
        self.universe = venue.universe
        self._venue_exchange = venue.exchange
        self.exchange = venue.exchange
        self.store = StateStore(self.settings.state.target())
        self.driver = venue.clock
        return venue.signals

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
        if saved:
            return PaperExchange.from_state(config, saved)
        tokens = [t.symbol for t in self.universe.all_tokens() if t.spot]
        perps = [t.symbol for t in self.universe.all_tokens() if t.perp]
        return PaperExchange(config, tokens, perps)

    # -- one step --------------------------------------------------------------------------
    def step(self) -> bool:
        """Advance the replay clock and run one full cycle. False once history is exhausted."""
        with self.lock:
            as_of = self.driver.advance()
            if as_of is None:
                self.log.info("replay.finished", last=self.driver.cursor.isoformat(),
                              cycles=self.cycles_done)
                return False
            reconcile(self.exchange, self.store, self.log)
            self.cycle.risk_watch(f"rw-{self._salt_time(as_of):%Y%m%d%H%M}",
                                  self.consecutive_failures)
            self.cycle.run(as_of)
            self.driver.persist()
            self.cycles_done += 1
            return True

    def _salt_time(self, as_of: datetime) -> datetime:
        """The risk watch's id salt: the simulated step in replay, the minute on a venue."""
        return self.driver.salt_time() if isinstance(self.driver, WallClock) else as_of

    def run_cycles(self, count: int) -> int:
        """Run ``count`` cycles back to back (``--once``/``--cycles``); stop early on a signal."""
        self._install_signal_handlers()
        try:
            for _ in range(count):
                if self.stop_event.is_set() or not self.step():
                    break
        finally:
            self.shutdown()
        return self.cycles_done

    # -- scheduled service -----------------------------------------------------------------
    def _intervals(self) -> tuple[float, float, float]:
        """(cycle, signals, risk watch) seconds: replay ticks, or the scheduler's intervals."""
        if isinstance(self.driver, ReplayDriver):
            tick = self.settings.replay.tick_seconds
            return tick, tick, max(tick / 4, 0.05)
        s = self.settings.scheduler
        return s.cycle_seconds, s.signal_refresh_seconds, s.risk_watch_seconds

    def run_forever(self) -> None:
        cycle_every, signals_every, risk_every = self._intervals()
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        scheduler.add_job(self._job(self._cycle_job), "interval", seconds=cycle_every,
                          id="cycle", next_run_time=now)
        scheduler.add_job(self._job(self._signals_job), "interval", seconds=signals_every,
                          id="signals", next_run_time=now + timedelta(
                              seconds=min(cycle_every, signals_every) / 2))
        scheduler.add_job(self._job(self._risk_job), "interval", seconds=risk_every,
                          id="risk_watch")
        self._install_signal_handlers()
        scheduler.start()
        self.log.info("scheduler.started", tick_seconds=cycle_every,
                      signal_refresh_seconds=signals_every, risk_watch_seconds=risk_every,
                      jobs=[j.id for j in scheduler.get_jobs()])
        try:
            while not self.stop_event.wait(0.2):
                pass
        finally:
            scheduler.shutdown(wait=False)
            self.shutdown()

    def _job(self, fn: Any) -> Any:
        def wrapped() -> None:
            if self.stop_event.is_set():
                return
            try:
                fn()
                self.consecutive_failures = 0
            except Exception as exc:
                self.consecutive_failures += 1
                self.log.exception("job.failed", job=fn.__name__, error=str(exc),
                                   consecutive_failures=self.consecutive_failures)
        return wrapped

    def _cycle_job(self) -> None:
        if not self.step():
            self.stop_event.set()

    def _signals_job(self) -> None:
        with self.lock:
            when = (self.driver.as_of() if isinstance(self.driver, WallClock)
                    else self.driver.cursor)
            self.cycle.refresh_signals(when)

    def _risk_job(self) -> None:
        with self.lock:
            self.cycle.risk_watch(f"rw-{self._salt_time(self.driver.cursor):%Y%m%d%H%M}",
                                  self.consecutive_failures)

    # -- stopping --------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.log.info("daemon.stopping", signal=signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def shutdown(self) -> None:
        """Wait for the job in flight (bounded), persist, and say so."""
        timeout = self.settings.scheduler.shutdown_timeout_seconds
        acquired = self.lock.acquire(timeout=timeout)
        try:
            if acquired:
                self.driver.persist()
            self.log.info("daemon.stopped", cycles=self.cycles_done, clean=acquired,
                          cursor=self.driver.cursor.isoformat())
        finally:
            if acquired:
                self.lock.release()
            self.store.close()
            if isinstance(self.driver, WallClock):
                self._venue_exchange.close()
