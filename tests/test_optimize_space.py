"""The search space file and the fold layout: refused before any trial runs, with the reason."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.optimize.folds import MIN_TEST_DAYS, FoldError, holdout_window, walk_forward
from bot.optimize.space import Choice, Range, apply_values, load_space
from tests.daemon_proc import run_cli


def space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_space(space_file(tmp_path, text), load_settings(None))
    return err.value.lines


def test_a_valid_space_parses_each_kind(tmp_path: Path) -> None:
    space = load_space(space_file(tmp_path, """
[params]
"strategy.rotation_threshold" = { low = 0.3, high = 1.2 }
"strategy.exit_confirmations" = { low = 1, high = 5 }
"risk.stop_loss_pct" = { low = 4, high = 15, step = 1 }
"strategy.stop_mode" = { choices = ["percent", "atr"] }
"strategy.momentum_lookbacks" = { choices = [[7, 14, 28], [14, 28]] }
[objective]
metric = "sortino"
aggregate = "min"
turnover_penalty = 0
"""), load_settings(None))
    by_key = {p.key: p for p in space.params}
    assert by_key["strategy.exit_confirmations"] == Range("strategy.exit_confirmations", 1, 5,
                                                          integer=True)
    assert by_key["risk.stop_loss_pct"] == Range("risk.stop_loss_pct", 4, 15, integer=False,
                                                 step=1)
    assert by_key["strategy.momentum_lookbacks"] == Choice("strategy.momentum_lookbacks",
                                                           ((7, 14, 28), (14, 28)))
    assert (space.objective.metric, space.objective.aggregate) == ("sortino", "min")
    assert space.objective.turnover_penalty == 0.0


def test_unknown_keys_and_sections_are_refused_by_name(tmp_path: Path) -> None:
    lines = problems(tmp_path, """
[params]
"strategy.rotation_treshold" = { low = 0.3, high = 1.2 }
"paper.starting_cash" = { low = 1000, high = 2000 }
"strategy.max_leverage" = { low = 1, high = 3 }
[objective]
metric = "profit"
bonus = 1
""")
    assert "space: params.'strategy.rotation_treshold': unknown key" in lines
    assert any("paper.starting_cash" in li and "only strategy and risk" in li for li in lines)
    assert any("strategy.max_leverage" in li and "risk.max_leverage" in li for li in lines)
    assert any(li.startswith("space: objective.metric: must be one of") for li in lines)
    assert "space: objective.bonus: unknown key" in lines


def test_a_range_outside_the_keys_own_bounds_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, """
[params]
"risk.max_leverage" = { low = 2, high = 6 }
"risk.stop_loss_pct" = { low = -1, high = 10 }
"strategy.exit_confirmations" = { low = 1.5, high = 4 }
"strategy.stop_mode" = { low = 1, high = 2 }
"strategy.rotation_threshold" = { low = 1.0, high = 0.5 }
""")
    assert any("'risk.max_leverage': 6.0 is refused: risk.max_leverage: Input should be less "
               "than or equal to 5" in li for li in lines)
    assert any("'risk.stop_loss_pct': -1.0 is refused" in li for li in lines)
    assert any("exit_confirmations" in li and "whole number" in li for li in lines)
    assert any("strategy.stop_mode" in li and "give choices" in li for li in lines)
    assert any("rotation_threshold" in li and "must be below high" in li for li in lines)
    assert all(li.startswith("space: ") for li in lines)


def test_a_bound_that_depends_on_another_searched_key_is_left_to_the_trials(
        tmp_path: Path) -> None:
    """cycle_bonus must stay below rotation_threshold: fatal when the threshold is fixed,
    a per-trial check when both are searched."""
    alone = problems(tmp_path, '[params]\n"strategy.cycle_bonus" = { low = 0.1, high = 0.9 }\n')
    assert any("cycle_bonus" in li and "rotation_threshold" in li for li in alone)
    both = load_space(space_file(tmp_path, """
