"""Regressions from the review of `sectorbot optimize` (each failed on the first version)."""

from __future__ import annotations

import threading
import time
import tomllib
from datetime import date
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from bot.config import ConfigError, load_settings
from bot.optimize.cli import without_url
from bot.optimize.folds import Fold
from bot.optimize.outputs import best_toml
from bot.optimize.space import apply_values, load_space
from bot.optimize.study import StudyPlan, _worker_seed, open_study, run_worker
from bot.sources.replay import ReplayData, ReplayDataError, bundled_sample_dir
from tests.daemon_proc import run_cli

SPACE = '[params]\n"strategy.exit_confirmations" = { low = 1, high = 5 }\n'


def _plan(tmp_path: Path, trials: int = 1, seed: int | None = None) -> StudyPlan:
    space_path = tmp_path / "space.toml"
    space_path.write_text(SPACE, encoding="utf-8")
    settings = load_settings(None)
    fold = Fold(0, date(2023, 2, 1), date(2023, 2, 1), date(2023, 2, 20))
    return StudyPlan(settings=settings, space=load_space(space_path, settings), folds=(fold,),
                     trials=trials, storage_url=f"sqlite:///{tmp_path / 'study.sqlite3'}",
                     study_name="review", seed=seed, heartbeat_seconds=1)


def test_best_toml_copies_no_inline_secret_and_names_the_data_searched(tmp_path: Path) -> None:
    base = tmp_path / "conf" / "base.toml"
    base.parent.mkdir()
    base.write_text('universe_file = "sectors.toml"\n[state]\n'
                    'url = "postgresql+psycopg://bot:Sup3rSecret@db/x"\n'
                    '[exchange]\nhttps_proxy = "http://u:Pr0xyPw@proxy:3128"\n'
                    '[risk]\nstop_loss_pct = 9.0\n', encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    text = best_toml({"risk.max_leverage": 4.0}, base, out, tmp_path / "data").read_text()
    assert "Sup3rSecret" not in text and "Pr0xyPw" not in text
    data = tomllib.loads(text)
    assert data["risk"] == {"stop_loss_pct": 9.0, "max_leverage": 4.0}
    assert data["replay"]["data_dir"] == str((tmp_path / "data").absolute())
    assert data["universe_file"] == str(base.parent.absolute() / "sectors.toml")


def test_storage_errors_never_echo_any_part_of_the_credentials() -> None:
    url = "postgresql+psycopg://bot:p@ss:w0rd@db.internal:5432/opt"
    message = ('could not translate host name "ss:w0rd@db.internal" to address; user bot, '
               "password p@ss:w0rd")
    cleaned = without_url(message, url)
    assert "w0rd" not in cleaned and "p@ss" not in cleaned


def test_an_unreachable_storage_or_unusable_out_is_refused_in_one_line(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    base = ["optimize", "--space", str(space), "--trials", "2", "--start", "2023-01-01",
            "--end", "2023-03-31", "--folds", "2"]
    down = run_cli([*base, "--out", str(tmp_path / "o"), "--storage",
                    "postgresql+psycopg://bot:Hunter22pw@127.0.0.1:1/opt"],
                   tmp_path / "s.sqlite3", cwd=tmp_path)
    assert down.returncode == 2, down.stderr[-2000:]
    lines = down.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: --storage: cannot open")
    assert "Hunter22pw" not in down.stderr + down.stdout and "Traceback" not in down.stderr
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    used = run_cli([*base, "--out", str(blocker)], tmp_path / "s.sqlite3", cwd=tmp_path)
    assert used.returncode == 2 and "--out: cannot use" in used.stderr
    weekly = run_cli([*base, "--out", str(tmp_path / "w")], tmp_path / "s.sqlite3",
                     cwd=tmp_path, SECTORBOT__REPLAY__STEP_DAYS="7")
    assert weekly.returncode == 2 and "replay.step_days: optimize needs daily" in weekly.stderr


def test_unquoted_dotted_keys_are_read_as_the_keys_they_name(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text("[params]\nstrategy.rotation_threshold = { low = 0.3, high = 1.2 }\n"
                    'risk.stop_loss_pct = { low = 4, high = 9 }\n', encoding="utf-8")
    assert load_space(path, load_settings(None)).keys == ("strategy.rotation_threshold",
                                                          "risk.stop_loss_pct")


def test_a_value_the_environment_overrides_is_not_recorded_as_tried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = load_settings(None)
    monkeypatch.setenv("sectorbot__strategy__exit_confirmations", "2")  # other case
    with pytest.raises(ConfigError, match="exit_confirmations"):
        apply_values(base, {"strategy.exit_confirmations": 4})


def test_a_seed_gives_each_worker_and_each_rerun_its_own_stream(tmp_path: Path) -> None:
    plan = _plan(tmp_path, seed=3)
    first = {_worker_seed(plan, 0), _worker_seed(plan, 1)}
    assert len(first) == 2
    study = open_study(plan)
    study.enqueue_trial({"strategy.exit_confirmations": 2})
    assert _worker_seed(plan, 0) not in first  # a rerun does not replay the same draws


def test_replay_end_before_the_data_says_so() -> None:
    with pytest.raises(ReplayDataError, match="before the data starts"):
        ReplayData.load(bundled_sample_dir(), until=date(2019, 1, 1))


def test_a_worker_whose_trial_was_taken_over_carries_on(tmp_path: Path) -> None:
    """Its heartbeat went quiet and another worker failed the trial and queued a copy: the
    first worker's tell then fails. It used to stop with exit 1 (no files written); it now
    logs the take-over and runs the copy."""
    plan = _plan(tmp_path, trials=1)
    study = open_study(plan)
    storage = study._storage

    def take_over() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running:
                storage.set_trial_state_values(running[0]._trial_id, state=TrialState.FAIL)
                RetryHeartbeatStaleTrialCallback()(study, storage.get_trial(
                    running[0]._trial_id))
                return
            time.sleep(0.05)

    thief = threading.Thread(target=take_over)
    thief.start()
    code = run_worker(plan)
    thief.join()
    assert code == 0
    trials = optuna.load_study(study_name="review", storage=plan.storage_url).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].system_attrs["failed_trial"] == 0
