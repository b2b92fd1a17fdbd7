"""``sectorbot signals``: the sector table without trading, from replay data in paper mode
and from the venue plus DefiLlama in demo mode; nothing written, nothing sent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon_proc import env_for, run_cli
from tests.defillama_server import DefiLlamaFake, serve
from tests.demo_launcher import EMULATOR_ENV
from tests.exchange_emulator import BinanceEmulator
from tests.test_demo_mode_process import KEY, SECRET, UNIVERSE_WITH_TVL

SECTORS = {"L1", "L2", "DEX", "LENDING", "ORACLES", "RWA", "PRIVACY"}


def test_paper_signals_read_the_replay_as_of_a_day_and_write_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    proc = run_cli(["signals", "--json", "--as-of", "2022-06-01"], state, tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    assert table["as_of"] == "2022-06-02T00:00:00+00:00"  # the close of 2022-06-01
    assert {s["sector"] for s in table["sectors"]} == SECTORS
    ranks = [s["rank"] for s in table["sectors"] if s["rank"] is not None]
    assert ranks == list(range(1, len(ranks) + 1)), "ranked first, unscored last"
    dex = next(s for s in table["sectors"] if s["sector"] == "DEX")
    assert dex["components"]["tvl_7d"] is not None
    assert dex["metric_age_days"]["tvl_usd"] == pytest.approx(0.0)
    assert not state.exists() and list(tmp_path.iterdir()) == [], "nothing written"

    text = run_cli(["signals", "--as-of", "2022-06-01"], state, tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Sector signals as of 2022-06-02")
    assert {line.split()[1] for line in text.stdout.splitlines()[2:9]} == SECTORS


def test_as_of_is_refused_outside_paper_mode(tmp_path: Path) -> None:
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n[exchange]\nname = "binance"\n')
    proc = run_cli(["signals", "--config", str(cfg), "--as-of", "2024-01-01"],
                   tmp_path / "s.sqlite3", tmp_path, SECTORBOT__EXCHANGE__API_KEY=KEY,
                   SECTORBOT__EXCHANGE__API_SECRET=SECRET)
    assert proc.returncode == 2
    assert proc.stderr.startswith("config error: --as-of: only in paper mode")


def demo_files(tmp_path: Path) -> Path:
    """A demo config and a universe with DefiLlama sources; returns the config."""
    (tmp_path / "sectors.toml").write_text(UNIVERSE_WITH_TVL)
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n[exchange]\nname = "binance"\n')
    return cfg


def demo_env(tmp_path: Path, emu: BinanceEmulator, llama_url: str,
             **extra: str) -> dict[str, str]:
    return env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                   SECTORBOT__EXCHANGE__API_SECRET=SECRET, **{EMULATOR_ENV: emu.base_url},
                   SECTORBOT__UNIVERSE_FILE=str(tmp_path / "sectors.toml"),
                   SECTORBOT__SIGNALS__DEFILLAMA="true",
                   SECTORBOT__SIGNALS__DEFILLAMA_URL=llama_url,
                   SECTORBOT__SIGNALS__MIN_INTERVAL_SECONDS="0", **extra)


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


@pytest.mark.process
def test_demo_signals_read_the_venue_and_defillama_and_send_nothing(
        emu: BinanceEmulator, tmp_path: Path) -> None:
    cfg = demo_files(tmp_path)
    fake = DefiLlamaFake(last_day=(datetime.now(UTC) - timedelta(days=1)).date())
    with serve(fake) as url:
        env = demo_env(tmp_path, emu, url)
        proc = subprocess.run([sys.executable, "-m", "tests.demo_launcher", "signals",
                               "--json", "--config", str(cfg)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    by_sector = {s["sector"]: s for s in table["sectors"]}
    assert set(by_sector) == {"L1", "L2", "DEX", "LENDING", "ORACLES"}
    for sector in ("L1", "L2", "DEX", "LENDING"):
        assert by_sector[sector]["components"]["tvl_7d"] is not None, sector
        assert by_sector[sector]["metric_age_days"]["tvl_usd"] <= 2
    assert by_sector["ORACLES"]["metric_age_days"]["tvl_usd"] is None
    assert emu.count("POST") == 0 and emu.count("DELETE") == 0, "no order, no cancel"
    assert not (tmp_path / "state.sqlite3").exists()


def test_a_bad_defillama_table_exits_2_naming_the_key_before_any_venue_request(
        tmp_path: Path) -> None:
    universe = tmp_path / "sectors.toml"
    universe.write_text('[core]\ntokens = ["BTC"]\n[sectors.L1]\ntokens = ["SOL"]\n'
                        '[sectors.L1.defillama]\nchain = ["Solana"]\n')
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n[exchange]\nname = "binance"\n')
    for command in (["signals"], ["run", "--once"]):
        proc = run_cli([*command, "--config", str(cfg)], tmp_path / "s.sqlite3", tmp_path,
                       SECTORBOT__UNIVERSE_FILE=str(universe),
                       SECTORBOT__SIGNALS__DEFILLAMA="true",
                       SECTORBOT__EXCHANGE__API_KEY=KEY,
                       SECTORBOT__EXCHANGE__API_SECRET=SECRET)
        assert proc.returncode == 2, (command, proc.stderr)
        assert "sectors.L1.defillama.chain: unknown key" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.process
def test_the_service_fetches_providers_in_a_job_of_its_own_and_stops_cleanly(
        emu: BinanceEmulator, tmp_path: Path) -> None:
    """As a service (demo), the providers' network round is its own scheduled job, on its
    own worker: the trading jobs never wait for it. SIGTERM still ends with a clean stop."""
    import signal
    import time

    cfg = demo_files(tmp_path)
    fake = DefiLlamaFake(last_day=(datetime.now(UTC) - timedelta(days=1)).date())
    with serve(fake) as url:
        env = demo_env(tmp_path, emu, url, SECTORBOT__SCHEDULER__SIGNAL_REFRESH_SECONDS="2")
        proc = subprocess.Popen([sys.executable, "-m", "tests.demo_launcher", "run",
                                 "--config", str(cfg)], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line))
            if any(e["event"] == "cycle.completed" for e in seen) and \
                    fake.count("/overview/dexs") >= 5:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    events = seen + [json.loads(line) for line in out.splitlines() if line.strip()]
    [started] = [e for e in events if e["event"] == "scheduler.started"]
    assert "providers" in started["jobs"]  # type: ignore[operator]
    assert any(e["event"] == "cycle.completed" for e in events)
    assert events[-1]["event"] == "daemon.stopped" and events[-1]["clean"] is True
    assert fake.count("/protocols") == 1, "one round fetched everything; reads send nothing"
