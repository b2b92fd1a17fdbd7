"""The full crash suite: random kill -9 trials on SQLite and PostgreSQL, with figures.

Each trial (``tests/crash_harness.py``) runs the demo daemon against the Binance emulator
with venue faults and price moves, SIGKILLs it at a random request, restarts it on a calm
venue and checks that no order was doubled or lost, no journal row names another order and
every open perp is stopped. CI runs a sample (``tests/test_crash_random.py``); this runs the
full count and prints the table kept in ``docs/reliability.md``.

    python benchmarks/crash_suite.py [--trials 100] [--first-seed 1000] [--jobs 2]
                                     [--out benchmarks/results/crash_suite.jsonl]

``--trials`` is per backend. PostgreSQL needs the server binaries (``.ci/postgres.sh``);
without them only SQLite runs, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.crash_harness import Trial, run_trial  # noqa: E402
from tests.pg_server import PostgresServer, find_bindir  # noqa: E402


def one(seed: int, backend: str, state: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sectorbot-crash-") as tmp:
        workdir = Path(tmp)
        where: Path | str = state if state is not None else workdir / "state.sqlite3"
        try:
            return run_trial(Trial.from_seed(seed), workdir, where, backend).to_json()
        except Exception as exc:  # a harness failure is a failed trial, not a lost one
            return {"trial": {"seed": seed}, "backend": backend, "ok": False,
                    "violations": {"harness_error": [repr(exc)]}}


def summarise(results: list[dict[str, Any]]) -> str:
    lines = ["| backend | trials | killed | kill before processing / after | order requests | "
             "faults injected | price moves | stops fired | violations | median s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for backend in ("sqlite", "postgres"):
        rows = [r for r in results if r["backend"] == backend]
        if not rows:
            continue
        killed = [r for r in rows if r.get("killed")]
        after = sum(1 for r in killed if r["trial"]["after"])
        faults: Counter[str] = Counter()
        for r in rows:
            faults.update(r.get("faults", {}))
        bad = sum(len(v) for r in rows for v in r.get("violations", {}).values())
        seconds = sorted(r.get("seconds", 0.0) for r in rows)
        lines.append(
            f"| {backend} | {len(rows)} | {len(killed)} | {len(killed) - after} / {after} | "
            f"{sum(r.get('order_requests', 0) for r in rows)} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
            + f" | {sum(r.get('price_moves', 0) for r in rows)} | "
            f"{sum(r.get('stops_fired', 0) for r in rows)} | {bad} | "
            f"{seconds[len(seconds) // 2]:.1f} |")
    kinds: Counter[str] = Counter()
    for r in results:
        for kind, found in r.get("violations", {}).items():
            kinds[kind] += len(found)
    lines.append("")
    lines.append("violations by kind: " + (", ".join(f"{k} {v}" for k, v in sorted(
        kinds.items())) if kinds else "none"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per backend")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "crash_suite.jsonl")
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.trials)
    server: PostgresServer | None = None
    bindir = find_bindir()
    if bindir is not None:
        server = PostgresServer(bindir)
        server.start()
    else:
        print("PostgreSQL binaries not found: SQLite only", file=sys.stderr)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        jobs = [(seed, "sqlite", None) for seed in seeds]
        if server is not None:
            jobs += [(seed, "postgres", server.fresh_url()) for seed in seeds]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool, \
                args.out.open("w", encoding="utf-8") as out:
            for result in pool.map(one, *zip(*jobs, strict=True)):
                results.append(result)
                out.write(json.dumps(result, default=str) + "\n")
                out.flush()
                status = "ok" if result.get("ok") else f"VIOLATIONS {result['violations']}"
                print(f"seed {result['trial']['seed']} {result['backend']}: {status}",
                      file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
    print(f"{len(results)} trials in {time.monotonic() - started:.0f} s "
          f"({args.jobs} at a time)\n")
    print(summarise(results))
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
