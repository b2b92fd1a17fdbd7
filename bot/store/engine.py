"""Where the state lives (SQLite file or PostgreSQL URL) and how to connect to it safely.

SQLite is the default: one private file next to the daemon. PostgreSQL is for operators who
already back up and replicate a server. Both get the same tables and the same guarantees: a
committed journal entry survives a crash.
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

# SQLite creates these next to the database; they hold committed-but-not-checkpointed data.
SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")
POSTGRES_DRIVER = "postgresql+psycopg"


@dataclass(frozen=True)
class StoreTarget:
    """A parsed store location: ``path`` is set for SQLite, ``None`` for a server."""

    url: URL
    path: Path | None

    @property
    def location(self) -> str:
        """For logs and ``sectorbot status``: the file, or the URL without its password."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)


def parse_target(path_or_url: Path | str) -> StoreTarget:
    """Accept a filesystem path (SQLite) or a SQLAlchemy URL (``postgresql+psycopg://...``).

    A plain string without ``://`` is a path, so existing configs keep working. A
    ``postgresql://`` URL without a driver gets psycopg 3, the driver sectorbot ships with
    (SQLAlchemy's own default would be psycopg2, which is not installed).
    """
    if isinstance(path_or_url, Path) or "://" not in path_or_url:
        path = Path(path_or_url)
        return StoreTarget(URL.create("sqlite", database=str(path)), path)
    url = make_url(path_or_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise ValueError("the state store needs a SQLite file: in-memory state is lost "
                             "on exit (use a path)")
        return parse_target(Path(url.database))
    if backend in ("postgresql", "postgres"):
        if "+" not in url.drivername:
            url = url.set(drivername=POSTGRES_DRIVER)
        return StoreTarget(url, None)
    raise ValueError(f"unsupported state store URL {url.render_as_string(hide_password=True)!r}:"
                     " use a SQLite path or a postgresql+psycopg:// URL")


def create_private_file(path: Path) -> None:
    """Create the database file owner-only before SQLite touches it (it holds the journal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def create_store_engine(target: StoreTarget, *, for_migrations: bool = False,
                        read_only: bool = False, durable: bool = True) -> Engine:
    """The engine the store runs on, or a short-lived one for migrating it.

    The migration engine holds no pool and, on SQLite, opens its transaction with
    ``BEGIN IMMEDIATE`` so that two processes starting at once migrate one after the other
    instead of both trying to add the same table. A ``read_only`` engine (``status``,
    ``explain``) cannot write: SQLite opens the file with ``mode=ro`` (never creating it),
    PostgreSQL sessions are read-only; it needs no owner lock beside a running daemon.
    ``durable=False`` (a backtest's throwaway SQLite file) skips the fsync of every commit:
    no crash can observe a backtest, so it need not survive one.
    """
    if read_only:
        return _read_only_engine(target)
    if target.path is None:
        if for_migrations:
            return create_engine(target.url, poolclass=NullPool)
        # A daemon outlives server restarts and idle-connection reapers: test before use.
        return create_engine(target.url, pool_pre_ping=True)
    create_private_file(target.path)
    engine = create_engine(target.url, poolclass=NullPool) if for_migrations else \
        create_engine(target.url)
    event.listen(engine, "connect", _sqlite_on_connect(target.path, durable))
    if for_migrations:
        event.listen(engine, "connect", _sqlite_manual_transactions)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _read_only_engine(target: StoreTarget) -> Engine:
    if target.path is None:
        engine = create_engine(target.url, poolclass=NullPool)

        def read_only_session(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cur.close()
            dbapi_conn.commit()

        event.listen(engine, "connect", read_only_session)
        return engine
    from bot.store.preflight import read_only_uri  # immutable where no -shm can be made

    uri = read_only_uri(target.path)
    return create_engine("sqlite+pysqlite:///" + uri + "&uri=true", poolclass=NullPool)


def _sqlite_on_connect(path: Path, durable: bool = True) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed journal entry survives power loss, which the order journal relies on.
        cur.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
        make_siblings_private(path)

    return on_connect


def make_siblings_private(path: Path) -> None:
    """Owner-only -wal/-shm: they hold journal rows too.

    SQLite already creates them with the database file's mode; this repairs files left by an
    older build, a restore, or a copy made with a looser umask.
    """
    for suffix in SQLITE_SIBLINGS:
        sibling = path.with_name(path.name + suffix)
        with suppress(FileNotFoundError):  # the last connection to close deletes the WAL
            if sibling.stat().st_mode & 0o077:
                os.chmod(sibling, 0o600)


def _sqlite_manual_transactions(dbapi_conn: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy, so the BEGIN IMMEDIATE below is the only BEGIN
    # and DDL (which pysqlite never wraps itself) runs inside it: a migration is atomic.
    dbapi_conn.isolation_level = None


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
