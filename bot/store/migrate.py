"""Bring a state database to the newest schema in place, keeping every row.

Runs at every ``StateStore`` start. Three starting points are handled:

* an empty database: every revision runs, building the schema from nothing;
* a database Alembic already manages: only the missing revisions run (none is a no-op);
* a database created before Alembic (tables from ``create_all``, kv["schema_version"] = 1,
  no ``alembic_version``): it is stamped as revision 0001, which is that exact schema, and
  then upgraded.

Everything happens in one transaction under a lock, so a crash mid-migration leaves the
database as it was, and two processes starting together migrate one after the other.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text, update
from sqlalchemy.engine import Connection, Engine

from bot.store.schema import SCHEMA_VERSION, KeyValueRow

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001"
# The tables create_all made before Alembic; their presence without alembic_version means
# "pre-Alembic database", not "empty".
PRE_ALEMBIC_TABLES = frozenset({"decisions", "orders", "fills", "positions", "equity", "kv"})
# Arbitrary constant: the advisory lock PostgreSQL migrations serialise on.
_PG_MIGRATION_LOCK = 0x5EC7_0B07
# Alembic's ``context``/``op`` are process-wide proxies: two threads migrating at once would run
# each other's DDL on the wrong connection. Taken before any database lock, so it cannot deadlock.
_IN_PROCESS = threading.Lock()


class SchemaError(RuntimeError):
    """The database is in a state this build will not migrate automatically."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config without alembic.ini: the scripts ship inside the package."""
    config = Config()
    # Config options go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _scripts() -> tuple[str, frozenset[str]]:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head, frozenset(rev.revision for rev in script.walk_revisions())


def head_revision() -> str:
    return _scripts()[0]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine, target: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``target`` (tests stop at earlier revisions).

    ``engine`` should come from ``create_store_engine(..., for_migrations=True)`` so that on
    SQLite the transaction is real (DDL included) and taken with a write lock up front.
    """
    head, known = _scripts()
    with _IN_PROCESS, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = current_revision(conn)
        if current is None:
            current = _adopt_pre_alembic(conn)
        if current is not None and current not in known:
            raise SchemaError(
                f"the state database is at schema revision {current!r}, which this sectorbot "
                f"does not know (newest here: {head!r}); it was written by a newer version — "
                "upgrade sectorbot rather than letting an older build touch it")
        if current == head or (target != "head" and current == target):
            return
        command.upgrade(alembic_config(conn), target)
        if target == "head":
            _mirror_schema_version(conn)


def require_head(engine: Engine) -> None:
    """Refuse to read a database this build did not (or not yet) migrate: a read-only
    command must not guess at another schema, and may not migrate it either."""
    head, known = _scripts()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head:
        return
    if current is not None and current not in known:
        raise SchemaError(f"the state database is at schema revision {current!r}, written by "
                          f"a newer sectorbot (newest here: {head!r}): upgrade sectorbot")
    raise SchemaError(f"the state database is at schema revision {current!r}, older than this "
                      f"sectorbot's {head!r}: start the daemon once (`sectorbot run`) to "
                      "migrate it")


def _mirror_schema_version(conn: Connection) -> None:
    """kv["schema_version"] follows the head, written under the migration lock (no race)."""
    if int(head_revision()) != SCHEMA_VERSION:
        raise SchemaError(f"schema.SCHEMA_VERSION={SCHEMA_VERSION} but the newest migration "
                          f"is {head_revision()}: update one of them")
    values = {"value": json.dumps(SCHEMA_VERSION), "updated_at": datetime.now(UTC)}
    done = conn.execute(update(KeyValueRow).where(KeyValueRow.key == "schema_version")
                        .values(values))
    if done.rowcount == 0:
        conn.execute(insert(KeyValueRow).values(key="schema_version", **values))


def _adopt_pre_alembic(conn: Connection) -> str | None:
    """Stamp a create_all-era database as the baseline; None if the database is empty."""
    tables = set(inspect(conn).get_table_names())
    present = tables & PRE_ALEMBIC_TABLES
    if not present:
        return None
    missing = PRE_ALEMBIC_TABLES - tables
    if missing:
        raise SchemaError(
            f"the state database has sectorbot tables {sorted(present)} but not "
            f"{sorted(missing)} and no alembic_version: refusing to guess its schema")
    raw = conn.execute(text("SELECT value FROM kv WHERE key = 'schema_version'")).scalar()
    version = None if raw is None else json.loads(raw)
    # None: create_all ran but the process died before writing the version row.
    if version not in (None, 1):
        raise SchemaError(
            f"pre-Alembic state database says schema_version={version!r}; only version 1 "
            "existed before migrations, so this file did not come from sectorbot")
    command.stamp(alembic_config(conn), BASELINE_REVISION)
    return BASELINE_REVISION
