"""The full fault schedule: the demo daemon over >= 1,000 cycles of venue faults, with figures.

Each run (``tests/fault_harness.py``) starts the daemon as a service against the Binance
emulator on a compressed clock, fails 10-30 % of its requests (timeouts, stalls, 5xx, 429,
connection resets, "accepted then 503"), cuts the venue off for "minutes", freezes its
market data, moves and crashes prices, opens positions it must adopt, and checks the
invariants during and after the run. CI runs a sample (``tests/test_fault_schedule.py``);
this runs the full count and prints the table kept in ``docs/reliability.md``.

    python benchmarks/fault_suite.py [--runs 4] [--cycles 250] [--first-seed 100] [--jobs 4]
                                     [--out benchmarks/results/fault_suite.jsonl]

The same is reachable through environment variables, like the crash suite's:
``SECTORBOT_FAULT_RUNS``, ``SECTORBOT_FAULT_CYCLES``, ``SECTORBOT_FAULT_SEED``,
``SECTORBOT_FAULT_REPORT``. Runs wait on their venue far more than they compute, so several
share a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fault_harness import Schedule, run_schedule  # noqa: E402


def one(seed: int, cycles: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sectorbot-fault-") as tmp:
        try:
            return run_schedule(Schedule.from_seed(seed, cycles), Path(tmp),
                                budget=cycles * 12.0).to_json()
        except Exception as exc:  # a harness failure is a failed run, not a lost one
            return {"schedule": {"seed": seed, "cycles": cycles}, "ok": False,
                    "violations": {"harness_error": [repr(exc)]}}


def summarise(results: list[dict[str, Any]], wall: float) -> str:
    faults: Counter[str] = Counter()
    checked: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for r in results:
        faults.update(r.get("faults", {}))
        checked.update(r.get("invariants_checked", {}))
        for kind, found in r.get("violations", {}).items():
            kinds[kind] += len(found)
    requests = sum(r.get("requests", 0) for r in results)
    injected = sum(v for k, v in faults.items() if k not in ("adopted_position", "stale_window"))
    trips = [t for r in results for t in r.get("trips", [])]
    lines = [
        f"runs: {len(results)} (seeds {', '.join(str(r['schedule']['seed']) for r in results)})",
        f"cycles: {sum(r.get('cycles', 0) for r in results)}",
        f"requests: {requests}, order requests: "
        f"{sum(r.get('order_requests', 0) for r in results)}",
        f"request faults injected: {injected} ({injected / max(requests, 1):.1%} of requests)",
        "faults by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())),
        "invariants checked: " + ", ".join(f"{k} {v}" for k, v in sorted(checked.items()))
        + f" (total {sum(checked.values())})",
        f"price moves: {sum(r.get('price_moves', 0) for r in results)}, stops fired: "
        f"{sum(r.get('stops_fired', 0) for r in results)}, positions adopted: "
        f"{sum(r.get('adopted', 0) for r in results)}",
        f"kill switch trips: {len(trips)} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(
            "drawdown" if t.startswith("drawdown") else "failed jobs" for t in trips).items()))
        + f"), resumes: {sum(r.get('resumes', 0) for r in results)}",
        f"longest uncovered perp position (outages excluded): "
        f"{max((r.get('max_uncovered_seconds', 0.0) for r in results), default=0.0):.2f} s",
        f"largest drawdown before a crash: "
        f"{max((r.get('max_drawdown_seen', 0.0) for r in results), default=0.0):.1%}",
        f"snapshots taken on stale data: {sum(r.get('stale_snapshots', 0) for r in results)}",
        f"exit codes on SIGTERM: {sorted(Counter(r.get('exit_code') for r in results).items())}",
        "violations: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                          if kinds else "0"),
        f"wall time: {wall:.0f} s",
    ]
    return "\n".join(lines)


def main() -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(env("SECTORBOT_FAULT_RUNS", "4")))
    parser.add_argument("--cycles", type=int, default=int(env("SECTORBOT_FAULT_CYCLES", "250")))
    parser.add_argument("--first-seed", type=int, default=int(env("SECTORBOT_FAULT_SEED", "100")))
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(env(
        "SECTORBOT_FAULT_REPORT", str(REPO / "benchmarks" / "results" / "fault_suite.jsonl"))))
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.runs)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool, \
            args.out.open("w", encoding="utf-8") as out:
        for result in pool.map(lambda s: one(s, args.cycles), seeds):
            results.append(result)
            out.write(json.dumps(result, default=str) + "\n")
            out.flush()
            status = "ok" if result.get("ok") else f"VIOLATIONS {result['violations']}"
            print(f"seed {result['schedule']['seed']}: {status}", file=sys.stderr)
    print(summarise(results, time.monotonic() - started))
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
