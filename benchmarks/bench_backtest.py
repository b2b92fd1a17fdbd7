"""How fast the backtest is, against the floor of the same arithmetic done vectorised.

Measures, in one run so the ratios are comparable (medians of ``--runs``):

- the bundled backtest as a user runs it (``sectorbot backtest``, whole process: start, 1,617
  daily steps, benchmarks, report) and its peak RSS;
- the stepping alone, in process, with the cost of the first and the last 100 steps (flat
  means the step does not grow with history or with the order journal);
- start to first cycle of ``sectorbot run`` in paper mode;
- a synthetic universe of ``--tokens`` tokens over ``--years`` years (random walks, same
  format as the bundled data): whole-process time and peak RSS;
- the vectorised floor: NumPy computing, for every day at once, the per-day signal arithmetic
  the engine does (momentum over its lookbacks, RSI, volatility, ATR, volume trend, sector
  averages and ranks). The engine does more than this (risk, planning, orders, journal), so
  the ratio overstates how far the backtest is from its floor; it is the issue's yardstick.

    pip install -e '.[bench]'
    python benchmarks/bench_backtest.py [--runs 3] [--tokens 100] [--years 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bot.backtest.runner import run_backtest
from bot.config import load_settings
from bot.logs import configure_logging, get_logger
from bot.sources.replay import bundled_sample_dir

SECTORS = ("L1", "ORACLES", "L2", "DEX", "LENDING", "RWA", "PRIVACY")
STAGES = {"L1": 1, "ORACLES": 1, "L2": 2, "DEX": 3, "LENDING": 3, "RWA": 4, "PRIVACY": 4}


def timed_process(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} exited {proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def start_to_first_cycle(cwd: Path) -> float:
    """Seconds from launching ``sectorbot run`` (paper, fresh store) to its first cycle."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--cycles", "1"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = None
    for line in proc.stdout:
        if seen is None and '"cycle.started"' in line:
            seen = time.perf_counter() - t0
    proc.wait()
    if seen is None:
        raise SystemExit("no cycle.started line")
    return seen


