"""A demo daemon against the Binance emulator and loopback providers, DefiLlama's host
stalled: the providers' first rounds run at start-up, all at once, before the first cycle;
the cycle starts within the round budget with DefiLlama stale ("first round not finished"),
GitHub's figures in. SOL's perp pays rich funding while its open interest (the emulator's
``/futures/data/openInterestHist``, Binance's dialect) rose 50 % in a week: explain shows
the leverage-crowding reading."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.coingecko_server import CoinGeckoFake
from tests.daemon_proc import env_for, events, named
from tests.defillama_server import DefiLlamaFake
from tests.exchange_emulator import BinanceEmulator
from tests.github_server import GitHubFake
from tests.provider_server import serve
from tests.test_demo_mode_process import KEY, SECRET, UNIVERSE_WITH_TVL, run_demo
from tests.test_provider_concurrency import Stalled

BUDGET = 1.5


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


@pytest.mark.process
def test_prefill_then_a_cycle_that_reads_open_interest(emu: BinanceEmulator,
                                                      tmp_path: Path) -> None:
    universe = tmp_path / "sectors.toml"
    universe.write_text(UNIVERSE_WITH_TVL)
    emu.book.instrument("SOLUSDT", "perp").funding_rate = Decimal("0.0004")  # ~44 % APR
    emu.book.open_interest = {  # type: ignore[attr-defined]
        "SOLUSDT": [Decimal(1000)] * 23 + [Decimal(1000 * 1.5 ** (i / 7)) for i in range(1, 8)]}
    today = datetime.now(UTC).date()
    llama = Stalled(DefiLlamaFake(last_day=today), 5.0)
    github = GitHubFake(today, {"solana-labs/solana", "ava-labs/avalanchego",
                                "Uniswap/v4-core"})
    with serve(llama) as llama_url, serve(github) as github_url, \
            serve(CoinGeckoFake()) as gecko_url:
        proc = run_demo(emu, tmp_path, "--once", SECTORBOT__UNIVERSE_FILE=str(universe),
                        SECTORBOT__SIGNALS__DEFILLAMA="true",
                        SECTORBOT__SIGNALS__DEFILLAMA_URL=llama_url,
                        SECTORBOT__SIGNALS__GITHUB="true",
                        SECTORBOT__SIGNALS__GITHUB_URL=github_url,
                        SECTORBOT__SIGNALS__COINGECKO="true",
                        SECTORBOT__SIGNALS__COINGECKO_URL=gecko_url,
                        SECTORBOT__SIGNALS__MIN_INTERVAL_SECONDS="0",
                        SECTORBOT__SIGNALS__TIMEOUT_SECONDS="3",
                        SECTORBOT__SIGNALS__ATTEMPTS="1",
                        SECTORBOT__SIGNALS__ROUND_BUDGET_SECONDS=str(BUDGET))
    assert proc.returncode == 0, proc.stderr[-3000:]
    evs = events(proc.stdout)
    [prefilled] = named(evs, "signals.prefilled")
    assert prefilled["pending"] == ["defillama"]
    assert prefilled["seconds"] < BUDGET + 0.5
    [refreshed] = named(evs, "signals.refreshed")
    assert "dev_commits" in refreshed["metrics"]
    gaps = {e["signal"] for e in evs if e["event"] == "signal.fetch_failed"}
    tvl = sorted(g for g in gaps if g.startswith("metric:tvl_usd:"))
    assert tvl, gaps
    reasons = [e["error"] for e in evs if e["event"] == "signal.fetch_failed"
               and e["signal"] in tvl]
    # Still running when the cycle read it, or timed out by then: stale either way.
    assert any("first round not finished" in r or "no answer within 3s" in r
               for r in reasons), reasons
    explain = subprocess.run(
        [sys.executable, "-m", "bot", "explain", "--config", str(tmp_path / "demo.toml")],
        cwd=tmp_path, env=env_for(tmp_path / "state.sqlite3",
                                  SECTORBOT__UNIVERSE_FILE=str(universe),
                                  SECTORBOT__EXCHANGE__API_KEY=KEY,
                                  SECTORBOT__EXCHANGE__API_SECRET=SECRET),
        capture_output=True, text=True, timeout=60)
    assert explain.returncode == 0, explain.stderr
    assert "leverage crowding: SOL open interest +50% in 7d with funding" in explain.stdout, \
        explain.stdout
    oi_requests = [r for r in emu.requests if r.path == "/futures/data/openInterestHist"]
    assert oi_requests and all(r.api_key is None for r in oi_requests), "public, unsigned"
