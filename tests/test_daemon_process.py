"""The daemon as a process: a full cycle, rotation over 30 cycles, SIGTERM, resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_proc import env_for, events, named, run_cli

pytestmark = pytest.mark.process


def test_once_runs_a_full_cycle_and_writes_state(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    proc = run_cli(["run", "--once"], state, tmp_path)
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    for name in ("daemon.started", "cycle.started", "signals.refreshed", "decision.made",
                 "cycle.completed", "daemon.stopped"):
        assert named(evs, name), f"missing {name}"
    assert all({"timestamp", "level", "event"} <= set(e) for e in evs)
    assert named(evs, "order.filled"), "the first cycle allocates the paper account"
    assert state.exists()
    assert (state.stat().st_mode & 0o777) == 0o600


def test_thirty_cycles_rotate_and_status_shows_positions(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    proc = run_cli(["run", "--cycles", "30"], state, tmp_path)
    assert proc.returncode == 0, proc.stderr
    evs = events(proc.stdout)
    assert len(named(evs, "cycle.completed")) == 30
    rotations = {e["rotation"] for e in named(evs, "decision.made") if e.get("rotation")}
    assert rotations, "expected at least one rotation on the bundled data within 30 cycles"
    from bot.store.repo import StateStore

    store = StateStore(state)
    try:
        # What each decision saw is kept, and every funding settlement on the paper perps.
        snapshot = store.signal_snapshot()
        assert snapshot is not None and snapshot.payload["closes"]["BTC"] is not None
        assert len(store.decisions()) == 30
    finally:
        store.close()
    status = run_cli(["status"], state, tmp_path)
    assert status.returncode == 0, status.stderr
    assert "equity:" in status.stdout
    spot_lines = [ln for ln in status.stdout.splitlines() if ln.startswith("spot ")]
    assert len(spot_lines) >= 3
    explain = run_cli(["explain"], state, tmp_path)
    assert explain.returncode == 0, explain.stderr
    assert "Sector scores" in explain.stdout
    # Targets are grouped by bucket and sector, which needs the universe the CLI loads.
    target_rows = [ln.split() for ln in explain.stdout.splitlines()
                   if ln.strip().startswith(("core ", "rotational ", "speculative "))]
    assert any(row[:2] == ["core", "CORE"] for row in target_rows), explain.stdout


def test_sigterm_exits_zero_and_a_second_run_resumes(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=tmp_path,
                            env=env_for(state, SECTORBOT__REPLAY__TICK_SECONDS="0.05"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.count('"cycle.completed"') and sum('"cycle.completed"' in s for s in seen) >= 3:
            break
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=15)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 0, err
    evs = events("".join(seen) + out)
    stopped = named(evs, "daemon.stopped")
    assert stopped and stopped[-1]["clean"] is True
    cursor = stopped[-1]["cursor"]
    completed = named(evs, "cycle.completed")
    assert completed[-1]["as_of"] == cursor

    again = run_cli(["run", "--once"], state, tmp_path)
    assert again.returncode == 0, again.stderr
    evs2 = events(again.stdout)
    assert named(evs2, "daemon.started")[0]["resumed_at"] == cursor
    first = named(evs2, "cycle.started")[0]["as_of"]
    assert first > cursor


def test_invalid_leverage_exits_2_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[risk]\nmax_leverage = 10\n")
    state = tmp_path / "state.sqlite3"
    proc = run_cli(["run", "--once", "--config", str(cfg)], state, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[0].startswith("config error: risk.max_leverage:")
    assert proc.stdout == ""
    assert not state.exists()


def test_a_replay_tick_shorter_than_a_step_skips_nothing_and_warns_nothing(
        tmp_path: Path) -> None:
    """With a tick far below a step's duration, a fixed-interval job kept finding itself
    still running: the scheduler skipped it and warned every time (150k+ lines a run).
    Paced jobs run every step of the period once, in order, with no such warning."""
    state = tmp_path / "state.sqlite3"
    proc = run_cli(["run"], state, tmp_path, SECTORBOT__REPLAY__TICK_SECONDS="0.001",
                   SECTORBOT__REPLAY__START="2021-03-01", SECTORBOT__REPLAY__END="2021-03-20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "maximum number of running instances" not in output
    evs = events(proc.stdout)
    days = [e["as_of"][:10] for e in named(evs, "cycle.completed")]
    assert days == [f"2021-03-{d:02d}" for d in range(1, 22)]  # through the end day's close
    assert named(evs, "daemon.stopped")[-1]["clean"] is True
