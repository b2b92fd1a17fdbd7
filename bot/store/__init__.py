"""Durable state (SQLAlchemy on SQLite or PostgreSQL): decisions, the order journal and its
history, fills, positions, equity, funding, signal snapshots, daemon cursor. Schema changes are
Alembic revisions in ``migrations/``, applied in place whenever a store is opened."""
