"""Issue #10, cases 2 and 3, as processes against the Binance emulator.

2. Two daemons on one state store (SQLite file, PostgreSQL schema): the second one exits 2
   naming the first (pid, host, since) and sends nothing to the venue; ``status`` still
   reads the store beside the running daemon, without a lock and without writing.
3. SIGTERM with a slow venue: the order in flight finishes and is journalled, no new order
   follows, ``daemon.stopped`` is the last line and no request reaches the venue after it,
   and the process exits within ``shutdown_timeout_seconds`` plus one request timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.store.repo import StateStore
from tests.daemon_proc import env_for, events, named
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator
from tests.pg_server import session_server

KEY, SECRET = "owner-key-1a2b3c", "owner-secret-4d5e6f"
ORDER_PATHS = {"/fapi/v1/order", "/api/v3/order", "/fapi/v1/algoOrder"}


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "sqlite":
        return tmp_path / "state.sqlite3"
    return session_server(request.config).fresh_url()


def launch(emu: BinanceEmulator, tmp_path: Path, state: Path | str, *args: str,
           **extra: str) -> subprocess.Popen[str]:
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
    url = {"SECTORBOT__STATE__URL": state} if isinstance(state, str) else {}
    env = env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                  SECTORBOT__EXCHANGE__API_SECRET=SECRET,
                  **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"}, **url, **extra)
    return subprocess.Popen([sys.executable, "-m", "tests.demo_launcher", "run", *args,
                             "--config", str(cfg)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class LineReader:
    """Reads a process's stdout on a thread, so a test can wait for a line without
    blocking on a pipe the process keeps open."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line)

    def wait_for(self, event: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(f'"event": "{event}"' in line for line in self.lines):
                return
            if self._proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {event} line: {''.join(self.lines)[-2000:]}")

    def finish(self) -> str:
        self._thread.join(timeout=30)
        return "".join(self.lines)


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


@pytest.mark.process
def test_a_second_daemon_on_the_same_store_exits_2_and_sends_nothing(
        emu: BinanceEmulator, tmp_path: Path, state: Path | str) -> None:
    first = launch(emu, tmp_path, state)
    reader = LineReader(first)
    try:
        reader.wait_for("cycle.completed")
        emu.clear_requests()
        second = launch(emu, tmp_path, state, "--once")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 2, (out, err)
        assert f"in use by another sectorbot daemon (pid {first.pid} " in err
        assert " since " in err and KEY not in err and SECRET not in err
        assert emu.requests == [], "the refused daemon talked to the account"

        # A read-only command still works beside the running daemon.
        status = subprocess.run([sys.executable, "-m", "bot", "status"], cwd=tmp_path,
                                env=env_for(tmp_path / "state.sqlite3", **(
                                    {"SECTORBOT__STATE__URL": state}
                                    if isinstance(state, str) else {})),
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert "orders:" in status.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 0
    evs = events(reader.finish())
    assert evs[-1]["event"] == "daemon.stopped" and evs[-1]["clean"] is True
    # The second daemon wrote nothing: every decision in the store is the first one's.
    store = StateStore(state, read_only=True)
    try:
        assert len(store.decisions()) == len(named(evs, "decision.made"))
    finally:
        store.close()


class SignallingEmulator(BinanceEmulator):
    """Sends SIGTERM to ``victim`` the moment the first order request arrives, then lets
    the request run on (its latency fault makes it slow)."""

    victim: int | None = None
    signalled_at: float | None = None

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        path = raw_path.split("?", 1)[0]
        if (method == "POST" and path in ORDER_PATHS and self.victim is not None
                and self.signalled_at is None):
            self.signalled_at = time.time()
            os.kill(self.victim, signal.SIGTERM)
        return super().handle(method, raw_path, headers, body)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.process
def test_sigterm_with_a_slow_venue_sends_nothing_after_the_order_in_flight(
        tmp_path: Path) -> None:
    with SignallingEmulator(KEY, SECRET) as emu:
        for path in ORDER_PATHS:
            emu.inject_latency(3.0, path=path, method="POST")
        proc = launch(emu, tmp_path, tmp_path / "state.sqlite3")
        emu.victim = proc.pid
        out, err = proc.communicate(timeout=120)
        exited = time.time()
    assert emu.signalled_at is not None, "the daemon sent no order"
    assert proc.returncode == 0, err
    evs = events(out)
    assert evs[-1]["event"] == "daemon.stopped", "daemon.stopped must be the last line"
    assert evs[-1]["clean"] is True
    # Within shutdown_timeout_seconds (8) plus one request timeout (10).
    assert exited - emu.signalled_at < 18

    stopped_at = _epoch(evs[-1]["timestamp"])
    late = [(r.method, r.path) for r in emu.requests if r.at > stopped_at]
    assert late == [], f"requests after daemon.stopped: {late}"
    orders = [r for r in emu.requests if r.method == "POST" and r.path in ORDER_PATHS]
    (in_flight,) = [r for r in orders if r.at <= emu.signalled_at + 0.5]
    after = [r for r in orders if r.at > emu.signalled_at + 0.5]
    # Only the stop of a perp leg that filled in flight may follow it (a leveraged position
    # is never left without one); the first order of a demo cycle is a spot buy.
    assert in_flight.path == "/api/v3/order"
    assert after == [], [(r.path, r.params.get("symbol")) for r in after]
    skipped = [e for e in named(evs, "order.skipped") if "shutting down" in e["reason"]]
    assert skipped, "the plan's remaining legs were not held back"
    store = StateStore(tmp_path / "state.sqlite3", read_only=True)
    try:
        cid = in_flight.params["newClientOrderId"]
        (row,) = [o for o in store.orders() if o.client_id == cid]
        assert row.status == "filled" and row.filled > 0  # finished and journalled
    finally:
        store.close()
