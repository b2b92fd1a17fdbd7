"""A state store the command cannot use is refused in one line (exit 2), before anything is
started, locked or logged, and the file is left byte for byte as it was (issue #17).

The stores are real: one made by ``sectorbot run --cycles 3``, then damaged the way disks,
copies and operators damage them."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.preflight import StateFileError, check_target
from tests import unprivileged

STATE_COMMANDS = [["run", "--once"], ["status"], ["explain"], ["resume"]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store three paper cycles wrote, closed cleanly (no -wal left)."""
    work = tmp_path_factory.mktemp("made")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTORBOT__")}
    done = subprocess.run([sys.executable, "-m", "bot", "run", "--cycles", "3"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    store = work / "state" / "sectorbot.sqlite3"
    assert store.stat().st_size > 8 * 4096
    return store


@pytest.fixture
def state_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SECTORBOT__STATE__PATH pointing into tmp_path; returns the path."""
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    path = tmp_path / "state" / "sectorbot.sqlite3"
    path.parent.mkdir()
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(path))
    return path


def one_config_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", STATE_COMMANDS, ids=lambda c: c[0])
def test_random_bytes_are_not_a_store(command: list[str], state_env: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    state_env.write_bytes(os.urandom(50_000).replace(b"SQLite", b"sqlite"))
    before = digest(state_env)
    assert main(command) == 2
    line = one_config_error(capsys.readouterr().err)
    assert f"state.path: {state_env} is not a SQLite database" in line
    assert digest(state_env) == before
    assert sorted(p.name for p in state_env.parent.iterdir()) == [state_env.name]


def damage_a_middle_page(store: Path) -> None:
    pages = store.stat().st_size // 4096
    with store.open("r+b") as fh:
        fh.seek(4096 * (pages // 2))
        fh.write(b"\xde\xad\xbe\xef" * 1024)


@pytest.mark.parametrize("command", STATE_COMMANDS, ids=lambda c: c[0])
def test_a_damaged_page_is_reported_and_left_alone(command: list[str], real_store: Path,
                                                   state_env: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(real_store, state_env)
    damage_a_middle_page(state_env)
    before = digest(state_env)
    assert main(command) == 2
    line = one_config_error(capsys.readouterr().err)
    assert f"state.path: {state_env} is damaged (SQLite quick_check:" in line
    assert "restore it from a backup" in line
    assert digest(state_env) == before


def test_the_daemon_process_refuses_a_damaged_store_before_it_starts(real_store: Path,
                                                                    tmp_path: Path) -> None:
    """The CLI entry point end to end: exit 2, one line, no traceback, no daemon.started."""
    store = tmp_path / "state.sqlite3"
    shutil.copy(real_store, store)
    damage_a_middle_page(store)
    before = digest(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTORBOT__")}
    env["SECTORBOT__STATE__PATH"] = str(store)
    done = subprocess.run([sys.executable, "-m", "bot", "run", "--once"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    one_config_error(done.stderr)
    assert "daemon.started" not in done.stdout + done.stderr
    assert digest(store) == before
    assert not store.with_name(store.name + ".lock").exists()


def test_an_empty_file_is_refused_by_run_and_is_no_state_elsewhere(
        state_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 0-byte file is not a fresh account: the daemon used to start one in it silently."""
    state_env.touch()
    assert main(["run", "--once"]) == 2
    line = one_config_error(capsys.readouterr().err)
    assert f"state.path: {state_env} is empty (0 bytes)" in line
    assert "delete the file to start a fresh account" in line
    assert state_env.stat().st_size == 0
    for command in (["status"], ["explain"], ["resume"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"no state yet at {state_env} (the file is empty)"), err
        assert state_env.stat().st_size == 0, command


def kill_after_taking_the_lock(store: Path) -> None:
    """What a first start killed while reaching the venue leaves: the owner lock made an
    empty store file, nothing wrote it."""
    code = ("import os, signal, sys\nfrom pathlib import Path\n"
            "from bot.store.owner import FileOwnerLock\n"
            "FileOwnerLock.acquire(Path(sys.argv[1]), sys.argv[1])\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert store.stat().st_size == 0


def test_an_empty_file_left_by_a_killed_first_start_is_resumed(
        state_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Crash-only: a start killed before its first write must not block the next one (the
    random kill -9 trials kill during the venue's first requests), even twice in a row."""
    kill_after_taking_the_lock(state_env)
    kill_after_taking_the_lock(state_env)
    assert main(["run", "--once"]) == 0, capsys.readouterr().err
    assert state_env.stat().st_size > 0
    assert main(["status"]) == 0


def test_a_read_only_store_can_be_looked_at_but_not_run() -> None:
    with unprivileged.workdir() as work:
        state = work / "state"
        state.mkdir()
        unprivileged.give(state)
        made = unprivileged.run(["run", "--once"], work)
        assert made.returncode == 0, made.stderr[-2000:]
        store = state / "sectorbot.sqlite3"
        store.chmod(0o400)
        before = digest(store)
        for command in (["status"], ["explain"]):
            done = unprivileged.run(command, work)
            assert done.returncode == 0, (command, done.stderr)
        for command in (["run", "--once"], ["resume"]):
            done = unprivileged.run(command, work)
            assert done.returncode == 2, done.stderr
            line = one_config_error(done.stderr)
            assert "state/sectorbot.sqlite3" in line and "is not writable by uid" in line
            assert "daemon.started" not in done.stdout
        assert digest(store) == before


def test_an_unwritable_state_directory_still_shows_status() -> None:
    """``status`` in a read-only directory used to fail: SQLite could not make its -shm."""
    with unprivileged.workdir() as work:
        state = work / "state"
        state.mkdir()
        unprivileged.give(state)
        assert unprivileged.run(["run", "--once"], work).returncode == 0
        store = state / "sectorbot.sqlite3"
        assert not store.with_name(store.name + "-wal").exists()
        before = digest(store)
        state.chmod(0o500)
        for command in (["status"], ["explain"]):
            done = unprivileged.run(command, work)
            assert done.returncode == 0, (command, done.stderr)
        status = unprivileged.run(["status"], work)
        assert "orders:" in status.stdout
        done = unprivileged.run(["run", "--once"], work)
        assert done.returncode == 2
        line = one_config_error(done.stderr)
        assert f"directory {state} is not writable by uid" in line
        assert digest(store) == before


def test_a_state_directory_that_cannot_be_created_is_named() -> None:
    with unprivileged.workdir() as work:
        locked = work / "locked"
        locked.mkdir()
        unprivileged.give(locked)
        locked.chmod(0o500)
        done = unprivileged.run(["run", "--once"], work,
                                {"SECTORBOT__STATE__PATH": str(locked / "s" / "x.sqlite3")})
        assert done.returncode == 2
        line = one_config_error(done.stderr)
        assert f"directory {locked} is not writable" in line


def test_a_directory_as_state_path_is_named(state_env: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    state_env.mkdir()
    for command in (["run", "--once"], ["status"]):
        assert main(command) == 2
        assert "is a directory; point state.path at a file" in one_config_error(
            capsys.readouterr().err)


def test_replay_start_past_the_data_writes_nothing(state_env: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """It used to persist a cursor past the data: that run and every later one did nothing."""
    monkeypatch.setenv("SECTORBOT__REPLAY__START", "2031-01-01")
    assert main(["run", "--once"]) == 2
    line = one_config_error(capsys.readouterr().err)
    assert line.startswith("config error: replay.start: 2031-01-01 is after the last day")
    assert "the replay data covers 2020-06-01..2025-06-30" in line
    assert list(state_env.parent.iterdir()) == []
    monkeypatch.delenv("SECTORBOT__REPLAY__START")
    monkeypatch.setenv("SECTORBOT__REPLAY__WARMUP_DAYS", "3000")
    assert main(["run", "--once"]) == 2
    assert "replay.warmup_days: 3000 days" in one_config_error(capsys.readouterr().err)
    assert list(state_env.parent.iterdir()) == []


def test_a_changed_starting_cash_is_refused_on_an_existing_account(
        state_env: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The setting used to be ignored silently once the account existed."""
    assert main(["run", "--once"]) == 0
    capsys.readouterr()
    before = digest(state_env)
    monkeypatch.setenv("SECTORBOT__PAPER__STARTING_CASH", "5000")
    assert main(["run", "--once"]) == 2
    line = one_config_error(capsys.readouterr().err)
    assert f"paper.starting_cash: the account in {state_env} was started with 10000" in line
    assert f"delete {state_env}" in line
    assert digest(state_env) == before
    monkeypatch.delenv("SECTORBOT__PAPER__STARTING_CASH")
    assert main(["run", "--once"]) == 0


def test_a_fresh_account_takes_the_configured_starting_cash(
        state_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__PAPER__STARTING_CASH", "2500")
    assert main(["run", "--once"]) == 0
    with sqlite3.connect(state_env) as conn:
        row = conn.execute("SELECT value FROM kv WHERE key = 'paper.starting_cash'").fetchone()
    assert row == ('"2500.0"',)


def test_a_newer_schema_is_refused_and_left_alone(real_store: Path, state_env: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(real_store, state_env)
    with sqlite3.connect(state_env) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    before = digest(state_env)
    for command in STATE_COMMANDS:
        assert main(command) == 2, command
        line = one_config_error(capsys.readouterr().err)
        assert "schema revision '9999'" in line and "upgrade sectorbot" in line
    assert digest(state_env) == before


@pytest.mark.parametrize("url", ["foo://bar", "postgresql+nodriver://u@h/db", "sqlite://"])
def test_an_unusable_state_url_is_one_line(url: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SECTORBOT__STATE__URL", url)
    for command in (["check-config"], ["run", "--once"], ["status"]):
        assert main(command) == 2
        assert one_config_error(capsys.readouterr().err).startswith("config error: state.url: ")


def test_postgres_without_its_driver_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``psycopg`` is an extra: without it the daemon died on ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setenv("SECTORBOT__STATE__URL", "postgresql://bot:s3cret-pw@db.invalid/state")
    with pytest.raises(StateFileError, match=r"pip install 'sectorbot\[postgres\]'"):
        check_target("postgresql://bot:s3cret-pw@db.invalid/state")
    for command in (["check-config"], ["run", "--once"], ["status"], ["resume"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        line = one_config_error(err)
        assert line == ("config error: state.url: the PostgreSQL driver (psycopg) is not "
                        "installed; pip install 'sectorbot[postgres]'")
        assert "s3cret-pw" not in err
