"""One daemon per state store: an exclusive owner lock, held for the daemon's whole life.

Two daemons on one store both trade the account behind it: they re-send each other's client
ids, race on the decision sequence and reconcile each other's orders away. The first daemon
takes the lock before it writes anything; a second one is refused (exit 2) with the holder's
pid, host and start time, and sends nothing.

* SQLite: ``flock`` on a file next to the database (``<state>.lock``), holding the owner's
  pid, host and start time as JSON. The kernel drops the lock when the process dies, however
  it dies, so a crash never leaves a stale lock behind.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bot.store.engine import StoreTarget

APPLICATION_PREFIX = "sectorbot-owner"


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


class StoreBusy(Exception):
    """Another daemon owns this store: starting a second one would trade the account twice."""

    def __init__(self, location: str, holder: Holder) -> None:
        super().__init__(f"state store {location} is in use by another sectorbot daemon "
                         f"({holder.describe()}): stop that one first, or point this one "
                         "at its own state (state.path / state.url)")
        self.location = location
        self.holder = holder


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
    return database.with_name(database.name + ".lock")


class FileOwnerLock:
    """``flock`` on ``<database>.lock``; the file keeps the last owner's details."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, database: Path, location: str) -> FileOwnerLock:
        path = lock_path_for(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreBusy(location, holder) from None
        except BaseException:
            os.close(fd)
            raise
        me = _me()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": me.pid, "host": me.host, "since": me.since}).encode(),
                  0)
        os.fsync(fd)
        return cls(fd, path)

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_holder(fd: int) -> Holder:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
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
        engine = create_engine(target.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        conn = engine.connect()
        try:
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
        return cls(conn, key)

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


def _pg_holder(conn: Connection, key: int) -> Holder:
    """The holder as its connection named itself: ``sectorbot-owner <pid>@<host> <since>``."""
    row = conn.execute(text(
        "SELECT a.application_name, a.client_addr::text, a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k LIMIT 1"), {"k": key}).first()
    if row is None:
        return Holder()
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
