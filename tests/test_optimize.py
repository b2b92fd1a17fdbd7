"""``sectorbot optimize`` end to end: folds that cannot see the future, a study that ends with
exactly N trials however many workers share it, resumes, and files a user can act on."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bot.config import load_settings
from bot.optimize.evaluate import run_fold
from bot.optimize.folds import Fold
from bot.optimize.space import Objective, apply_values, load_space
from bot.optimize.study import QuietLog, StudyPlan, open_study
from bot.sources.replay import bundled_sample_dir, close_time
from tests.browser import screenshot_bytes
from tests.daemon_proc import env_for, events, named, run_cli
from tests.pg_server import session_server

FOLD = Fold(0, train_start=date(2023, 1, 20), test_start=date(2023, 2, 10),
            test_end=date(2023, 3, 1))
SPACE = """
[params]
"strategy.rotation_threshold" = { low = 0.3, high = 1.2 }
"strategy.exit_confirmations" = { low = 1, high = 5 }
"strategy.stop_mode" = { choices = ["percent", "atr"] }
"strategy.momentum_lookbacks" = { choices = [[7, 14, 28], [14, 28]] }
"""
WINDOW = ["--start", "2023-01-01", "--end", "2023-02-28", "--folds", "2"]


def planted(tmp_path: Path, after: date) -> Path:
    """The bundled sample with a spike in everything dated after ``after``: prices x10,
    sector metrics x10, funding at 5 % a settlement."""
    root = tmp_path / f"spike-after-{after}"
    shutil.copytree(bundled_sample_dir(), root)
    limit = close_time(after)
    for path in sorted(root.rglob("*.csv")):
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = line.split(",")
            if line.startswith("#") or not line.strip() or cells[0] in ("date", "timestamp"):
                out.append(line)
                continue
            if path.parent.name == "funding":
                if _stamp(cells[0]) > limit:
                    cells[1] = "0.05"
            elif date.fromisoformat(cells[0]) > after:
                cols = range(1, 5) if path.parent.name == "ohlcv" else range(3, 4)
                for i in cols:
                    cells[i] = str(Decimal(cells[i]) * 10)
            out.append(",".join(cells))
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return root


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_fold_never_reads_data_after_its_test_window(tmp_path: Path) -> None:
    """A spike planted the day after the test window changes nothing in the fold's result;
    the same spike from the window's last day on does (so the test can see a leak)."""
    settings = load_settings(None)
    clean = run_fold(settings, FOLD, Objective(), QuietLog())
    later = run_fold(settings, FOLD, Objective(), QuietLog(),
                     data_dir=planted(tmp_path, FOLD.test_end))
    assert clean.test_returns and clean.test.trades > 0
    assert later == clean
    inside = run_fold(settings, FOLD, Objective(), QuietLog(),
                      data_dir=planted(tmp_path, date(2023, 2, 28)))
    assert inside.test_returns[:-1] == clean.test_returns[:-1]
    assert inside.test_returns[-1] != clean.test_returns[-1]
    assert inside.test_days[-1] == FOLD.test_end


def test_the_test_window_is_scored_alone(tmp_path: Path) -> None:
    """The training window's run-in is reported but never enters the score."""
    settings = load_settings(None)
    result = run_fold(settings, FOLD, Objective(turnover_penalty=0, drawdown_penalty=0),
                      QuietLog())
    assert len(result.test_returns) == FOLD.test_days
    assert result.test_days[0] == FOLD.test_start
    assert result.score == pytest.approx(result.test.sharpe)
    assert result.train.sharpe != result.test.sharpe


def test_a_kill_switch_tripped_in_training_does_not_leave_the_test_window_in_cash() -> None:
    """The kill switch latches until a person resumes. Run through from the training start,
    a trip in training left every later test window flat, scoring the trip instead of the
    parameters (the first search over the bundled data scored 0.0 on most folds)."""
    settings = apply_values(load_settings(None), {"risk.max_drawdown_pct": 2.0})
    result = run_fold(settings, FOLD, Objective(), QuietLog())
    assert result.train.max_drawdown >= 0.02  # it did trip in training
    assert result.test.trades > 0 and any(r != 0 for r in result.test_returns)


def _optimize(tmp_path: Path, out: Path, *extra: str, timeout: float = 400,
              **env: str) -> subprocess.CompletedProcess[str]:
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    return run_cli(["optimize", "--space", str(space), "--out", str(out), *WINDOW, *extra],
                   tmp_path / "unused.sqlite3", cwd=tmp_path, timeout=timeout, **env)


