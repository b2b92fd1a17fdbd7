"""The search: an Optuna study every worker shares through Optuna's own storage.

A worker is one process running trials one at a time. Any number of them, on one machine
(``--jobs``) or many (the same command against one ``--storage postgresql+psycopg://...``),
cooperate on one study: the storage hands out trials, TPE (with a "constant liar" for trials
still running) proposes parameters, and the study continues where it stopped when a command
is run again. Three promises need care beyond Optuna's defaults:

- **Exactly N trials.** ``--trials N`` is the study's total of finished trials (an invalid
  parameter combination counts: it was tried). Optuna's own cap can overshoot when workers
  ask at once, so a trial first counts the trials numbered before it that hold a place
  (finished, running or queued); if N already do, it is a surplus: recorded as such, never
  evaluated, not counted.
- **A killed worker loses nothing.** Trials beat a heartbeat into the storage. A trial whose
  heartbeat stops (its worker was killed) is failed by the next worker that looks, and a copy
  with the same parameters is queued and run by whoever is free; the study still ends with N.
- **One study, one question.** The folds, the space, the objective and the data are written
  into the study when it is created; a worker whose command differs is refused, so two
  machines can never mix results of different searches.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.exc import IntegrityError, ProgrammingError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from bot.config import ConfigError, Settings
from bot.logs import configure_logging, get_logger, register_secrets, url_secrets
from bot.optimize.evaluate import FoldResult, aggregate, run_fold
from bot.optimize.folds import Fold
from bot.optimize.space import Choice, Range, SearchSpace, apply_values

SURPLUS = "surplus"
INVALID = "invalid"


class QuietLog:
    """The logger a trial's backtests get: they run thousands of daily cycles whose lines
    (decisions, stops, a kill switch tripping in some fold) are the trial's result, not the
    search's progress; the search logs its own ``optimize.*`` lines."""

    def _drop(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    debug = info = warning = error = critical = exception = _drop

    def bind(self, **_kwargs: Any) -> QuietLog:
        return self


class StudyMismatch(Exception):
    """The study in the storage was created for a different search."""


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker needs, picklable so ``--jobs`` can hand it to a new process."""

    settings: Settings
    space: SearchSpace
    folds: tuple[Fold, ...]
    trials: int
    storage_url: str = field(repr=False)
    study_name: str = "sectorbot"
    data_dir: Path | None = None
    seed: int | None = None
    heartbeat_seconds: int = 30
    log_format: str = "json"

    def fingerprint(self) -> dict[str, Any]:
        """What makes two commands the same search (stored in the study, compared on join)."""
        data_dir = self.data_dir or self.settings.replay.data_dir
        return {
            "space": [asdict(p) for p in self.space.params],
            "objective": asdict(self.space.objective),
            "folds": [[str(f.train_start), str(f.test_start), str(f.test_end)]
                      for f in self.folds],
            "data": _data_digest(data_dir),
            "base_config": _digest(json.dumps(self._what_trials_read(), sort_keys=True,
                                              default=str).encode()),
        }

    def _what_trials_read(self) -> dict[str, Any]:
        """The settings a trial's result depends on (not logging, state paths, venues), and
        the universe file's text."""
        from bot.config import bundled_universe_file

        data = self.settings.model_dump(mode="json")
        universe = self.settings.universe_file or bundled_universe_file()
        return {"strategy": data["strategy"], "risk": data["risk"], "paper": data["paper"],
                "replay": {k: data["replay"][k] for k in ("warmup_days", "step_days")},
                "universe": _digest(Path(universe).read_bytes())}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _data_digest(data_dir: Path | None) -> str:
    """A digest of the replay files' names and sizes: cheap, and enough to tell data sets
    apart (the bundled sample when no directory is given)."""
    from bot.sources.replay import bundled_sample_dir

    root = Path(data_dir or bundled_sample_dir())
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.csv")):
        h.update(f"{path.relative_to(root)}:{path.stat().st_size};".encode())
    return h.hexdigest()[:16]


@retry(retry=retry_if_exception_type((IntegrityError, ProgrammingError)),
       stop=stop_after_attempt(5), wait=wait_random(0.2, 1.0), reraise=True)
def _storage(plan: StudyPlan, engine_kwargs: dict[str, Any]) -> RDBStorage:
    """Optuna's storage, its tables created on first use. Workers started together on an
    empty database race to create them and all but one fail on a duplicate; by the retry the
    tables exist and the others just use them."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return RDBStorage(
        plan.storage_url, engine_kwargs=engine_kwargs,
        heartbeat_interval=plan.heartbeat_seconds, grace_period=3 * plan.heartbeat_seconds,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))


def _worker_seed(plan: StudyPlan, worker: int) -> int:
    existing = 0
    try:
        summaries = optuna.get_all_study_summaries(storage=_storage(plan, _engine_kwargs(plan)))
        existing = next((s.n_trials for s in summaries if s.study_name == plan.study_name), 0)
    except KeyError:
        existing = 0
    material = f"{plan.seed}:{socket.gethostname()}:{worker}:{existing}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "big")


def _engine_kwargs(plan: StudyPlan) -> dict[str, Any]:
    if plan.storage_url.startswith("sqlite"):
        # Local workers share one file: wait for its lock instead of failing.
        return {"connect_args": {"timeout": 60}}
    # A pooled connection the server dropped would stop the heartbeat thread (it does not
    # retry), and the trial would be taken for dead while it runs.
    return {"pool_pre_ping": True}


def open_study(plan: StudyPlan, worker: int = 0) -> optuna.Study:
    """Create the study or join it; refuse a study made for another search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = _storage(plan, _engine_kwargs(plan))
    # TPE's first trials are random draws from the seed alone: the same seed on two machines
    # (or on a rerun) would propose the same parameters again. Host, local worker and the
    # trials already in the study make each worker's stream its own, still reproducible for
    # one fresh run on one machine.
    seed = None if plan.seed is None else _worker_seed(plan, worker)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                         n_startup_trials=min(10, max(2, plan.trials // 4)))
    study = optuna.create_study(study_name=plan.study_name, storage=storage,
                                sampler=sampler, direction="maximize", load_if_exists=True)
    wanted = json.loads(json.dumps(plan.fingerprint()))  # as the storage gives it back
    stored = study.user_attrs.get("plan")
    if stored is None:
        study.set_user_attr("plan", wanted)
        # Two different commands creating the study at once: the last write wins and the
        # other is refused here, rather than both running on one study.
        stored = optuna.load_study(study_name=plan.study_name,
                                   storage=storage).user_attrs.get("plan")
    if stored != wanted:
        differs = sorted(k for k in wanted if (stored or {}).get(k) != wanted[k])
        raise StudyMismatch(f"--study {plan.study_name}: this study was created with other "
                            f"{', '.join(differs)}; use another --study name or the same "
                            "command")
    return study


def suggest(trial: Trial, space: SearchSpace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for p in space.params:
        if isinstance(p, Choice):
            # Optuna stores choices as JSON-able scalars; lists go by their index.
            plain = all(isinstance(c, str | int | float | bool) for c in p.choices)
            if plain:
                values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
            else:
                index = trial.suggest_categorical(p.key, list(range(len(p.choices))))
                values[p.key] = p.choices[index]
        elif isinstance(p, Range) and p.integer:
            values[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high),
                                              step=int(p.step or 1), log=p.log)
        else:
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
    return values


def trial_values(trial: FrozenTrial, space: SearchSpace) -> dict[str, Any]:
    """The configuration values a finished trial ran with (list choices decoded)."""
    out: dict[str, Any] = {}
    for p in space.params:
        if p.key not in trial.params:
            continue
        value = trial.params[p.key]
        if isinstance(p, Choice) and not all(isinstance(c, str | int | float | bool)
                                             for c in p.choices):
            value = p.choices[int(value)]
        out[p.key] = value
    return out


def is_surplus(t: FrozenTrial) -> bool:
    """Asked for when the study was full: never evaluated. (A queued copy of a killed trial
    inherits its attributes, so only a pruned trial with the mark is a surplus.)"""
    return t.state is TrialState.PRUNED and bool(t.user_attrs.get(SURPLUS))


def holds_place(t: FrozenTrial) -> bool:
    """Finished (counted towards N), running or queued; not a surplus or a failure."""
    if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE):
        return True
    return t.state is TrialState.PRUNED and INVALID in t.user_attrs


def is_finished(t: FrozenTrial) -> bool:
    return t.state is TrialState.COMPLETE or (t.state is TrialState.PRUNED
                                              and INVALID in t.user_attrs)


def _fold_record(r: FoldResult) -> dict[str, Any]:
    return {"index": r.fold.index, "score": r.score, "test": asdict(r.test),
            "train": asdict(r.train)}


def make_objective(plan: StudyPlan, log: Any,
                   current: dict[str, int] | None = None) -> Callable[[Trial], float]:
    """The trial function; ``current`` (if given) is told the number of the trial running."""

    def objective(trial: Trial) -> float:
        if current is not None:
            current["number"] = trial.number
        trials = trial.study.get_trials(deepcopy=False)
        ahead = sum(1 for t in trials if t.number < trial.number and holds_place(t))
        if ahead >= plan.trials:
            trial.set_user_attr(SURPLUS, True)
            raise optuna.TrialPruned(f"the study already has {plan.trials} trials")
        if trial.user_attrs.get(SURPLUS):
            trial.set_user_attr(SURPLUS, False)  # a copy inherited the mark; this one runs
        values = suggest(trial, plan.space)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            settings = apply_values(plan.settings, values)
        except ConfigError as exc:
            trial.set_user_attr(INVALID, "; ".join(exc.lines))
            log.info("optimize.trial_invalid", number=trial.number, reason=exc.lines)
            raise optuna.TrialPruned("invalid combination") from None
        log.info("optimize.trial_started", number=trial.number, params=values)
        started = time.monotonic()
        results = [run_fold(settings, fold, plan.space.objective, QuietLog(),
                            data_dir=plan.data_dir) for fold in plan.folds]
        value = aggregate([r.score for r in results], plan.space.objective.aggregate)
        trial.set_user_attr("folds", [_fold_record(r) for r in results])
        trial.set_user_attr("oos_returns", [x for r in results for x in r.test_returns])
        trial.set_user_attr("oos_days", [str(d) for r in results for d in r.test_days])
        log.info("optimize.trial_finished", number=trial.number, value=round(value, 6),
                 folds=[round(r.score, 4) for r in results], params=values,
                 seconds=round(time.monotonic() - started, 2))
        return value

    return objective


def progress_line(study: optuna.Study, total: int) -> str:
    trials = study.get_trials(deepcopy=False)
    done = sum(1 for t in trials if is_finished(t))
    complete = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    best = max((t.value for t in complete if t.value is not None), default=None)
    width = 30
    filled = int(width * min(done, total) / total) if total else width
    shown = "-" if best is None else f"{best:.3f}"
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} trials, best {shown}"


def run_worker(plan: StudyPlan, worker: int = 0, poll_seconds: float = 1.0) -> int:
    """Run trials until the study holds ``plan.trials`` finished ones; 0 when it does, 1 when
    a trial raised (the error is logged; the trial stays failed and is not counted)."""
    configure_logging("info", plan.log_format)
    register_secrets([*plan.settings.secret_values(), *url_secrets(plan.storage_url)])
    log = get_logger(worker=worker)
    study = open_study(plan, worker)
    current: dict[str, int] = {}
    objective = make_objective(plan, log, current)
    tty = sys.stderr.isatty() and worker == 0
    while True:
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, requeued
        trials = study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if is_finished(t))
        if finished >= plan.trials:
            break
        waiting = sum(1 for t in trials if t.state is TrialState.WAITING)
        if waiting == 0 and sum(1 for t in trials if holds_place(t)) >= plan.trials:
            time.sleep(poll_seconds)  # the rest are running elsewhere (or about to go stale)
            continue
        current.clear()
        try:
            study.optimize(objective, n_trials=1, catch=())
        except Exception as exc:
            number = current.get("number")
            if number is not None and _taken_over(study, number):
                # Our heartbeat went quiet (a dropped connection, a suspended machine) and
                # another worker failed the trial and queued its copy: theirs counts.
                log.warning("optimize.trial_taken_over", number=number,
                            error_type=type(exc).__name__)
                continue
            log.error("optimize.trial_failed", number=number, error=str(exc),
                      error_type=type(exc).__name__)
            return 1
        if tty:
            sys.stderr.write(progress_line(study, plan.trials))
            sys.stderr.flush()
    if tty:
        sys.stderr.write(progress_line(study, plan.trials) + "\n")
    log.info("optimize.worker_done", trials=plan.trials)
    return 0


