"""``sectorbot optimize``: lay out the windows, run the workers, judge the chosen parameters.

The workers only search; this module then reads the whole study back from the storage (so
a machine that joined late reports on every trial, not just its own) and writes the files.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.optimize.folds import Fold, Scheme, holdout_window, walk_forward
from bot.optimize.space import SearchSpace, apply_values
from bot.optimize.study import (
    INVALID,
    QuietLog,
    StudyPlan,
    finished_count,
    is_finished,
    open_study,
    run_workers,
    trial_values,
)


@dataclass(frozen=True)
class OptimizeRequest:
    settings: Settings
    space: SearchSpace
    trials: int
    out: Path
    storage_url: str = field(repr=False)
    config_file: Path | None = None
    study_name: str = "sectorbot"
    jobs: int = 1
    folds: int = 4
    scheme: Scheme = "rolling"
    train_days: int | None = None
    holdout_from: date | None = None
    start: date | None = None
    end: date | None = None
    data_dir: Path | None = None
    seed: int | None = None
    heartbeat_seconds: int = 30
    log_format: str = "json"


def layout(request: OptimizeRequest) -> tuple[tuple[Fold, ...], tuple[date, date] | None]:
    """The folds and the holdout window over the replay data's calendar."""
    from bot.sources.replay import ReplayData, bundled_sample_dir

    data_dir = request.data_dir or request.settings.replay.data_dir or bundled_sample_dir()
    data = ReplayData.load(data_dir)
    first = data.first_day + timedelta(days=request.settings.replay.warmup_days)
    if request.start is not None:
        first = max(first, request.start)
    last = data.last_day if request.end is None else min(data.last_day, request.end)
    holdout = None
    if request.holdout_from is not None:
        holdout = holdout_window(first, request.holdout_from, data.last_day)
        last = min(last, request.holdout_from - timedelta(days=1))
    return walk_forward(first, last, request.folds, request.scheme, request.train_days), holdout


def study_plan(request: OptimizeRequest) -> tuple[StudyPlan, tuple[date, date] | None]:
    """The workers' plan and the holdout window (raises ``FoldError`` when they do not fit)."""
    folds, holdout = layout(request)
    plan = StudyPlan(settings=request.settings, space=request.space, folds=folds,
                     trials=request.trials, storage_url=request.storage_url,
                     study_name=request.study_name, data_dir=request.data_dir,
                     seed=request.seed, heartbeat_seconds=request.heartbeat_seconds,
                     log_format=request.log_format)
    return plan, holdout


def optimize(request: OptimizeRequest, log: Any) -> dict[str, Any]:
    """Search, then write ``best.toml``, ``trials.csv``, ``summary.json`` and
    ``report.html`` (and ``holdout/`` with a full backtest report) into ``request.out``."""
    plan, holdout = study_plan(request)
    request.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    code = run_workers(plan, request.jobs, log)
    search_seconds = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"the study holds {finished_count(plan)} of {plan.trials} finished "
                           "trials: a trial failed (see the optimize.trial_failed log line); "
                           "the same command continues the study")
    return write_outputs(request, plan, holdout, search_seconds, log)


def write_outputs(request: OptimizeRequest, plan: StudyPlan,
                  holdout: tuple[date, date] | None, search_seconds: float,
                  log: Any) -> dict[str, Any]:
    from bot.backtest.command import backtest
    from bot.config import load_universe
    from bot.optimize import outputs
    from bot.service.daemon import restrict_universe
    from bot.sources.replay import ReplayData, bundled_sample_dir

    study = open_study(plan)
    trials = outputs.valid_trials(study)
    every = study.get_trials(deepcopy=False)
    summary: dict[str, Any] = {
        "study": request.study_name,
        "finished": sum(1 for t in every if is_finished(t)),
        "invalid": sum(1 for t in every if INVALID in t.user_attrs),
        "objective": asdict(request.space.objective),
        "folds": [{"train_start": str(f.train_start), "test_start": str(f.test_start),
                   "test_end": str(f.test_end)} for f in plan.folds],
        "search_seconds": round(search_seconds, 1),
        "jobs": request.jobs,
    }
    outputs.write_trials_csv(study, request.space, request.out)
    oos: dict[str, Any] = {}
    hold_curves = None
    if trials:
        best = trials[0]
        values = trial_values(best, request.space)
        chosen = apply_values(request.settings, values)
        outputs.best_toml(values, request.config_file, request.out, request.data_dir)
        summary["best"] = {"number": best.number, "objective": best.value,
                           "params": {k: list(v) if isinstance(v, tuple) else v
                                      for k, v in values.items()},
                           "folds": best.user_attrs["folds"]}
        summary["guards"] = outputs.overfitting_guards(trials)
        summary["importances"] = outputs.importances(study)
        data_dir = request.data_dir or request.settings.replay.data_dir or bundled_sample_dir()
        data = ReplayData.load(data_dir)
        universe = restrict_universe(load_universe(request.settings.universe_file),
                                     set(data.tokens), log)
        oos = outputs.oos_curves(best, chosen, data, universe)
        summary["test_windows"] = outputs.oos_metrics(oos)
        if holdout is not None:
            shutil.rmtree(request.out / "holdout", ignore_errors=True)  # an earlier run's
            result = backtest(chosen, request.out / "holdout", QuietLog(),
                              data_dir=request.data_dir,
                              start=holdout[0], end=holdout[1])
            summary["holdout"] = outputs.holdout_summary(result)
            hold_curves = outputs.holdout_curves(result)
    values_by_trial = [(t.number, float(t.value)) for t in trials if t.value is not None]
    (request.out / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    outputs.write_report(request.out, summary, trials, request.space, oos, hold_curves,
                         sorted(values_by_trial))
    return summary


__all__ = ["OptimizeRequest", "layout", "optimize", "study_plan", "write_outputs"]
