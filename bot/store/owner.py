"""One daemon per state store: an exclusive owner lock, held for the daemon's whole life.

Two daemons on one store both trade the account behind it: they re-send each other's client
ids, race on the decision sequence and reconcile each other's orders away. The first daemon
takes the lock before it writes anything; a second one is refused (exit 2) with the holder's
pid, host and start time, and sends nothing.

* SQLite: ``flock`` on the database file itself (every path to it meets the same lock);
  the owner's pid, host and start time go to ``<state>.lock`` as JSON. The kernel drops the
  lock when the process dies, however it dies, so a crash never leaves a stale lock.
* PostgreSQL: a session-level advisory lock, keyed on the database and schema, on a
  connection of its own kept open for the daemon's life; the owner is named in that
  connection's ``application_name``. The server drops it when the connection closes.

Read-only commands (``status``, ``explain``) take no lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bot.store.engine import StoreTarget, create_private_file

APPLICATION_PREFIX = "sectorbot-owner"
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 3}
"""libpq's client side: the daemon notices a server that went away within about a minute."""
SERVER_KEEPALIVES = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10",
                     "tcp_keepalives_count": "3"}
"""The server side of the lock's session: a daemon host that died (power, network) frees
the store within about a minute instead of the kernel's default two hours."""


@dataclass(frozen=True)
class Holder:
    """Who holds a store (any field may be unknown)."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None

    def describe(self) -> str:
        parts = [f"pid {self.pid}" if self.pid is not None else "pid unknown"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.since:
            parts.append(f"since {self.since}")
        return " ".join(parts)


class OwnerLockError(Exception):
    """The owner lock cannot be taken: the daemon must not start (exit 2)."""


class StoreBusy(OwnerLockError):
    """Another daemon owns this store: starting a second one would trade the account twice."""

    def __init__(self, location: str, holder: Holder) -> None:
        super().__init__(f"state store {location} is in use by another sectorbot daemon "
                         f"({holder.describe()}): stop that one first, or point this one "
                         "at its own state (state.path / state.url)")
        self.location = location
        self.holder = holder


class PoolerError(OwnerLockError):
    """The database connection does not keep a session (transaction pooling)."""


class OwnerLock(Protocol):
    def still_held(self) -> bool:
        """False once the lock was lost (PostgreSQL: the connection dropped)."""
        ...

    def release(self) -> None:
        ...


def _me() -> Holder:
    since = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return Holder(os.getpid(), socket.gethostname(), since)


def acquire_owner_lock(target: StoreTarget) -> OwnerLock:
    """Take the store's owner lock or raise :class:`StoreBusy` naming the holder."""
    if target.path is not None:
        return FileOwnerLock.acquire(target.path, target.location)
    return PostgresOwnerLock.acquire(target)


def lock_path_for(database: Path) -> Path:
    """Where the holder of ``database`` writes who it is (pid, host, since)."""
    return database.with_name(database.name + ".lock")


