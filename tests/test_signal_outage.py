"""Signal sources down or returning garbage for hours: the engine holds, then recovers.

The demo daemon runs as a process against the Binance emulator on a clock sped up 7,200
times (``tests/fault_launcher.py``: each cycle of ``--cycles`` is a new decision hour, so
each one fetches its signals anew). The account holds a spot book the strategy would not
keep (mostly ARB and UNI). For the first hours the venue's daily candles, the price signal
every decision rests on, answer garbage or fail; then they come back.

What must hold: while the candles are bad, no spot order at all (a token without a fresh
close is frozen, neither bought nor sold: nothing is sold on stale data) and the staleness
is logged once, not every hour; once they are back, ``signal.recovered`` is logged and the
daemon rebalances. Unit-level coverage of the sector-metric providers (a DefiLlama answer
that fails validation marks the sector stale and keeps its last good series) is in
``tests/test_defillama.py``; the engine's own rule in ``tests/test_engine_scenario.py``.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.daemon_proc import env_for, events, named
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator

KEY, SECRET = "signal-key-93a1f0", "signal-secret-5e28c7d4b1"
TOKENS = 7
BAD_HOURS = 4


@pytest.mark.process
def test_hours_of_bad_candles_sell_nothing_and_trading_resumes_when_they_return(
        tmp_path: Path) -> None:
    book = {"USDT": Decimal(1000), "ARB": Decimal(10000), "UNI": Decimal(500)}
    with BinanceEmulator(KEY, SECRET, spot_balances=book) as emu:
        # One klines read per token per decision hour (two attempts when it fails): two
        # hours of a body that is not JSON, one of JSON of the wrong shape, one of 503s.
        path = "/api/v3/klines"
        emu.inject_status(200, times=2 * TOKENS, path=path, body="not json at all")
        emu.inject_status(200, times=TOKENS, path=path, body='{"code": 0}')
        emu.inject_status(503, times=2 * TOKENS, path=path)
        cfg = tmp_path / "demo.toml"
        cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\nread_attempts = 2\n')
        env = env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                      SECTORBOT__EXCHANGE__API_SECRET=SECRET, SECTORBOT_TEST_TIME_SCALE="7200",
                      **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"})
        proc = subprocess.run([sys.executable, "-m", "tests.fault_launcher", "run",
                               "--cycles", str(BAD_HOURS + 2), "--config", str(cfg)],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=240)
        assert proc.returncode == 0, proc.stderr[-2000:]
        evs = events(proc.stdout)
        refreshed = named(evs, "signals.refreshed")
        assert len(refreshed) == BAD_HOURS + 2, "each cycle must be a new decision hour"
        completed = named(evs, "cycle.completed")
        assert [c["orders_sent"] for c in completed[:BAD_HOURS]] == [0] * BAD_HOURS
        assert all(r["stale"] > 0 for r in refreshed[:BAD_HOURS])
        # logged when it went stale, not once per hour
        assert [e["signal"] for e in named(evs, "signal.stale")].count("prices") == 1
        assert all(d["action"] == "hold" for d in named(evs, "decision.made")[:BAD_HOURS])
        assert [e["signal"] for e in named(evs, "signal.recovered")].count("prices") == 1
        assert refreshed[BAD_HOURS]["stale"] == 0
        assert sum(c["orders_sent"] for c in completed[BAD_HOURS:]) > 0
        # while bad: not one spot order reached the venue
        failing = 5 * TOKENS
        klines = [i for i, r in enumerate(emu.requests) if r.path == "/api/v3/klines"]
        first_good = klines[failing]
        spot = [(i, r) for i, r in enumerate(emu.requests)
                if r.method == "POST" and r.path == "/api/v3/order"]
        assert spot and all(i > first_good for i, _ in spot)
        assert any(r.params["side"] == "SELL" and r.params["symbol"] == "ARBUSDT"
                   for _, r in spot), "the book never rebalanced after the recovery"
