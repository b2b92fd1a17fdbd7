"""Random kill -9 trials over multi-cycle demo runs with venue faults (see crash_harness).

CI runs a fixed sample of seeds on each backend (a red CI replays: the seed is in the test
id). The full count runs from ``benchmarks/crash_suite.py``; its figures are in
``docs/reliability.md``. ``SECTORBOT_CRASH_TRIALS=N`` (per backend) and
``SECTORBOT_CRASH_SEED=S`` (first seed) change the sample; ``SECTORBOT_CRASH_REPORT=path``
appends each trial's result as a JSON line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.crash_harness import Trial, run_trial
from tests.pg_server import session_server

TRIALS = int(os.environ.get("SECTORBOT_CRASH_TRIALS", "2"))
FIRST_SEED = int(os.environ.get("SECTORBOT_CRASH_SEED", "1002"))
SEEDS = list(range(FIRST_SEED, FIRST_SEED + TRIALS))


@pytest.mark.process
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_kill_loses_doubles_and_unprotects_nothing(
        seed: int, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    state: Path | str = (tmp_path / "state.sqlite3" if backend == "sqlite"
                         else session_server(request.config).fresh_url())
    trial = Trial.from_seed(seed)
    result = run_trial(trial, tmp_path, state, backend)
    report = os.environ.get("SECTORBOT_CRASH_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(json.dumps(result.to_json(), default=str) + "\n")
    assert result.violations == {}, (trial, result.violations)
    assert result.restart_code == 0
    assert result.order_requests > 0, "the trial sent no order: it checks nothing"
