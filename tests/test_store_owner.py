"""The store's owner lock on both backends: one holder, named to whoever is refused, gone
with its process (or its PostgreSQL connection), and never shared across stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bot.store.engine import parse_target
from bot.store.owner import PostgresOwnerLock, StoreBusy, acquire_owner_lock, lock_path_for
from tests.daemon_proc import REPO
from tests.pg_server import session_server


def test_a_sqlite_store_has_one_owner_named_to_the_next(tmp_path: Path) -> None:
    target = parse_target(tmp_path / "state.sqlite3")
    lock = acquire_owner_lock(target)
    with pytest.raises(StoreBusy) as refused:
        acquire_owner_lock(target)
    assert refused.value.holder.pid == os.getpid()
    assert f"pid {os.getpid()} on " in str(refused.value) and " since " in str(refused.value)
    assert (tmp_path / "state.sqlite3").stat().st_size == 0, "taking the lock writes no store"
    assert oct(lock_path_for(tmp_path / "state.sqlite3").stat().st_mode & 0o777) == "0o600"
    lock.release()
    acquire_owner_lock(target).release()  # free again


def test_every_path_to_the_database_meets_the_same_lock(tmp_path: Path) -> None:
    """A symlink, a hard link (or a bind mount) is the same store: the lock is on the file,
    not on the name it was reached by."""
    real = tmp_path / "real" / "state.sqlite3"
    lock = acquire_owner_lock(parse_target(real))
    try:
        (tmp_path / "alias").mkdir()
        linked = tmp_path / "alias" / "linked.sqlite3"
        linked.symlink_to(real)
        hard = tmp_path / "alias" / "hard.sqlite3"
        os.link(real, hard)
        with pytest.raises(StoreBusy) as refused:
            acquire_owner_lock(parse_target(linked))
        assert refused.value.holder.pid == os.getpid()
        with pytest.raises(StoreBusy):  # refused too (its holder file is elsewhere)
            acquire_owner_lock(parse_target(hard))
    finally:
        lock.release()


def test_a_killed_owner_leaves_no_stale_lock(tmp_path: Path) -> None:
    """kill -9 cannot run any cleanup: the kernel must drop the lock with the process."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from bot.store.engine import parse_target\n"
         "from bot.store.owner import acquire_owner_lock\n"
         f"acquire_owner_lock(parse_target({str(tmp_path / 's.sqlite3')!r}))\n"
         "print('held', flush=True)\n"
         "time.sleep(60)\n"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    target = parse_target(tmp_path / "s.sqlite3")
    with pytest.raises(StoreBusy) as refused:
        acquire_owner_lock(target)
    assert refused.value.holder.pid == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    acquire_owner_lock(target).release()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    return session_server(request.config).fresh_url()


def test_a_postgres_store_has_one_owner_per_schema(request: pytest.FixtureRequest,
                                                  pg_url: str) -> None:
    target = parse_target(pg_url)
    lock = acquire_owner_lock(target)
    try:
        assert lock.still_held()
        with pytest.raises(StoreBusy) as refused:
            acquire_owner_lock(target)
        assert refused.value.holder.pid == os.getpid()
        assert refused.value.holder.since
        other = acquire_owner_lock(parse_target(session_server(request.config).fresh_url()))
        other.release()  # another schema on the same server is another store
    finally:
        lock.release()
    acquire_owner_lock(target).release()


def test_a_dropped_connection_is_a_lost_lock(pg_url: str) -> None:
    """The daemon checks ``still_held`` before every step: a server restart or an idle
    reaper drops the session lock silently, and another daemon could then take it."""
    lock = acquire_owner_lock(parse_target(pg_url))
    assert isinstance(lock, PostgresOwnerLock) and lock.still_held()
    admin = create_engine(pg_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name LIKE :mine"),
                     {"mine": f"sectorbot-owner {os.getpid()}@%"})
    admin.dispose()
    deadline = time.monotonic() + 10
    while lock.still_held() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lock.still_held()
    lock.release()  # releasing a lost lock is harmless
    acquire_owner_lock(parse_target(pg_url)).release()


def test_a_file_removed_between_open_and_lock_is_never_the_one_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding: start A, refused before its first write, removes the empty file it
    created; start B had opened the file just before and locks it just after. B's lock was
    on a file no path names, and start C created and locked a new one: two owners. Now B
    locks the file the path names, and C is refused."""
    from bot.store import owner

    db = tmp_path / "state.sqlite3"
    a = owner.FileOwnerLock.acquire(db, str(db))
    real = owner.fcntl.flock
    raced = False

    def flock(fd: int, op: int) -> None:
        nonlocal raced
        if op & owner.fcntl.LOCK_EX and not raced:
            raced = True
            a.release()  # A's refused start: the empty file it created is unlinked
        real(fd, op)

    monkeypatch.setattr(owner.fcntl, "flock", flock)
    b = owner.FileOwnerLock.acquire(db, str(db))
    monkeypatch.setattr(owner.fcntl, "flock", real)
    assert raced and db.exists()
    assert os.stat(db).st_ino == os.fstat(b._fd).st_ino  # type: ignore[arg-type]
    with pytest.raises(StoreBusy):
        owner.FileOwnerLock.acquire(db, str(db))  # C
    b.release()


def test_a_lock_held_for_an_instant_does_not_refuse_a_start(tmp_path: Path) -> None:
    """``status`` may probe the lock with a shared flock for an instant where /proc/locks is
    unreadable; a daemon starting in that instant waits it out instead of exiting 2."""
    import fcntl
    import threading

    from bot.store.owner import FileOwnerLock

    db = tmp_path / "state.sqlite3"
    db.touch(mode=0o600)
    probe = os.open(db, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    timer = threading.Timer(0.08, lambda: (fcntl.flock(probe, fcntl.LOCK_UN), os.close(probe)))
    timer.start()
    try:
        lock = FileOwnerLock.acquire(db, str(db))
    finally:
        timer.join()
    lock.release()