def _taken_over(study: optuna.Study, number: int) -> bool:
    return any(t.system_attrs.get("failed_trial") == number
               or number in (t.system_attrs.get("retry_history") or [])
               for t in study.get_trials(deepcopy=False))


def finished_count(plan: StudyPlan) -> int:
    return sum(1 for t in open_study(plan).get_trials(deepcopy=False) if is_finished(t))


def run_workers(plan: StudyPlan, jobs: int, log: Any = None) -> int:
    """``jobs`` local workers: this process and ``jobs - 1`` new ones on the same storage."""
    if jobs <= 1:
        return run_worker(plan)
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_entry, args=(plan, i), daemon=False)
             for i in range(1, jobs)]
    open_study(plan)  # create it once, before the others join
    for p in procs:
        p.start()
    code = run_worker(plan, 0)
    for i, p in enumerate(procs, start=1):
        p.join()
        if p.exitcode and log is not None:
            log.warning("optimize.worker_exited", worker=i, exit_code=p.exitcode)
    # Judged by the study, not by exit codes: a worker killed on the way (its trial retried
    # by the others) loses nothing when the study still holds its N trials.
    return 0 if finished_count(plan) >= plan.trials else (code or 1)


def _worker_entry(plan: StudyPlan, worker: int) -> None:
    try:
        code = run_worker(plan, worker)
    except KeyboardInterrupt:
        code = 130  # the parent says so once; the trial in flight is failed, not lost
    raise SystemExit(code)


__all__ = ["INVALID", "SURPLUS", "StudyMismatch", "StudyPlan", "finished_count", "holds_place",
           "is_finished", "is_surplus", "open_study", "run_worker", "run_workers", "suggest",
           "trial_values"]
