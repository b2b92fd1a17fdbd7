"""Demo mode as a process: ``sectorbot run --once`` on Binance demo, served by the emulator.

The daemon runs unmodified in a subprocess (``tests/demo_launcher.py`` only reroutes ccxt's
transport to the emulator, keeping the real host names), so this is the path an operator
takes: config file, keys from the environment, markets, signals from the venue's klines and
funding, a decision, signed orders, state written. The unit tests at the end pin the
signal source's time convention without a process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.service.venue import WallClock
from bot.sources.market import candle_series
from tests.daemon_proc import REPO, env_for, events, named
from tests.demo_launcher import EMULATOR_ENV
from tests.exchange_emulator import BinanceEmulator

KEY, SECRET = "demo-key-7f3a9c21", "demo-secret-b84e6d0f59a2"
EMULATOR_TOKENS = {"BTC", "ETH", "SOL", "LINK", "AAVE", "UNI", "ARB"}


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


def run_demo(emu: BinanceEmulator, tmp_path: Path, *args: str,
             **extra: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "demo.toml"
    cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
    keys = {"SECTORBOT__EXCHANGE__API_KEY": KEY, "SECTORBOT__EXCHANGE__API_SECRET": SECRET,
            EMULATOR_ENV: emu.base_url}
    env = env_for(tmp_path / "state.sqlite3", **{**keys, **extra})
    return subprocess.run([sys.executable, "-m", "tests.demo_launcher", "run", *args,
                           "--config", str(cfg)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)


def assert_no_secret(proc: subprocess.CompletedProcess[str], state: Path) -> None:
    for secret in (KEY, SECRET):
        assert secret not in proc.stdout and secret not in proc.stderr
        for path in state.parent.glob(state.name + "*"):
            assert secret.encode() not in path.read_bytes()


@pytest.mark.process
def test_demo_once_completes_a_cycle_against_the_emulator(emu: BinanceEmulator,
                                                          tmp_path: Path) -> None:
    proc = run_demo(emu, tmp_path, "--once")
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    started = named(evs, "daemon.started")[0]
    assert (started["mode"], started["exchange"], started["tokens"]) == ("demo", "binance", 7)
    dropped = {t for e in named(evs, "universe.dropped") for t in e["tokens"]}
    assert dropped and not dropped & EMULATOR_TOKENS

    [refreshed] = named(evs, "signals.refreshed")
    assert (refreshed["tokens"], refreshed["funding"], refreshed["stale"]) == (7, 7, 0)
    assert refreshed["metrics"] == []  # DefiLlama is off in tests unless served on loopback
    [decision] = named(evs, "decision.made")
    assert decision["action"] == "rebalance"
    assert decision["regime"] == "bull"  # 400 daily closes: the 200-day filter has data
    [completed] = named(evs, "cycle.completed")
    assert completed["decision_id"] == decision["decision_id"]
    assert completed["orders_sent"] >= 1 and completed["orders_filled"] >= 1
    # Spot buys are sized on the spot wallet, not on spot + futures USDT (Binance keeps two).
    assert completed["orders_rejected"] == 0, completed
    assert named(evs, "daemon.stopped")[0]["clean"] is True

    # Only the demo hosts were addressed, and the venue saw what a cycle needs.
    assert {r.host for r in emu.requests} == {"demo-api.binance.com", "demo-fapi.binance.com"}
    for path in ("/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo", "/api/v3/account",
                 "/fapi/v3/account", "/fapi/v1/premiumIndex"):
        assert emu.count("GET", path), f"no GET {path}"
    klines = emu.requests_for("GET", "/api/v3/klines")
    assert {r.params["symbol"] for r in klines} == {f"{t}USDT" for t in EMULATOR_TOKENS}
    assert all(r.params["interval"] == "1d" and int(r.params["limit"]) >= 200 for r in klines)
    orders = emu.requests_for("POST", "/api/v3/order") + emu.requests_for("POST",
                                                                         "/fapi/v1/order")
    assert len(orders) == completed["orders_sent"]
    assert all(r.params["newClientOrderId"].startswith("sb-") for r in orders)
    assert all(r.api_key == KEY for r in emu.requests if r.path.endswith("/account"))
    assert emu.book.spot.get("BTC", 0) > 0
    assert_no_secret(proc, tmp_path / "state.sqlite3")

    status = subprocess.run([sys.executable, "-m", "bot", "status", "--config",
                             str(tmp_path / "demo.toml")], cwd=tmp_path,
                            env=env_for(tmp_path / "state.sqlite3",
                                        SECTORBOT__EXCHANGE__API_KEY=KEY,
                                        SECTORBOT__EXCHANGE__API_SECRET=SECRET),
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "equity:" in status.stdout


@pytest.mark.process
def test_klines_5xx_marks_prices_stale_and_the_engine_holds(emu: BinanceEmulator,
                                                            tmp_path: Path) -> None:
    emu.inject_status(503, times=None, path="/api/v3/klines")
    proc = run_demo(emu, tmp_path, "--once", SECTORBOT__EXCHANGE__READ_ATTEMPTS="2")
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    stale = {e["signal"] for e in named(evs, "signal.stale")}
    assert "prices" in stale
    assert {f"prices:{t}" for t in EMULATOR_TOKENS} <= stale
    assert "funding" not in stale  # premiumIndex answered: only the failed signal is stale
    [decision] = named(evs, "decision.made")
    assert decision["action"] == "hold"
    assert any("prices stale" in r for r in decision["reasons"])
    [completed] = named(evs, "cycle.completed")
    assert (completed["action"], completed["orders_sent"]) == ("hold", 0)
    assert emu.count("POST") == 0
    assert emu.count("GET", "/api/v3/klines") == 2 * len(EMULATOR_TOKENS)  # retried, then stale
    assert_no_secret(proc, tmp_path / "state.sqlite3")


@pytest.mark.process
def test_refused_keys_exit_2_naming_no_secret_and_writing_nothing(emu: BinanceEmulator,
                                                                   tmp_path: Path) -> None:
    proc = run_demo(emu, tmp_path, "--once", SECTORBOT__EXCHANGE__API_SECRET="wrong-" + SECRET)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("config error: exchange.api_key:")
    assert "Signature" in proc.stderr  # Binance's -1022, mapped by ccxt as in production
    assert SECRET not in proc.stdout + proc.stderr and KEY not in proc.stdout + proc.stderr
    assert not (tmp_path / "state.sqlite3").exists()
    assert emu.count("POST") == 0


@pytest.mark.process
def test_a_venue_listing_no_core_token_refuses_the_start(emu: BinanceEmulator,
                                                         tmp_path: Path) -> None:
    (tmp_path / "u.toml").write_text('[core]\ntokens = ["DOGE"]\n')
    proc = run_demo(emu, tmp_path, "--once", SECTORBOT__UNIVERSE_FILE=str(tmp_path / "u.toml"))
    assert proc.returncode == 2
    assert "no core token is listed on binance" in proc.stderr
    assert not (tmp_path / "state.sqlite3").exists()


def test_launcher_refuses_to_run_without_the_emulator(tmp_path: Path) -> None:
    env: dict[str, Any] = env_for(tmp_path / "s.sqlite3")
    env.pop(EMULATOR_ENV, None)
    proc = subprocess.run([sys.executable, "-m", "tests.demo_launcher", "run", "--once"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and EMULATOR_ENV in proc.stderr


# -- the signal source's time convention ---------------------------------------------------

def _row(day: datetime, close: float, volume: float = 10.0) -> list[Any]:
    ms = int(day.timestamp() * 1000)
    return [ms, close, close, close, close, volume]


def test_candle_of_day_d_is_stamped_at_its_close_and_the_open_candle_is_dropped() -> None:
    d1 = datetime(2025, 3, 1, tzinfo=UTC)
    rows = [_row(d1, 10.0), _row(d1 + timedelta(days=1), 11.0, 2.0),
            _row(d1 + timedelta(days=2), 12.0)]  # the last one is still open at as_of
    as_of = d1 + timedelta(days=2, hours=15)
    closes, volumes, _, _ = candle_series(rows, as_of)
    assert closes.points == ((d1 + timedelta(days=1), 10.0), (d1 + timedelta(days=2), 11.0))
    assert volumes.points == ((d1 + timedelta(days=1), 100.0), (d1 + timedelta(days=2), 22.0))
    # A malformed or non-positive row is missing data, not an error.
    closes, *_ = candle_series([_row(d1, 0.0), ["x"], _row(d1 + timedelta(days=1), 5.0)],
                               d1 + timedelta(days=3))
    assert closes.points == ((d1 + timedelta(days=2), 5.0),)


def test_candle_extremes_are_kept_for_atr_and_inconsistent_ones_dropped() -> None:
    d1 = datetime(2025, 3, 1, tzinfo=UTC)
    ms = int(d1.timestamp() * 1000)
    rows = [[ms, 10.0, 12.0, 9.0, 11.0, 1.0],
            [ms + 86_400_000, 11.0, 10.0, 12.0, 11.5, 1.0],  # high below low: a bad row
            [ms + 2 * 86_400_000, 11.5, None, 11.0, 11.2, 1.0]]
    daily = candle_series(rows, d1 + timedelta(days=4))
    assert len(daily.closes) == 3  # every close survives
    assert daily.highs.points == ((d1 + timedelta(days=1), 12.0),)
    assert daily.lows.points == ((d1 + timedelta(days=1), 9.0),)


def test_wall_clock_decides_as_of_the_utc_hour_and_salts_by_the_minute() -> None:
    now = datetime(2025, 3, 1, 14, 37, 12, 5, tzinfo=UTC)
    clock = WallClock(lambda: now)
    assert clock.advance() == datetime(2025, 3, 1, 14, tzinfo=UTC) == clock.cursor
    assert clock.salt_time() == datetime(2025, 3, 1, 14, 37, tzinfo=UTC)


UNIVERSE_WITH_TVL = """
[core]
tokens = ["BTC", "ETH"]