[params]
"strategy.cycle_bonus" = { low = 0.1, high = 0.9 }
"strategy.rotation_threshold" = { low = 0.3, high = 1.2 }
"""), load_settings(None))
    assert both.keys == ("strategy.cycle_bonus", "strategy.rotation_threshold")
    with pytest.raises(ConfigError, match="cycle_bonus"):
        apply_values(load_settings(None), {"strategy.cycle_bonus": 0.8,
                                           "strategy.rotation_threshold": 0.4})


def test_a_key_overridden_by_the_environment_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__STRATEGY__ROTATION_THRESHOLD", "0.7")
    lines = problems(tmp_path, '[params]\n"strategy.rotation_threshold" = '
                               '{ low = 0.3, high = 1.2 }\n')
    assert any("SECTORBOT__STRATEGY__ROTATION_THRESHOLD is set" in li for li in lines)


def test_applied_values_are_validated_like_a_config(tmp_path: Path) -> None:
    base = load_settings(None)
    tried = apply_values(base, {"risk.max_leverage": 4.0, "strategy.momentum_lookbacks":
                                (14, 28)})
    assert tried.risk.max_leverage == 4.0 and tried.strategy.max_leverage == 4.0
    assert tried.strategy.momentum_lookbacks == (14, 28)
    assert base.risk.max_leverage == 3.0
    with pytest.raises(ConfigError, match=r"risk\.max_leverage"):
        apply_values(base, {"risk.max_leverage": 5.5})


def test_cli_refuses_a_bad_space_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    space = space_file(tmp_path, '[params]\n"risk.max_leverage" = { low = 1, high = 8 }\n'
                                 '"strategy.nope" = { low = 1, high = 2 }\n')
    out = tmp_path / "out"
    done = run_cli(["optimize", "--space", str(space), "--trials", "3", "--out", str(out)],
                   tmp_path / "state.sqlite3", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert any("risk.max_leverage" in li and "less than or equal to 5" in li for li in lines)
    assert "config error: space: params.'strategy.nope': unknown key" in lines
    assert not out.exists()


def test_cli_refuses_windows_that_do_not_fit_and_a_storage_it_cannot_use(
        tmp_path: Path) -> None:
    space = space_file(tmp_path, '[params]\n"strategy.exit_confirmations" = '
                                 '{ low = 1, high = 4 }\n')
    base = ["optimize", "--space", str(space), "--trials", "3", "--out", str(tmp_path / "o")]
    short = run_cli([*base, "--start", "2023-01-01", "--end", "2023-02-10", "--folds", "4"],
                    tmp_path / "s", cwd=tmp_path)
    assert short.returncode == 2 and "--folds: 4 folds over 41 searchable days" in short.stderr
    bad = run_cli([*base, "--storage", "mysql://user:hunter2@db/x"], tmp_path / "s",
                  cwd=tmp_path)
    assert bad.returncode == 2 and "unsupported scheme 'mysql'" in bad.stderr
    assert "hunter2" not in bad.stderr + bad.stdout
    late = run_cli([*base, "--holdout-from", "2030-01-01"], tmp_path / "s", cwd=tmp_path)
    assert late.returncode == 2 and "--holdout-from: 2030-01-01 leaves under" in late.stderr


# ------------------------------------------------------------------------------------ folds


@pytest.mark.parametrize("scheme", ["rolling", "anchored"])
@pytest.mark.parametrize(("span", "k"), [(100, 1), (400, 4), (1011, 4), (365, 6), (90, 5)])
def test_test_windows_tile_the_end_of_the_period_and_train_before_them(
        scheme: str, span: int, k: int) -> None:
    first = date(2022, 3, 1)
    last = first + timedelta(days=span - 1)
    folds = walk_forward(first, last, k, scheme)  # type: ignore[arg-type]
    assert len(folds) == k and folds[-1].test_end == last
    lengths = {f.test_days for f in folds}
    assert len(lengths) == 1 and lengths.pop() >= MIN_TEST_DAYS
    for a, b in pairwise(folds):
        assert b.test_start == a.test_end + timedelta(days=1)
    for f in folds:
        assert first <= f.train_start < f.test_start <= f.test_end <= last
        if scheme == "anchored":
            assert f.train_start == first
        else:
            assert f.train_days <= f.test_days


def test_train_days_zero_means_test_windows_only() -> None:
    folds = walk_forward(date(2023, 1, 1), date(2023, 12, 31), 3, train_days=0)
    assert all(f.train_start == f.test_start and f.train_days == 0 for f in folds)
    with pytest.raises(FoldError, match="--train-days"):
        walk_forward(date(2023, 1, 1), date(2023, 12, 31), 3, train_days=-1)


def test_folds_too_short_and_holdouts_out_of_range_are_refused() -> None:
    with pytest.raises(FoldError, match="at least 14 days"):
        walk_forward(date(2023, 1, 1), date(2023, 2, 1), 4)
    with pytest.raises(FoldError, match="at least 1"):
        walk_forward(date(2023, 1, 1), date(2024, 1, 1), 0)
    with pytest.raises(FoldError, match="nothing to search"):
        holdout_window(date(2023, 1, 1), date(2022, 6, 1), date(2024, 1, 1))
    assert holdout_window(date(2023, 1, 1), date(2023, 6, 1), date(2024, 1, 1)) == (
        date(2023, 6, 1), date(2024, 1, 1))
