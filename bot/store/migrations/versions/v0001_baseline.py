"""Baseline: the schema exactly as ``Base.metadata.create_all`` built it before Alembic.

Databases created by that code carry kv["schema_version"] = 1 and no ``alembic_version``
table; ``bot.store.migrate`` stamps them with this revision instead of running it.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_DECIMAL = sa.String(64)  # DecimalText
_UTC = sa.DateTime(timezone=True)  # UtcDateTime


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False, unique=True),
        sa.Column("as_of", _UTC, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.create_index("ix_decisions_as_of", "decisions", ["as_of"])
    op.create_table(
        "orders",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("market", sa.String(8), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("amount", _DECIMAL, nullable=False),
        sa.Column("price", _DECIMAL, nullable=True),
        sa.Column("trigger_price", _DECIMAL, nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("leverage", _DECIMAL, nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("exchange_id", sa.String(64), nullable=True),
        sa.Column("filled", _DECIMAL, nullable=False),
        sa.Column("average_price", _DECIMAL, nullable=True),
        sa.Column("fee", _DECIMAL, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    )
    op.create_index("ix_orders_decision_id", "orders", ["decision_id"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("market", sa.String(8), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("amount", _DECIMAL, nullable=False),
        sa.Column("price", _DECIMAL, nullable=False),
        sa.Column("fee", _DECIMAL, nullable=False),
        sa.Column("ts", _UTC, nullable=False),
    )
    op.create_index("ix_fills_client_id", "fills", ["client_id"])
    op.create_table(
        "positions",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("market", sa.String(8), primary_key=True),
        sa.Column("amount", _DECIMAL, nullable=False),
        sa.Column("entry_price", _DECIMAL, nullable=True),
        sa.Column("mark_price", _DECIMAL, nullable=True),
        sa.Column("leverage", _DECIMAL, nullable=True),
        sa.Column("stop_price", _DECIMAL, nullable=True),
        sa.Column("liquidation_price", _DECIMAL, nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
    )
    op.create_table(
        "equity",
        sa.Column("ts", _UTC, primary_key=True),
        sa.Column("equity", _DECIMAL, nullable=False),
        sa.Column("cash", _DECIMAL, nullable=False),
    )
    op.create_table(
        "kv",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    )


def downgrade() -> None:
    for table in ("kv", "equity", "positions", "fills", "orders", "decisions"):
        op.drop_table(table)