[sectors.L1]
cycle_stage = 1
tokens = ["SOL"]
[sectors.L1.defillama]
chains = ["Solana", "Avalanche"]
[sectors.L1.github]
repos = ["solana-labs/solana", "ava-labs/avalanchego"]
[sectors.L1.coingecko]
categories = ["smart-contract-platform", "layer-1"]

[sectors.ORACLES]
cycle_stage = 1
tokens = ["LINK"]

[sectors.L2]
cycle_stage = 2
tokens = ["ARB"]
[sectors.L2.defillama]
chains = ["Arbitrum", "Optimism"]
[sectors.L2.coingecko]
categories = ["layer-2"]

[sectors.DEX]
cycle_stage = 3
tokens = ["UNI"]
[sectors.DEX.defillama]
categories = ["Dexs"]
[sectors.DEX.github]
repos = ["Uniswap/v4-core"]
[sectors.DEX.coingecko]
categories = ["decentralized-exchange"]

[sectors.LENDING]
cycle_stage = 3
tokens = ["AAVE"]
[sectors.LENDING.defillama]
categories = ["Lending", "CDP"]
[sectors.LENDING.coingecko]
categories = ["lending-borrowing"]
"""


def keep_attention_history(state: Path, last: date) -> None:
    """40 days of category volume per mapped sector, as an earlier run of the daemon would
    have kept them (``sector_metric_points``): CoinGecko gives today's figure only, so
    attention (7 days against the 28 before) needs what was kept. Each sector's volume
    grows at its own pace, so the cross-sectional z-scores are not all zero."""
    from bot.domain.models import Series
    from bot.store.repo import StateStore

    store = StateStore(state)
    try:
        days = [last - timedelta(days=n) for n in range(39, -1, -1)]
        pace = {"L1": 0.002, "L2": 0.01, "DEX": -0.004, "LENDING": 0.006}
        def grown(start: float, rate: float) -> Series:
            return Series(tuple(
                (datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
                 start * (1 + rate) ** i) for i, d in enumerate(days)))

        store.record_sector_metrics({sector: {"category_volume_usd": grown(1e9, rate),
                                              "category_mcap_usd": grown(2e10, rate / 2)}
                                     for sector, rate in pace.items()},
                                    datetime.now(UTC) - timedelta(days=1))
    finally:
        store.close()


@pytest.mark.process
def test_demo_decisions_see_sector_tvl_volume_and_dev_activity(emu: BinanceEmulator,
                                                      tmp_path: Path) -> None:
    """In demo mode the engine scores sectors on TVL, DEX volume, fees, developer activity
    and category attention too, not on prices and funding alone: DefiLlama, GitHub and
    CoinGecko (served on loopback) feed those columns of explain; a sector with no source
    shows them missing, not zero. Attention needs five weeks of daily figures: the store
    holds 40 days kept by an earlier run (keep_attention_history), which the restarted
    daemon's CoinGecko provider reads back."""
    from tests.coingecko_server import CoinGeckoFake
    from tests.defillama_server import DefiLlamaFake, serve
    from tests.github_server import GitHubFake

    universe = tmp_path / "sectors.toml"
    universe.write_text(UNIVERSE_WITH_TVL)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    # DefiLlama's series end today (the day so far, never read as a close): the recorded
    # Compound fees end three days before the others, and would be too old otherwise.
    fake = DefiLlamaFake(last_day=today)
    github = GitHubFake(datetime.now(UTC).date(),
                        {"solana-labs/solana", "ava-labs/avalanchego", "Uniswap/v4-core"})
    gecko = CoinGeckoFake()
    keep_attention_history(tmp_path / "state.sqlite3", yesterday)
    with serve(fake) as url, serve(github) as github_url, serve(gecko) as gecko_url:
        proc = run_demo(emu, tmp_path, "--once", SECTORBOT__UNIVERSE_FILE=str(universe),
                        SECTORBOT__SIGNALS__DEFILLAMA="true",
                        SECTORBOT__SIGNALS__DEFILLAMA_URL=url,
                        SECTORBOT__SIGNALS__GITHUB="true",
                        SECTORBOT__SIGNALS__GITHUB_URL=github_url,
                        SECTORBOT__SIGNALS__COINGECKO="true",
                        SECTORBOT__SIGNALS__COINGECKO_URL=gecko_url,
                        SECTORBOT__SIGNALS__MIN_INTERVAL_SECONDS="0")
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    [refreshed] = named(evs, "signals.refreshed")
    assert refreshed["metrics"] == ["category_mcap_usd", "category_volume_usd", "dev_commits",
                                    "fees_usd", "tvl_usd", "volume_usd"]
    assert refreshed["stale"] == 0
    assert fake.count("/v2/historicalChainTvl/") == 4 and fake.count("/protocols") == 1
    assert fake.count("/overview/dexs") == 5  # 4 chains of L1 and L2, and every DEX
    assert fake.count("/overview/fees") == 5  # 4 chains, and the breakdown once
    assert gecko.count("/coins/categories") == 1  # once for every sector and metric
    explain = subprocess.run(
        [sys.executable, "-m", "bot", "explain", "--config", str(tmp_path / "demo.toml")],
        cwd=tmp_path, env=env_for(tmp_path / "state.sqlite3",
                                  SECTORBOT__UNIVERSE_FILE=str(universe),
                                  SECTORBOT__EXCHANGE__API_KEY=KEY,
                                  SECTORBOT__EXCHANGE__API_SECRET=SECRET),
        capture_output=True, text=True, timeout=60)
    assert explain.returncode == 0, explain.stderr
    lines = explain.stdout.splitlines()
    header = next(ln.split() for ln in lines if ln.split()[:2] == ["rank", "sector"])
    tvl_columns = [i for i, name in enumerate(header) if name.startswith("tvl_")]
    assert tvl_columns, header
    rows = {ln.split()[1]: ln.split() for ln in lines
            if len(ln.split()) == len(header) and ln.split()[1] in
            {"L1", "L2", "DEX", "LENDING", "ORACLES"}}
    for sector in ("L1", "L2", "DEX", "LENDING"):
        assert all(rows[sector][i] != "-" for i in tvl_columns), (sector, rows[sector])
    assert all(rows["ORACLES"][i] == "-" for i in tvl_columns), "no source: missing, not zero"
    volume = header.index("volume")
    assert [rows[s][volume] != "-" for s in ("L1", "L2", "DEX", "LENDING", "ORACLES")] == \
        [True, True, True, False, False]
    dev = header.index("dev")
    assert [rows[s][dev] != "-" for s in ("L1", "L2", "DEX", "LENDING", "ORACLES")] == \
        [True, False, True, False, False]
    assert github.count("/repos/") == 3
    for column in ("fees", "attention"):  # every sector with a source, none without
        at = header.index(column)
        assert [rows[s][at] != "-" for s in ("L1", "L2", "DEX", "LENDING", "ORACLES")] == \
            [True, True, True, True, False], (column, rows)

    # What the decision read was kept as first seen: exported in the replay format, it
    # reads back as the same figures.
    out = tmp_path / "kept" / "sector_metrics.csv"
    export = subprocess.run(
        [sys.executable, "-m", "bot", "export-signals", "--out", str(out),
         "--config", str(tmp_path / "demo.toml")],
        cwd=tmp_path, env=env_for(tmp_path / "state.sqlite3",
                                  SECTORBOT__EXCHANGE__API_KEY=KEY,
                                  SECTORBOT__EXCHANGE__API_SECRET=SECRET),
        capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    from bot.sources.replay_csv import read_metrics

    kept = read_metrics(out)
    assert set(kept) == {"L1", "L2", "DEX", "LENDING"}
    assert set(kept["L1"]) == {"tvl_usd", "volume_usd", "dev_commits", "fees_usd",
                               "category_volume_usd", "category_mcap_usd"}
    solana, avalanche = (fake.answer(f"/v2/historicalChainTvl/{c}")[2] for c in
                         ("Solana", "Avalanche"))
    expected = {}
    for a, b in zip(json.loads(solana), json.loads(avalanche), strict=True):
        when = datetime.fromtimestamp(a["date"], UTC) + timedelta(days=1)
        expected[when] = a["tvl"] + b["tvl"]
    tvl = dict(kept["L1"]["tvl_usd"])
    assert len(tvl) >= 90
    assert all(value == pytest.approx(expected[when]) for when, value in tvl.items())


@pytest.mark.process
def test_demo_keeps_what_its_decisions_read_and_exports_a_replay_dir_that_reads_the_same(
        tmp_path: Path) -> None:
    """Issue #13 replay: a demo daemon keeps the venue's closed daily candles and funding
    each decision read, as first seen; ``export-signals --replay-dir`` writes them in the
    data format, and a replay of that directory at the decision's time reads exactly the
    closes, extremes, quote volumes and per-hour funding the decision read (awkward rates on
    1 h, 4 h and 8 h intervals, so the exact decimal text matters)."""
    from dataclasses import replace

    from bot.service.cycle import snapshot_summary
    from bot.service.daemon import LOOKBACK_DAYS
    from bot.sources.replay import ReplayData
    from bot.store.repo import StateStore
    from tests.exchange_emulator import dialect
    from tests.exchange_emulator.server import default_instruments

    rates = {"BTC": "0.00012345", "SOL": "-0.00007777", "ARB": "0.00003333"}
    instruments = [replace(i, funding_rate=Decimal(rates.get(i.base, "0.0001")),
                           price=i.price + Decimal("0.07") if i.base == "ETH" else i.price)
                   for i in default_instruments()]
    with BinanceEmulator(KEY, SECRET, instruments=instruments) as emu:
        proc = run_demo(emu, tmp_path, "--cycles", "2", SECTORBOT_TEST_NO_THROTTLE="1")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "replay"
    export = subprocess.run(
        [sys.executable, "-m", "bot", "export-signals", "--replay-dir", str(out),
         "--config", str(tmp_path / "demo.toml")],
        cwd=tmp_path, env=env_for(tmp_path / "state.sqlite3",
                                  SECTORBOT__EXCHANGE__API_KEY=KEY,
                                  SECTORBOT__EXCHANGE__API_SECRET=SECRET),
        capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    assert "2800 candles of 7 tokens, 7 funding readings" in export.stderr
    provenance = (out / "PROVENANCE.md").read_text()
    assert "binance spot daily candles" in provenance and "as first seen" in provenance
    assert (out / "funding" / "SOL.csv").read_text().splitlines()[1].endswith(",4.0")

    data = ReplayData.load(out)
    store = StateStore(tmp_path / "state.sqlite3", read_only=True)
    try:
        decided = {d.as_of for d in store.decisions()}
        assert decided
        for as_of in decided:
            seen = store.signal_snapshot(as_of)
            assert seen is not None and not seen.stale
            replayed = data.snapshot(as_of, lookback_days=LOOKBACK_DAYS)
            assert not replayed.stale
            summary = json.loads(json.dumps(snapshot_summary(replayed)))
            assert summary["closes"] == seen.payload["closes"]
            assert summary["funding"] == seen.payload["funding"]  # exact per-hour floats
            # The whole window the engine read, as VenueSignals builds it from the klines.
            now_ms = int(as_of.timestamp() * 1000)
            for inst in instruments:
                rows = dialect.klines(inst, 86_400_000, LOOKBACK_DAYS + 2, now_ms)
                live = candle_series(rows, as_of).after(as_of - timedelta(days=LOOKBACK_DAYS))
                token = inst.base
                assert replayed.closes[token].points == live.closes.points, token
                assert replayed.quote_volumes[token].points == live.volumes.points, token
                assert replayed.highs[token].points == live.highs.points, token
                assert replayed.lows[token].points == live.lows.points, token
                hourly = float(Decimal(rates.get(token, "0.0001"))) / inst.funding_interval_hours
                assert replayed.funding[token].points == ((as_of, hourly),), token
    finally:
        store.close()


def test_kept_candles_follow_the_snapshot_and_an_incomplete_day_still_exports_loadable(
        tmp_path: Path) -> None:
    """The kept candle is what the engine read (close, quote volume, extremes from the
    snapshot; only days newer than the newest kept); a day whose extremes the engine
    dropped (a venue row with high below low) or whose open lies outside its range is
    completed so the exported file still loads, and its close reads back the same."""
    from bot.domain.models import MarketKind, MarketSnapshot
    from bot.service.market_keep import kept_candles
    from bot.service.replay_export import candle_line
    from bot.sources.replay_csv import read_ohlcv
    from bot.sources.venue_read import VenueRead
    from bot.store.schema import VenueCandleRow

    d1 = datetime(2025, 3, 1, tzinfo=UTC)
    ms = int(d1.timestamp() * 1000)
    rows = [[ms, 10.1, 12.0, 9.0, 11.3, 1.5],
            [ms + 86_400_000, 11.0, 10.0, 12.0, 0.1 + 0.2, 2.0],  # high below low
            [ms + 2 * 86_400_000, 99.0, 11.5, 11.0, 11.2, 1.0],  # open above the high
            [ms + 3 * 86_400_000, 11.2, 11.2, 11.2, 11.2, 1.0]]  # still open at as_of
    as_of = d1 + timedelta(days=3, hours=5)
    daily = candle_series(rows, as_of)
    snapshot = MarketSnapshot(as_of=as_of, closes={"SOL": daily.closes},
                              quote_volumes={"SOL": daily.volumes}, sector_metrics={},
                              highs={"SOL": daily.highs}, lows={"SOL": daily.lows})
    read = VenueRead(as_of, {"SOL": rows}, {})
    kept = kept_candles(snapshot, read, {"SOL": MarketKind.SPOT}, {})
    assert [c.day.day for c in kept] == [1, 2, 3]
    assert kept[1].close == Decimal("0.30000000000000004") and kept[1].high is None
    assert kept[0].quote_volume == Decimal(repr(1.5 * 11.3))
    assert kept_candles(snapshot, read, {"SOL": MarketKind.SPOT},
                        {"SOL": kept[1].day}) == [kept[2]]
    lines = [candle_line(VenueCandleRow(token=c.token, day=c.day, venue="binance",
                                        market=c.market, open=c.open, high=c.high, low=c.low,
                                        close=c.close, volume=c.volume,
                                        quote_volume=c.quote_volume, fetched_at=as_of))
             for c in kept]
    assert [fitted for _, fitted in lines] == [False, True, True]
    path = tmp_path / "SOL.csv"
    path.write_text("date,open,high,low,close,volume,quote_volume\n"
                    + "\n".join(line for line, _ in lines) + "\n")
    candles = read_ohlcv(path)
    assert [float(c.close) for c in candles] == [v for _, v in daily.closes.points]
    assert candles[2].open == Decimal("11.5")  # moved to the day's high