def test_a_local_search_writes_files_a_user_can_act_on_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _optimize(tmp_path, out, "--trials", "3", "--seed", "7", "--jobs", "2",
                     "--holdout-from", "2023-03-01")
    assert done.returncode == 0, done.stderr[-3000:]
    finished = named(events(done.stdout), "optimize.trial_finished")
    assert sorted(e["number"] for e in finished) == [0, 1, 2]
    assert {e["worker"] for e in finished} <= {0, 1}
    rows = list(csv.DictReader((out / "trials.csv").open(encoding="utf-8")))
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert all(r["fold0_score"] and r["fold1_score"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    assert best["objective"] == max(float(r["value"]) for r in rows)
    assert set(summary["guards"]) >= {"deflated_sharpe", "pbo", "trials"}
    assert 0.0 <= summary["guards"]["deflated_sharpe"]["probability"] <= 1.0
    assert summary["holdout"]["period"].startswith("2023-03-01")
    assert (out / "holdout" / "report.html").exists()
    # best.toml is a config the daemon loads, holding exactly the chosen values.
    chosen = load_settings(out / "best.toml")
    for key, value in best["params"].items():
        section, name = key.split(".")
        got = getattr(getattr(chosen, section), name)
        assert (list(got) if isinstance(got, tuple) else got) == value
    html = (out / "report.html").read_text()
    assert "Best trials, fold by fold" in html and "probability of backtest overfitting" in html
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        assert screenshot_bytes(out / "report.html", tmp_path) > 50_000
    # Run again: the study already holds 3 trials, so nothing new is evaluated.
    # Other folds are another search: refused, so two layouts never mix in one study.
    again = _optimize(tmp_path, out, "--trials", "3", "--seed", "7", "--folds", "3")
    assert again.returncode == 2 and "created with other folds" in again.stderr
    same = _optimize(tmp_path, out, "--trials", "3", "--seed", "7",
                     "--holdout-from", "2023-03-01")
    assert same.returncode == 0, same.stderr[-3000:]
    assert named(events(same.stdout), "optimize.trial_started") == []
    more = _optimize(tmp_path, out, "--trials", "4", "--seed", "7",
                     "--holdout-from", "2023-03-01")
    assert more.returncode == 0
    assert [e["number"] for e in named(events(more.stdout), "optimize.trial_finished")] == [3]


def test_two_workers_on_postgresql_finish_exactly_n_and_survive_a_killed_worker(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Two processes share one PostgreSQL study. One is killed in the middle of a trial; the
    other fails it once its heartbeat is stale, runs its copy, and the study ends with exactly
    N complete trials, none evaluated to the end twice."""
    url = session_server(request.config).fresh_url()
    trials = 6
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    env = env_for(tmp_path / "unused.sqlite3", SECTORBOT_OPTIMIZE_STORAGE=url)
    cmd = [sys.executable, "-m", "bot", "optimize", "--space", str(space), "--trials",
           str(trials), "--study", "shared", "--heartbeat", "1", *WINDOW]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [subprocess.Popen([*cmd, "--out", str(tmp_path / name)], cwd=tmp_path, env=env,
                              stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
             for name, log in zip(("a", "b"), logs, strict=True)]
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.2)
            started = named(_read(logs[0]), "optimize.trial_started")
            if started:
                victim = started[0]["number"]
        assert victim is not None, logs[0].read_text()[-2000:]
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=10)
        assert procs[1].wait(timeout=400) == 0, logs[1].read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    study = optuna.load_study(study_name="shared", storage=url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    every = [(t.number, t.state.name, t.system_attrs, t.user_attrs.get("worker"))
             for t in study.get_trials()]
    context = f"victim {victim}: {every}\n{logs[1].read_text()[-3000:]}"
    assert len(done) == trials, context
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [victim], context
    retry = [t for t in done if t.system_attrs.get("failed_trial") == victim]
    assert len(retry) == 1 and retry[0].params == failed[0].params
    finished = [e["number"] for log in logs for e in named(_read(log), "optimize.trial_finished")]
    assert sorted(finished) == sorted(t.number for t in done)  # each evaluated to the end once
    assert victim not in finished
    # A worker started now finds the study complete: it evaluates nothing and reports.
    late = subprocess.run([*cmd, "--out", str(tmp_path / "c")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert late.returncode == 0, late.stderr[-2000:]
    assert named(events(late.stdout), "optimize.trial_started") == []
    rows = list(csv.DictReader((tmp_path / "c" / "trials.csv").open(encoding="utf-8")))
    assert sorted(r["state"] for r in rows) == ["complete"] * trials + ["fail"]
    assert url.split("@")[0] not in late.stdout + late.stderr


def _read(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def test_workers_starting_together_on_an_empty_database_all_join_one_study(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Optuna creates its tables on first use; four workers doing so at the same instant
    raced to a duplicate-key error (seen as a flaky two-worker test) and three died."""
    url = session_server(request.config).fresh_url()
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    settings = load_settings(None)
    plan = StudyPlan(settings=settings, space=load_space(space, settings), folds=(FOLD,),
                     trials=2, storage_url=url, study_name="together")
    barrier = threading.Barrier(4)
    errors: list[str] = []

    def join() -> None:
        barrier.wait()
        try:
            open_study(plan)
        except Exception as exc:  # collected, then asserted empty
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    threads = [threading.Thread(target=join) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [s.study_name for s in optuna.get_all_study_summaries(storage=url)] == ["together"]
