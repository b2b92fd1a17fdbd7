"""The strategy against holding, fold by fold: the figures issue #15 is judged on.

    python benchmarks/strategy_folds.py [--config P] [--data-dir D] [--folds 4]
        [--holdout-from 2024-07-01] [--out results/strategy_folds.md]

For each walk-forward test window (``bot.optimize.folds``, the same layout as ``sectorbot
optimize``) it backtests the configuration from cash on that window alone (data loaded up to
the window's end; ``bot.optimize.evaluate.run_fold``) and values BTC buy-and-hold, the
equal-weight basket and the static 55/30/15 buckets over the same days and costs. Then the
same over the windows chained, and over the holdout. Nothing is fitted: the configuration is
taken as given, so every figure is out of sample for it (unless it was tuned on this data).

The pass marks are issue #15's: Sharpe >= each benchmark's in a majority of folds and overall,
max drawdown <= 0.7 x BTC's, turnover <= 8x equity a year.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.backtest.benchmarks import Curve, benchmark_curves
from bot.backtest.metrics import curve_metrics, daily_returns, sharpe
from bot.config import Settings, load_settings, load_universe
from bot.optimize.evaluate import FoldResult, run_fold
from bot.optimize.folds import Fold, walk_forward
from bot.optimize.space import Objective
from bot.optimize.study import QuietLog
from bot.service.daemon import restrict_universe
from bot.sources.replay import ReplayData, bundled_sample_dir

NAMES = ("BTC buy and hold", "equal weight", "static buckets")


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def window_curves(result: FoldResult, data: ReplayData, universe: object,
                  settings: Settings) -> tuple[list[datetime], list[float], list[Curve]]:
    """One test window: its times, the strategy's equity, and the benchmarks over the same
    days and costs."""
    fold = result.fold
    times = [_midnight(fold.test_start)] + [_midnight(d) + timedelta(days=1)
                                            for d in result.test_days]
    start = Decimal(str(settings.paper.starting_cash))
    values = [float(start)]
    for r in result.test_returns:
        values.append(values[-1] * (1 + r))
    cost = Decimal(str(settings.paper.spot_fee_bps + settings.paper.slippage_bps))
    curves = benchmark_curves(times, [data.marks(t) for t in times], universe,  # type: ignore[arg-type]
                              settings.strategy, start, cost)
    return times, values, curves


def window_row(result: FoldResult, curves: tuple[list[datetime], list[float], list[Curve]]
               ) -> dict[str, dict[str, float]]:
    """The strategy's and the benchmarks' figures over one test window."""
    times, values, benchmarks = curves
    row = {"sectorbot": {**_figures(times, values),
                         "turnover_per_year": result.test.turnover_per_year}}
    for c in benchmarks:
        row[c.name] = _figures(list(c.times), list(c.values))
    return row


def _figures(times: list[datetime], values: list[float]) -> dict[str, float]:
    m = curve_metrics(times, values)
    return {k: float(m[k]) for k in ("total_return", "sharpe", "max_drawdown")}  # type: ignore[arg-type]


def chained(results: list[FoldResult]) -> dict[str, float]:
    returns = [r for res in results for r in res.test_returns]
    growth = math.prod(1 + r for r in returns) - 1
    return {"total_return": growth, "sharpe": sharpe(returns)}


def verdict(rows: list[dict[str, dict[str, float]]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in NAMES:
        wins = sum(1 for r in rows if r["sectorbot"]["sharpe"] >= r[name]["sharpe"])
        out[f"sharpe >= {name}"] = f"{wins}/{len(rows)} folds"
    dd = sum(1 for r in rows if r["sectorbot"]["max_drawdown"]
             <= 0.7 * r["BTC buy and hold"]["max_drawdown"])
    out["max drawdown <= 0.7 x BTC"] = f"{dd}/{len(rows)} folds"
    turnover = statistics.fmean(r["sectorbot"]["turnover_per_year"] for r in rows)
    out["turnover <= 8x a year"] = f"{turnover:.1f}x mean"
    return out


def render(title: str, folds: list[Fold], rows: list[dict[str, dict[str, float]]],
           overall: dict[str, float], bench_overall: dict[str, dict[str, float]]) -> str:
    lines = [f"### {title}", "",
             "| window | sectorbot return / Sharpe / max DD / turnover | BTC | equal weight "
             "| static buckets |", "|---|---|---|---|---|"]
    for fold, row in zip(folds, rows, strict=True):
        s = row["sectorbot"]
        cells = [f"{row[n]['total_return']:+.1%} / {row[n]['sharpe']:.2f} / "
                 f"{row[n]['max_drawdown']:.0%}" for n in NAMES]
        lines.append(f"| {fold.test_start} .. {fold.test_end} | {s['total_return']:+.1%} / "
                     f"{s['sharpe']:.2f} / {s['max_drawdown']:.0%} / "
                     f"{s['turnover_per_year']:.1f}x | " + " | ".join(cells) + " |")
    lines.append(f"| chained | {overall['total_return']:+.1%} / {overall['sharpe']:.2f} | "
                 + " | ".join(f"{bench_overall[n]['total_return']:+.1%} / "
                              f"{bench_overall[n]['sharpe']:.2f}" for n in NAMES) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--holdout-from", type=date.fromisoformat, default=date(2024, 7, 1))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    settings = load_settings(args.config)
    root = args.data_dir or settings.replay.data_dir or bundled_sample_dir()
    data = ReplayData.load(root)
    universe = restrict_universe(load_universe(settings.universe_file), set(data.tokens),
                                 QuietLog())
    first = data.first_day + timedelta(days=settings.replay.warmup_days)
    folds = list(walk_forward(first, args.holdout_from - timedelta(days=1), args.folds,
                              train_days=0))
    holdout = Fold(len(folds), args.holdout_from, args.holdout_from, data.last_day)
    results, rows, windows = [], [], []
    for fold in [*folds, holdout]:
        result = run_fold(settings, fold, Objective(), QuietLog(), data_dir=args.data_dir)
        curves = window_curves(result, data, universe, settings)
        results.append(result)
        windows.append(curves)
        rows.append(window_row(result, curves))
    search_rows, search_results = rows[:-1], results[:-1]
    # Benchmarks over the chained windows: their daily returns, chained like the strategy's.
    bench_overall = {}
    for name in NAMES:
        rets = [r for _, _, curves in windows[:-1] for c in curves if c.name == name
                for r in daily_returns(list(c.values))]
        bench_overall[name] = {"total_return": math.prod(1 + r for r in rets) - 1,
                               "sharpe": sharpe(rets)}
    overall = chained(search_results)
    title = f"{root.name}: {len(folds)} walk-forward test windows, then the holdout"
    text = render(title, [*folds, holdout], rows, overall, bench_overall)
    summary = {"verdict (test windows)": verdict(search_rows),
               "overall": {"sectorbot": overall, **bench_overall}}
    text += "\n```\n" + json.dumps(summary, indent=2) + "\n```\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