def stepping(settings_dir: Path) -> dict[str, float]:
    """The bundled backtest in process: stepping time and first/last 100 step medians."""
    configure_logging("error", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    marks: list[float] = []
    t0 = time.perf_counter()
    run = run_backtest(load_settings(None), get_logger(), workdir=settings_dir,
                       progress=lambda done, total, when: marks.append(time.perf_counter()))
    total = time.perf_counter() - t0
    assert run.daemon is not None
    run.daemon.store.close()
    steps = [b - a for a, b in zip([t0, *marks], marks, strict=False)]
    return {"steps": len(steps), "seconds": total,
            "first_100_ms": statistics.median(steps[:100]) * 1000,
            "last_100_ms": statistics.median(steps[-100:]) * 1000}


def synthetic_data(root: Path, tokens: int, years: int, seed: int = 7) -> Path:
    """``tokens`` random-walk tokens (2 core + sectors) over ``years`` years, with funding
    every 8 h and a universe file; returns the config file that points at both."""
    rng = random.Random(seed)
    first = date(2021, 1, 1)
    days = 365 * years
    names = ["BTC", "ETH"] + [f"T{i:03d}" for i in range(tokens - 2)]
    (root / "ohlcv").mkdir(parents=True)
    (root / "funding").mkdir()
    (root / "PROVENANCE.md").write_text("Synthetic random walks (benchmarks/bench_backtest.py)\n")
    for name in names:
        price, rows = rng.uniform(1, 100), ["date,open,high,low,close,volume,quote_volume"]
        for d in range(days):
            close = price * (1 + rng.gauss(0.0005, 0.04))
            high, low = max(price, close) * 1.01, min(price, close) * 0.99
            vol = rng.uniform(1e5, 1e6)
            rows.append(f"{first + timedelta(days=d)},{price:.6f},{high:.6f},{low:.6f},"
                        f"{close:.6f},{vol / close:.4f},{vol:.2f}")
            price = close
        (root / "ohlcv" / f"{name}.csv").write_text("\n".join(rows) + "\n")
        funding = ["timestamp,rate,interval_hours"]
        for h in range(0, days * 24, 8):
            when = f"{first + timedelta(hours=h):%Y-%m-%d}T{h % 24:02d}:00:00Z"
            funding.append(f"{when},{rng.gauss(0.0001, 0.0002):.6f},8")
        (root / "funding" / f"{name}.csv").write_text("\n".join(funding) + "\n")
    per = (tokens - 2) // len(SECTORS)
    universe = ['[core]\ntokens = ["BTC", "ETH"]\n']
    for i, sector in enumerate(SECTORS):
        members = names[2 + i * per: 2 + (i + 1) * per if i < len(SECTORS) - 1 else None]
        bucket = "speculative" if STAGES[sector] == 4 else "rotational"
        universe.append(f'[sectors.{sector}]\nbucket = "{bucket}"\n'
                        f"cycle_stage = {STAGES[sector]}\ntokens = {json.dumps(members)}\n")
    (root / "sectors.toml").write_text("\n".join(universe))
    config = root / "bench.toml"
    config.write_text(f'universe_file = "{root / "sectors.toml"}"\n'
                      f'[replay]\ndata_dir = "{root}"\n')
    return config


def vectorised_floor(data_dir: Path) -> float:
    """The engine's per-day signal arithmetic for every day and token at once (seconds);
    reading the CSV files is left out of the timing."""
    tables = {p.stem: list(csv.DictReader(line for line in p.open() if not line.startswith("#")))
              for p in sorted((data_dir / "ohlcv").glob("*.csv"))}
    tokens = sorted(tables)
    days = sorted({row["date"] for rows in tables.values() for row in rows})
    frames = []
    for kind in ("close", "high", "low", "quote_volume"):
        series = {t: {r["date"]: float(r[kind]) for r in rows} for t, rows in tables.items()}
        frames.append(np.array([[series[t].get(d, np.nan) for t in tokens] for d in days]))
    close, high, low, qvol = frames
    members = np.zeros((len(tokens), len(SECTORS)))
    for j, _ in enumerate(tokens):
        members[j, j % len(SECTORS)] = 1.0
    t0 = time.perf_counter()
    momentum = [close / np.roll(close, k, axis=0) - 1 for k in (7, 14, 28, 90)]
    logret = np.diff(np.log(close), axis=0, prepend=np.nan)
    gains, losses = np.clip(logret, 0, None), np.clip(-logret, 0, None)
    kernel = np.ones(14) / 14

    def rolling(x: np.ndarray, window: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(lambda col: np.convolve(col, window, "same"), 0, x)

    rsi = 100 - 100 / (1 + rolling(np.nan_to_num(gains), kernel)
                       / (rolling(np.nan_to_num(losses), kernel) + 1e-12))
    vol30 = np.sqrt(rolling(np.nan_to_num(logret) ** 2, np.ones(30) / 30))
    true_range = np.maximum(high - low, np.abs(high - np.roll(close, 1, axis=0)))
    atr = rolling(np.nan_to_num(true_range), kernel) / close
    volume_trend = rolling(np.nan_to_num(qvol), np.ones(7) / 7) / (
        rolling(np.nan_to_num(qvol), np.ones(28) / 28) + 1e-12)
    score = sum(np.nan_to_num(m) for m in momentum) / vol30.clip(1e-6) + volume_trend
    sector = (np.nan_to_num(score) @ members) / members.sum(axis=0)
    z = (sector - sector.mean(axis=1, keepdims=True)) / (sector.std(axis=1, keepdims=True)
                                                          + 1e-12)
    ranks = np.argsort(np.argsort(-z, axis=1), axis=1)
    _ = (rsi.sum(), atr.sum(), ranks.sum())
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    py = sys.executable
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundled = [timed_process([py, "-m", "bot", "backtest", "--out",
                                  str(work / f"bundled{i}")], work) for i in range(args.runs)]
        out["bundled_backtest_s"] = statistics.median(w for w, _ in bundled)
        out["bundled_backtest_rss_mb"] = max(r for _, r in bundled)
        steps = [stepping(work / f"steps{i}") for i in range(args.runs)]
        out["stepping"] = {k: statistics.median(float(s[k]) for s in steps) for k in steps[0]}
        starts = []
        for i in range(args.runs):
            (work / f"start{i}").mkdir()
            starts.append(start_to_first_cycle(work / f"start{i}"))
        out["start_to_first_cycle_s"] = statistics.median(starts)
        floor = statistics.median(vectorised_floor(bundled_sample_dir()) for _ in range(5))
        out["vectorised_floor_s"] = floor
        out["stepping_over_floor"] = out["stepping"]["seconds"] / floor  # type: ignore[index]
        config = synthetic_data(work / "synthetic", args.tokens, args.years)
        big = [timed_process([py, "-m", "bot", "backtest", "--config", str(config), "--out",
                              str(work / f"big{i}")], work) for i in range(args.runs)]
        out[f"synthetic_{args.tokens}x{args.years}y_s"] = statistics.median(w for w, _ in big)
        out[f"synthetic_{args.tokens}x{args.years}y_rss_mb"] = max(r for _, r in big)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
