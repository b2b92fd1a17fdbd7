"""Alembic entry point: migrate the connection ``bot.store.migrate`` hands over.

The caller owns the connection and its transaction (so stamping a pre-Alembic database and
upgrading it commit together, under a lock), which is why this file never opens an engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bot.store.schema import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "sectorbot migrations run through bot.store.migrate.upgrade_to_head, "
            "which passes an open connection; the alembic CLI alone is not supported"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table when needed.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
