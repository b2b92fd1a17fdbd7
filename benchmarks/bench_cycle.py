"""Where a replay cycle spends its time, on the bundled sample.

Measures, in one run so the numbers are comparable: loading the sample, building one snapshot,
one engine decision, and one whole daemon step (clock advance, paper settlement, risk watch,
decision, orders, state commit). Reports medians and ratios; the absolute numbers depend on
the machine, the ratios much less.

    python benchmarks/bench_cycle.py [--cycles 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bot.config import load_settings
from bot.domain.engine import decide
from bot.logs import configure_logging, get_logger
from bot.service.daemon import LOOKBACK_DAYS, Daemon
from bot.sources.replay import ReplayData, bundled_sample_dir


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args()

    loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        data = ReplayData.load(bundled_sample_dir())
        loads.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp, open("/dev/null", "w") as devnull:
        configure_logging("warning", "json", stream=devnull)
        import os

        os.environ["SECTORBOT__STATE__PATH"] = str(Path(tmp) / "bench.sqlite3")
        daemon = Daemon(load_settings(None), get_logger())
        steps, snaps, decisions = [], [], []
        for _ in range(args.cycles):
            t0 = time.perf_counter()
            if not daemon.step():
                break
            steps.append(time.perf_counter() - t0)
            as_of = daemon.driver.cursor
            t0 = time.perf_counter()
            snap = data.snapshot(as_of, lookback_days=LOOKBACK_DAYS)
            snaps.append(time.perf_counter() - t0)
            portfolio = daemon.cycle.read_portfolio()
            t0 = time.perf_counter()
            decide(snap, portfolio, daemon.universe, daemon.settings.strategy, None)
            decisions.append(time.perf_counter() - t0)
        daemon.shutdown()

    step, snap_ms, dec = _median_ms(steps), _median_ms(snaps), _median_ms(decisions)
    days = len(steps)
    print(f"cycles measured: {days} (simulated {days} days from "
          f"{(daemon.driver.cursor - timedelta(days=days)).date()})")
    print(f"load sample           median {_median_ms(loads):8.1f} ms  (5 runs)")
    print(f"snapshot              median {snap_ms:8.2f} ms")
    print(f"engine decide         median {dec:8.2f} ms")
    print(f"full daemon step      median {step:8.2f} ms")
    print(f"ratio decide/step     {dec / step:8.2f}")
    print(f"ratio snapshot/step   {snap_ms / step:8.2f}")
    print(f"simulated days per wall second at median: {1000 / step:8.0f}")


if __name__ == "__main__":
    main()
