"""``sectorbot evidence``: the signal-evidence report on the replay data, as files and a table."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bot.config import Settings, load_universe
from bot.research.evidence import (
    DECISION_HORIZON,
    HORIZONS,
    MIN_INDEPENDENT,
    T_STAT_NEEDED,
    EvidenceReport,
    evidence_report,
    suggested_weights,
)


def run_evidence(settings: Settings, out: Path, log: Any, data_dir: Path | None = None,
                 start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """Measure every component on the replay data; write ``evidence.json`` and
    ``ic_daily.csv`` into ``out`` and return the summary."""
    from bot.service.daemon import restrict_universe
    from bot.sources.replay import ReplayData, bundled_sample_dir

    root = data_dir or settings.replay.data_dir or bundled_sample_dir()
    data = ReplayData.load(root)
    universe = restrict_universe(load_universe(settings.universe_file), set(data.tokens), log)
    first = max(start or date.min, data.first_day + timedelta(days=settings.replay.warmup_days))
    last = min(end or date.max, data.last_day)
    if (last - first).days < max(HORIZONS):
        raise ValueError(f"--start/--end: {first} .. {last} leaves no day with "
                         f"{max(HORIZONS)} days of future to measure against")
    report = evidence_report(data, universe, settings.strategy, first, last)
    summary = to_json(report, settings)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evidence.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    with (out / "ic_daily.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["date", "component", "horizon_days", "ic"])
        for (name, h), series in sorted(report.daily.items()):
            for day, ic in series:
                writer.writerow([day.isoformat(), name, h, f"{ic:.6f}"])
    return summary


def to_json(report: EvidenceReport, settings: Settings) -> dict[str, Any]:
    return {
        "period": f"{report.first} .. {report.last}",
        "sectors": report.sectors,
        "rule": (f"weight only with a positive mean IC and t >= {T_STAT_NEEDED:g} at "
                 f"{DECISION_HORIZON} days (t counts days / horizon independent observations; "
                 f"fewer than {MIN_INDEPENDENT} give t = 0)"),
        "configured_weights": settings.strategy.component_weights(),
        "suggested_weights": suggested_weights(report, settings.strategy),
        "components": {
            name: {str(e.horizon): {"mean_ic": e.mean_ic, "t_stat": e.t_stat,
                                    "hit_rate": e.hit_rate, "days": e.days,
                                    "independent_days": e.independent_days,
                                    "by_year": {str(y): v for y, v in e.by_year.items()}}
                   for e in report.evidence if e.component == name}
            for name in report.components()},
    }


def render(summary: dict[str, Any]) -> str:
    """The table a user reads: each component's mean IC (t) per horizon, then the weights."""
    horizons = [str(h) for h in HORIZONS]
    lines = [f"signal evidence {summary['period']} ({summary['sectors']} sectors): mean rank "
             "IC with the next N days' sector return (t on days / N independent observations)",
             f"{'component':14s}" + "".join(f"{h + 'd':>18s}" for h in horizons)
             + f"{'weight now':>12s}{'suggested':>11s}"]
    configured = summary["configured_weights"]
    suggested = summary["suggested_weights"]
    for name, per in summary["components"].items():
        cells = "".join(
            f"{per[h]['mean_ic']:+8.3f} (t {per[h]['t_stat']:+5.2f})" if h in per
            else f"{'-':>18s}" for h in horizons)
        now = f"{configured[name]:.2f}" if name in configured else "-"
        new = f"{suggested[name]:.2f}" if name in suggested else "-"
        lines.append(f"{name:14s}{cells}{now:>12s}{new:>11s}")
    for name in sorted(set(configured) - set(summary["components"])):
        lines.append(f"{name:14s}{'no data on 3+ sectors':>54s}{configured[name]:>12.2f}"
                     f"{suggested.get(name, 0.0):>11.2f}")
    lines.append(summary["rule"])
    return "\n".join(lines) + "\n"


__all__ = ["render", "run_evidence", "to_json"]
