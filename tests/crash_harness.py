"""Random kill -9 trials of the demo daemon against the Binance emulator.

One trial: a seeded schedule of venue faults (2-8 % of reads, 15-40 % of order writes: 5xx
before processing, 429, "accepted then 503") and price moves of up to 11 %, mostly on
symbols with a position (stops fire), a first run of several cycles that
is SIGKILLed at a random request (before the venue processes it, or after it did and before
the reply reached the daemon), then an uninterrupted restart with a calm venue. The venue
is a separate thread whose state outlives the daemon, as a real exchange's would.

What must hold afterwards (each broken promise is a *violation*):

* ``duplicate_ids``: a client id the venue accepted as more than one order;
* ``id_conflicts``: a client id sent for two different orders (symbol, side, size, type);
* ``lost_fills``: a client id whose fills on the venue differ from the journal's;
* ``two_intents``: a journal row bound to a venue order that is not the one it describes;
* ``unstopped``: a perp position without live stops covering all of it after the restart;
* ``over_leverage``: a symbol whose leverage on the venue is above the configured cap.

Used by ``tests/test_crash_random.py`` (a sample in CI) and ``benchmarks/crash_suite.py``
(the full count, with figures for ``docs/reliability.md``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.store.repo import StateStore
from tests.daemon_proc import env_for
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.exchange_emulator.server import _Reply

KEY, SECRET = "chaos-key-5d1e7a", "chaos-secret-93c0b2f4"
ORDER_PATHS = {"/fapi/v1/order", "/api/v3/order", "/fapi/v1/algoOrder"}
READ_PATHS = ("/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders", "/api/v3/account",
              "/fapi/v3/account", "/api/v3/ticker/price", "/fapi/v1/premiumIndex")
MAX_LEVERAGE = Decimal(3)


@dataclass(frozen=True)
class Trial:
    """Everything random about one trial, derived from its seed (so a failure replays)."""

    seed: int
    kill_at: int
    after: bool
    cycles: int
    read_fault_rate: float
    order_fault_rate: float
    move_every: int

    @classmethod
    def from_seed(cls, seed: int) -> Trial:
        rng = random.Random(seed)
        return cls(seed=seed, kill_at=rng.randint(1, 90), after=rng.random() < 0.5,
                   cycles=rng.randint(2, 3), read_fault_rate=rng.uniform(0.02, 0.08),
                   order_fault_rate=rng.uniform(0.15, 0.4), move_every=rng.randint(5, 12))


@dataclass
class TrialResult:
    trial: Trial
    backend: str
    killed: bool
    restart_code: int
    requests: int
    order_requests: int
    faults: dict[str, int]
    price_moves: int
    stops_fired: int
    venue_orders: int
    violations: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.restart_code == 0 and not any(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


class ChaosEmulator(BinanceEmulator):
    """Faults, price moves and the kill, all decided per request from the trial's seed."""

    def __init__(self, trial: Trial, **kwargs: Any) -> None:
        super().__init__(KEY, SECRET, **kwargs)
        self.trial = trial
        self.rng = random.Random(trial.seed * 7919 + 1)
        self.victim: int | None = None
        self.chaos = False
        self.seen = 0
        self.faults: Counter[str] = Counter()
        self.moves = 0
        self.fired = 0

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        path = raw_path.split("?", 1)[0]
        if not self.chaos:
            return super().handle(method, raw_path, headers, body)
        self.seen += 1
        if self.seen % self.trial.move_every == 0:
            self._move_a_price()
        fire = self.victim is not None and self.seen == self.trial.kill_at
        if fire and not self.trial.after:
            self._kill()  # the venue never processes this request
            return _Reply(503, b"<html>killed before processing</html>",
                          {"Content-Type": "text/html"})
        self._maybe_fault(method, path)
        reply = super().handle(method, raw_path, headers, body)
        if fire:
            self._kill()  # processed, the daemon never hears the answer
        return reply

    def _kill(self) -> None:
        if self.victim is not None:
            os.kill(self.victim, signal.SIGKILL)
            self.victim = None

    def _maybe_fault(self, method: str, path: str) -> None:
        """Queue a fault for this very request (the next one matching method and path)."""
        is_order = method == "POST" and path in ORDER_PATHS
        rate = self.trial.order_fault_rate if is_order else self.trial.read_fault_rate
        if self.rng.random() >= rate:
            return
        roll = self.rng.random()
        if is_order and roll < 0.5:
            self.inject_accept_then_fail(path, method="POST")
            self.faults["accepted_then_503"] += 1
        elif roll < 0.8:
            self.inject_status(503, path=path, method=method)
            self.faults["503_before"] += 1
        else:
            self.inject_rate_limit(path=path, method=method, retry_after=0)
            self.faults["429"] += 1

    def _move_a_price(self) -> None:
        """Mostly a symbol with an open position, so stops get the chance to fire."""
        with self._lock:
            held = sorted(s for s, p in self.book.positions.items() if p.qty != 0)
            pool = held if held and self.rng.random() < 0.7 else sorted(self.book.instruments)
            symbol = self.rng.choice(pool)
            inst = self.book.instruments[symbol]
            move = Decimal(str(round(self.rng.uniform(-0.11, 0.11), 4)))
            price = (inst.price * (1 + move)).quantize(inst.tick)
            fired = self.book.set_price(symbol, max(price, inst.tick))
        self.moves += 1
        self.fired += len(fired)


