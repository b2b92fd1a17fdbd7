"""The bundled replay end to end under each kill-switch action, and what a trip does.

Runs the default paper replay (bundled sample, built-in defaults) once per
``risk.kill_switch_action`` and once with the drawdown switch out of reach (99 %), and
reports from the state store: final return, maximum drawdown and its dates, the trip (on
the simulated clock), and what happened after it (spot buys, rotations started).

    python benchmarks/replay_kill_switch.py [--cycles 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.config import load_settings  # noqa: E402
from bot.logs import configure_logging, get_logger  # noqa: E402
from bot.service.daemon import Daemon  # noqa: E402
from bot.store.repo import StateStore  # noqa: E402


def run(action: str, max_drawdown_pct: float, cycles: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sectorbot-kill-") as tmp:
        state = Path(tmp) / "state.sqlite3"
        os.environ["SECTORBOT__STATE__PATH"] = str(state)
        os.environ["SECTORBOT__RISK__KILL_SWITCH_ACTION"] = action
        os.environ["SECTORBOT__RISK__MAX_DRAWDOWN_PCT"] = str(max_drawdown_pct)
        configure_logging("warning", "json")
        started = time.monotonic()
        daemon = Daemon(load_settings(None), get_logger())
        daemon.run_cycles(cycles)
        seconds = time.monotonic() - started
        store = StateStore(state, read_only=True)
        try:
            return summarise(store, action, max_drawdown_pct, seconds)
        finally:
            store.close()


def summarise(store: StateStore, action: str, limit: float, seconds: float) -> dict[str, Any]:
    curve = store.equity_curve()
    peak, peak_at, worst, worst_from, worst_at = Decimal(0), None, 0.0, None, None
    for point in curve:
        if point.equity > peak:
            peak, peak_at = point.equity, point.ts
        drawdown = float(1 - point.equity / peak) if peak > 0 else 0.0
        if drawdown > worst:
            worst, worst_from, worst_at = drawdown, peak_at, point.ts
    trips = store.kill_switch_history()
    trip = trips[0] if trips else None
    decisions = store.decisions()
    after = {d.decision_id for d in decisions if trip is not None and d.as_of >= trip.tripped_at}
    rotations_after = [d for d in decisions if d.decision_id in after and d.action == "rotate"]
    spot_buys = [o for o in store.orders() if o.market == "spot" and o.side == "buy"
                 and o.decision_id in after]
    first, last = curve[0].equity, curve[-1].equity
    return {
        "action": action, "max_drawdown_limit_pct": limit, "cycles": len(curve),
        "total_return": float(last / first - 1),
        "max_drawdown": worst,
        "max_drawdown_from": worst_from.date().isoformat() if worst_from else None,
        "max_drawdown_to": worst_at.date().isoformat() if worst_at else None,
        "tripped_at": trip.tripped_at.date().isoformat() if trip else None,
        "trip_reason": trip.reason if trip else None,
        "spot_buys_after_trip": len(spot_buys),
        "rotations_after_trip": len(rotations_after),
        "orders": len(store.orders()), "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    args = parser.parse_args()
    rows = [run("to_core", 99.0, args.cycles)]
    rows[0]["action"] = "(switch out of reach)"
    for action in ("freeze", "to_core", "to_cash"):
        rows.append(run(action, 25.0, args.cycles))
    print(json.dumps(rows, indent=2))
    print()
    print("| kill switch | tripped | max drawdown (dates) | total return | spot buys after "
          "the trip | rotations after the trip |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['action']} | {r['tripped_at'] or '-'} | {r['max_drawdown']:.1%} "
              f"({r['max_drawdown_from']} to {r['max_drawdown_to']}) | "
              f"{r['total_return']:+.1%} | {r['spot_buys_after_trip']} | "
              f"{r['rotations_after_trip']} |")


if __name__ == "__main__":
    main()
