"""kill -9 the daemon at exact points of a cycle, restart it, and check nothing was lost.

The daemon runs in demo mode against the Binance emulator (a separate process's view of the
venue: its state survives the daemon's death, as a real exchange's would). A subclass of
the emulator SIGKILLs the daemon when the N-th order request arrives, either before the
venue processes it (the order never existed) or after processing but before the reply
(the order exists, the daemon never heard). A second, uninterrupted run in the same hour
re-runs the same decision (same client ids). Then, for each kill point:
- no client id was POSTed as a new order more than once;
- every trade on the emulator is a fill in the journal;
- the journal's positions match the venue's;
- every leveraged position has a live stop.
The whole suite runs twice: on a SQLite file and on PostgreSQL (``state.url``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.store.repo import StateStore
from tests.daemon_proc import env_for
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator
from tests.exchange_emulator.server import _Reply
from tests.pg_server import session_server

KEY, SECRET = "crash-key-5d1e7a", "crash-secret-93c0b2f4"
ORDER_PATHS = {"/fapi/v1/order", "/api/v3/order", "/fapi/v1/algoOrder"}


class KillingEmulator(BinanceEmulator):
    """Kills ``victim`` at the ``kill_at``-th order request, before or after processing."""

    victim: int | None = None
    kill_at = 0
    after = False
    seen = 0

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        path = raw_path.split("?", 1)[0]
        is_order = method == "POST" and path in ORDER_PATHS
        if is_order:
            self.seen += 1
        fire = is_order and self.victim is not None and self.seen == self.kill_at
        if fire and not self.after:
            # The request never reaches the book: the venue never saw this order.
            os.kill(self.victim, signal.SIGKILL)  # type: ignore[arg-type]
            self.victim = None
            return _Reply(503, b"<html>killed before processing</html>",
                          {"Content-Type": "text/html"})
        reply = super().handle(method, raw_path, headers, body)
        if fire and self.after and self.victim is not None:
            os.kill(self.victim, signal.SIGKILL)
            self.victim = None
        return reply


def daemon(emu: BinanceEmulator, tmp_path: Path, state: Path | str) -> subprocess.Popen[str]:
    """``state`` is a SQLite file or a PostgreSQL URL (passed as the secret ``state.url``)."""
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
    extra = {"SECTORBOT__STATE__URL": state} if isinstance(state, str) else {}
    env = env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                  SECTORBOT__EXCHANGE__API_SECRET=SECRET, **{EMULATOR_ENV: emu.base_url,
                                                             NO_THROTTLE_ENV: "1"}, **extra)
    return subprocess.Popen([sys.executable, "-m", "tests.demo_launcher", "run", "--once",
                             "--config", str(cfg)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def order_client_id(params: dict[str, str]) -> str | None:
    return params.get("newClientOrderId") or params.get("clientAlgoId")


def seed_unprotected_long(emu: BinanceEmulator) -> None:
    """A leveraged position the journal has never seen and with no stop: the restarted
    daemon must adopt it and protect it (one more order request to kill at)."""
    import ccxt

    from tests.exchange_emulator import route_to

    ex = ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False,
                           "options": {"fetchCurrencies": False}})
    ex.enable_demo_trading(True)
    route_to(ex, emu)
    ex.set_leverage(2, "SOL/USDT:USDT")
    ex.create_order("SOL/USDT:USDT", "market", "buy", 5, None,
                    {"clientOrderId": "manual-seed-1"})
    emu.clear_requests()
    if isinstance(emu, KillingEmulator):
        emu.seen = 0


def check_invariants(emu: BinanceEmulator, state: Path | str) -> None:
    posts = Counter(order_client_id(r.params) for r in emu.requests
                    if r.method == "POST" and r.path in ORDER_PATHS)
    twice = {cid: n for cid, n in posts.items() if cid and cid.startswith("sb-") and n > 1}
    assert twice == {}, f"client ids sent as new orders more than once: {twice}"
    store = StateStore(state)
    try:
        journal = Counter()
        for fill in store.fills():
            journal[fill.client_id] += fill.amount
        venue = Counter()
        for order in emu.book.orders.values():
            if order.client_id.startswith("sb-") and order.executed > 0:
                venue[order.client_id] += order.executed
        assert venue, "the cycle filled nothing: the check would be empty"
        assert dict(venue) == dict(journal), "journal and venue fills differ"
        held = {p.token: p.amount for p in store.positions() if p.market == "perp"}
        on_venue = {sym.removesuffix("USDT"): p.qty
                    for sym, p in emu.book.positions.items() if p.qty != 0}
        assert held == on_venue
    finally:
        store.close()
    stops = {a.symbol for a in emu.book.algos.values() if a.status == "NEW"}
    for sym, p in emu.book.positions.items():
        if p.qty != 0:
            assert sym in stops, f"{sym} has no live stop"


KILL_POINTS = [(n, after) for n in (1, 2, 3, 4) for after in (False, True)]


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The daemon's store: a SQLite file, or a fresh schema on the session's PostgreSQL
    (skipped, saying what to install, only where no server can be started)."""
    if request.param == "sqlite":
        return tmp_path / "state.sqlite3"
    return session_server(request.config).fresh_url()


@pytest.mark.process
@pytest.mark.parametrize(("kill_at", "after"), KILL_POINTS,
                         ids=[f"order{n}-{'after' if a else 'before'}" for n, a in KILL_POINTS])
def test_kill_nine_then_restart_loses_and_doubles_nothing(tmp_path: Path, state: Path | str,
                                                          kill_at: int, after: bool) -> None:
    with KillingEmulator(KEY, SECRET) as emu:
        seed_unprotected_long(emu)
        first = daemon(emu, tmp_path, state)
        emu.victim, emu.kill_at, emu.after = first.pid, kill_at, after
        first_out, first_err = first.communicate(timeout=120)
        killed = first.returncode == -signal.SIGKILL
        emu.victim = None
        second = daemon(emu, tmp_path, state)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        check_invariants(emu, state)
        if isinstance(state, str):  # the journal really lived in PostgreSQL
            assert not (tmp_path / "state.sqlite3").exists()
        # The seeded cycle sends 5 order requests (the adopted position's stop, three spot
        # buys, the perp close): fewer means the kill point was never reached.
        assert killed, (f"the daemon was not killed at order request {kill_at} (exit "
                        f"{first.returncode}): {first_err[-1500:] or first_out[-1500:]}")
        # The restart really went through recovery: the killed order was settled by client
        # id (the venue had it) or expired as never sent (it had not), then not resent twice.
        recovery = "reconcile.settled" if after else "reconcile.never_sent"
        assert f'"{recovery}"' in out, out[-2000:]