def seed_positions(emu: BinanceEmulator, rng: random.Random) -> None:
    """Leveraged positions the journal has never seen, without stops: the daemon must adopt
    them, protect them and (no rotation under way) close them."""
    import ccxt

    ex = ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False,
                           "options": {"fetchCurrencies": False}})
    ex.enable_demo_trading(True)
    route_to(ex, emu)
    ex.set_leverage(2, "SOL/USDT:USDT")
    ex.create_order("SOL/USDT:USDT", "market", "buy", rng.choice([3, 5, 8]), None,
                    {"clientOrderId": f"manual-sol-{rng.randint(0, 10**6)}"})
    if rng.random() < 0.5:
        ex.set_leverage(2, "LINK/USDT:USDT")
        ex.create_order("LINK/USDT:USDT", "market", "sell", rng.choice([20, 40]), None,
                        {"clientOrderId": f"manual-link-{rng.randint(0, 10**6)}"})


def launch(emu: BinanceEmulator, workdir: Path, state: Path | str,
           cycles: int) -> subprocess.Popen[str]:
    cfg = workdir / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n\n'
                   f"[risk]\nmax_leverage = {MAX_LEVERAGE}\n")
    extra = {"SECTORBOT__STATE__URL": state} if isinstance(state, str) else {}
    env = env_for(workdir / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                  SECTORBOT__EXCHANGE__API_SECRET=SECRET,
                  **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"}, **extra)
    return subprocess.Popen([sys.executable, "-m", "tests.demo_launcher", "run", "--cycles",
                             str(cycles), "--config", str(cfg)], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_trial(trial: Trial, workdir: Path, state: Path | str, backend: str) -> TrialResult:
    started = time.monotonic()
    with ChaosEmulator(trial) as emu:
        seed_positions(emu, random.Random(trial.seed))
        emu.clear_requests()
        emu.chaos = True
        first = launch(emu, workdir, state, trial.cycles)
        emu.victim = first.pid
        first.communicate(timeout=300)
        killed = first.returncode == -signal.SIGKILL
        emu.victim, emu.chaos = None, False
        emu.clear_faults()
        # A calm restart: reconcile what the kill left, then two cycles (the second
        # reconciles whatever the first one's stops did).
        second = launch(emu, workdir, state, 2)
        out, err = second.communicate(timeout=300)
        result = TrialResult(
            trial=trial, backend=backend, killed=killed, restart_code=second.returncode,
            requests=len(emu.requests),
            order_requests=sum(1 for r in emu.requests
                               if r.method == "POST" and r.path in ORDER_PATHS),
            faults=dict(emu.faults), price_moves=emu.moves, stops_fired=emu.fired,
            venue_orders=len(emu.book.orders) + len(emu.book.algos))
        if second.returncode != 0:
            result.violations["restart_failed"] = [err[-1500:] or out[-1500:]]
        result.violations.update(violations(emu, state))
    result.seconds = round(time.monotonic() - started, 2)
    return result


def violations(emu: BinanceEmulator, state: Path | str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    book = emu.book
    # What the venue holds per client id: regular orders, and stops (algos).
    venue: dict[str, list[tuple[str, str, str, Decimal]]] = defaultdict(list)
    for order in book.orders.values():
        if order.client_id.startswith("sb-"):
            venue[order.client_id].append((order.market, order.symbol, order.side.lower(),
                                           order.qty))
    for algo in book.algos.values():
        if algo.client_algo_id.startswith("sb-"):
            venue[algo.client_algo_id].append(("perp", algo.symbol, algo.side.lower(),
                                               algo.qty))
    for cid, orders in venue.items():
        if len(orders) > 1:
            found["duplicate_ids"].append(f"{cid}: {orders}")
    sent: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for r in emu.requests:
        if r.method == "POST" and r.path in ORDER_PATHS:
            cid = r.params.get("newClientOrderId") or r.params.get("clientAlgoId") or ""
            sent[cid].add((r.path, r.params.get("symbol", ""), r.params.get("side", ""),
                           r.params.get("quantity", ""), r.params.get("type", "")))
    for cid, contents in sent.items():
        if cid.startswith("sb-") and len(contents) > 1:
            found["id_conflicts"].append(f"{cid}: {sorted(contents)}")
    stop_of = {a.actual_order_id: a.client_algo_id for a in book.algos.values()
               if a.actual_order_id is not None}
    executed: dict[str, Decimal] = defaultdict(Decimal)
    for order in book.orders.values():
        cid = stop_of.get(order.order_id, order.client_id)
        if cid.startswith("sb-") and order.executed > 0:
            executed[cid] += order.executed
    store = StateStore(state, read_only=True)
    try:
        journal: dict[str, Decimal] = defaultdict(Decimal)
        for fill in store.fills():
            journal[fill.client_id] += fill.amount
        for cid in sorted(set(executed) | set(journal)):
            if executed.get(cid, Decimal(0)) != journal.get(cid, Decimal(0)):
                found["lost_fills"].append(f"{cid}: venue {executed.get(cid)} "
                                           f"journal {journal.get(cid)}")
        for row in store.orders():
            for market, symbol, side, _qty in venue.get(row.client_id, []):
                if (market, symbol, side) != (row.market, f"{row.token}USDT", row.side):
                    found["two_intents"].append(
                        f"{row.client_id}: journal {row.side} {row.token} {row.market}, "
                        f"venue {side} {symbol} {market}")
    finally:
        store.close()
    for symbol, position in book.positions.items():
        if position.qty == 0:
            continue
        covered = sum((a.qty for a in book.algos.values()
                       if a.symbol == symbol and a.status == "NEW"), Decimal(0))
        if covered < abs(position.qty):
            found["unstopped"].append(f"{symbol}: {position.qty} covered {covered}")
        if book.leverage.get(symbol, 0) > MAX_LEVERAGE:
            found["over_leverage"].append(f"{symbol}: {book.leverage[symbol]}x")
    return dict(found)