class FileOwnerLock:
    """``flock`` on the database file itself, so every path to it (a symlink, a hard link,
    a bind mount) meets the same lock; the holder's details go to ``<database>.lock``.

    SQLite locks the same file with ``fcntl`` record locks, which Linux keeps apart from
    ``flock``. POSIX drops a process's ``fcntl`` locks when it closes *any* descriptor of the
    file, so this descriptor stays open until the daemon has closed the store.
    """

    def __init__(self, fd: int, path: Path, database: Path, created: bool) -> None:
        self._fd: int | None = fd
        self.path = path
        self._database = database
        self._created = created

    @classmethod
    def acquire(cls, database: Path, location: str) -> FileOwnerLock:
        for _ in range(LOCK_ATTEMPTS):
            # "created": the file is empty because a sectorbot start made it, so a start
            # killed before its first write can be resumed (preflight refuses any other
            # empty file).
            created = not database.exists() or left_empty_by_a_start(database)
            create_private_file(database)  # empty: SQLite builds the schema in it later
            info = lock_path_for(database.resolve())  # one holder file behind every symlink
            fd = os.open(database, os.O_RDONLY)
            try:
                _flock_patiently(fd)
            except BlockingIOError:
                os.close(fd)
                raise StoreBusy(location, _read_holder(info)) from None
            except BaseException:
                os.close(fd)
                raise
            if _still_names(fd, database):
                break
            # A refused start that had created the file removed it between our open and our
            # lock: the lock is on a file no path names, and the next start would create
            # and lock a new one beside us. Lock the file the path names now.
            os.close(fd)
        else:
            raise StoreBusy(location, _read_holder(info))
        me = _me()
        info_fd = os.open(info, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(info_fd, json.dumps({"pid": me.pid, "host": me.host,
                                          "since": me.since, "created": created}).encode())
            os.fsync(info_fd)
        finally:
            os.close(info_fd)
        return cls(fd, info, database, created)

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock; a database file this lock created and nothing ever wrote (a start refused
        before the store was opened) is removed, so a refused start leaves no trace."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._created and os.fstat(fd).st_size == 0:
                self._database.unlink(missing_ok=True)
                self.path.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


LOCK_ATTEMPTS = 5
"""Tries at locking the file the path names, should it be replaced between open and lock."""
LOCK_PATIENCE_SECONDS = 0.25
"""How long a start waits for a lock held only for an instant (``status`` probing it with a
shared lock where ``/proc/locks`` cannot be read) before it counts the store as owned."""


def _flock_patiently(fd: int) -> None:
    """``LOCK_EX``, retried for :data:`LOCK_PATIENCE_SECONDS`; BlockingIOError if still held."""
    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _still_names(fd: int, database: Path) -> bool:
    """Whether the locked descriptor is still the file at ``database`` (not unlinked, not
    replaced): a lock on anything else guards nothing."""
    held = os.fstat(fd)
    try:
        now = database.stat()
    except FileNotFoundError:
        return False
    return held.st_nlink > 0 and (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def left_empty_by_a_start(database: Path) -> bool:
    """The file is empty (its write-ahead log too) and the last owner lock on it had created
    it: a start stopped before its first write (killed while reaching the venue) left it,
    and the next start may begin a fresh store in it. Any other empty file is refused."""
    wal = database.with_name(database.name + "-wal")
    try:
        if database.stat().st_size or (wal.exists() and wal.stat().st_size):
            return False
        data = json.loads(lock_path_for(database.resolve()).read_text() or "{}")
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("created") is True


def _read_holder(info: Path) -> Holder:
    try:
        data = json.loads(info.read_text() or "{}")
    except (OSError, ValueError):
        return Holder()
    if not isinstance(data, dict):
        return Holder()
    pid = data.get("pid")
    return Holder(pid if isinstance(pid, int) else None,
                  str(data["host"]) if data.get("host") else None,
                  str(data["since"]) if data.get("since") else None)


class PostgresOwnerLock:
    """A session advisory lock on a dedicated autocommit connection (no transaction is left
    open for days: that would hold back the server's vacuum)."""

    def __init__(self, conn: Connection, key: int) -> None:
        self._conn: Connection | None = conn
        self.key = key

    @classmethod
    def acquire(cls, target: StoreTarget) -> PostgresOwnerLock:
        # Keepalives on both ends: a daemon whose host died must not hold the store for the
        # kernel's default two hours, and the daemon must notice a dead server soon.
        engine = create_engine(target.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                               connect_args=KEEPALIVES)
        conn = engine.connect()
        try:
            for setting, value in SERVER_KEEPALIVES.items():
                conn.execute(text("SELECT set_config(:name, :value, false)"),
                             {"name": setting, "value": value})
            database, schema = conn.execute(
                text("SELECT current_database(), current_schema()")).one()
            key = _advisory_key(str(database), str(schema))
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                holder = _pg_holder(conn, key)
                conn.close()
                raise StoreBusy(target.location, holder)
            me = _me()
            conn.execute(text("SELECT set_config('application_name', :name, false)"),
                         {"name": f"{APPLICATION_PREFIX} {me.pid}@{me.host} {me.since}"[:63]})
        except BaseException:
            if not conn.closed:
                conn.close()
            raise
        lock = cls(conn, key)
        if not lock.still_held():
            # A transaction-pooling proxy (PgBouncer) ran the statements on different
            # server sessions: a session lock means nothing there.
            lock.release()
            raise PoolerError(f"state store {target.location}: the owner lock did not stay "
                              "with its session; connect directly or through session "
                              "pooling")
        return lock

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objsubid = 1 "
                "AND ((classid::bigint << 32) | objid::bigint) = :k"
            ), {"k": self.key}).scalar()
        except Exception:  # a dead connection means the lock is gone
            return False
        return bool(held)

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except Exception:  # closing the connection releases it anyway
            pass
        finally:
            conn.close()


def _advisory_key(database: str, schema: str) -> int:
    """A signed 64-bit key for this database and schema (a server may hold many stores)."""
    digest = hashlib.sha256(f"sectorbot-owner:{database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def holder_of(target: StoreTarget) -> Holder | None:
    """Who holds the store's owner lock now, None if nobody: asked without taking it, so a
    daemon starting at that moment is never refused because of the question (``status``).
    SQLite: the kernel's lock table (``/proc/locks``) where there is one, else a shared
    ``flock`` tried and dropped at once. PostgreSQL: ``pg_locks``."""
    if target.path is None:
        engine = create_engine(target.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                database, schema = conn.execute(
                    text("SELECT current_database(), current_schema()")).one()
                return _pg_holder_or_none(conn, _advisory_key(str(database), str(schema)))
        finally:
            engine.dispose()
    database = target.path
    if not database.exists():
        return None
    info = lock_path_for(database.resolve())
    held = _flocked(database)
    return None if not held else _read_holder(info)


def _flocked(database: Path) -> bool:
    st = database.stat()
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        table = None
    if table is not None:  # "1: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF"
        # The inode alone: an overlay file system may name another device than stat does.
        return any(" FLOCK " in line and f":{st.st_ino} " in line
                   for line in table.splitlines())
    fd = os.open(database, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    return False


def _pg_holder(conn: Connection, key: int) -> Holder:
    """The holder as its connection named itself: ``sectorbot-owner <pid>@<host> <since>``."""
    return _pg_holder_or_none(conn, key) or Holder()


def _pg_holder_or_none(conn: Connection, key: int) -> Holder | None:
    row = conn.execute(text(
        "SELECT a.application_name, a.client_addr::text, a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k LIMIT 1"), {"k": key}).first()
    if row is None:
        return None
    name = str(row[0] or "")
    if name.startswith(APPLICATION_PREFIX + " "):
        try:
            who, since = name[len(APPLICATION_PREFIX) + 1:].split(" ", 1)
            pid, host = who.split("@", 1)
            return Holder(int(pid), host, since)
        except ValueError:
            pass
    started = row[2].astimezone(UTC).isoformat() if row[2] is not None else None
    return Holder(None, row[1], started)
