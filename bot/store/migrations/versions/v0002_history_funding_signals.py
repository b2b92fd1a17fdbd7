"""Order status history, trigger (algo) order ids, funding payments, signal snapshots.

Issue #6: after a crash the daemon must be able to tell what happened to each order (not only
its last status), find conditional orders the venue files under a separate id, account for
funding, and show which inputs a decision used. Purely additive: no existing row is touched.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_DECIMAL = sa.String(64)  # DecimalText
_UTC = sa.DateTime(timezone=True)  # UtcDateTime


def upgrade() -> None:
    # Nullable, so SQLite can add it in place without copying the journal table.
    op.add_column("orders", sa.Column("trigger_id", sa.String(64), nullable=True))
    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("orders.client_id"),
                  nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_order_events_client_id", "order_events", ["client_id"])
    op.create_table(
        "funding_payments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("ts", _UTC, nullable=False),
        sa.Column("amount", _DECIMAL, nullable=False),
        sa.Column("rate", _DECIMAL, nullable=True),
        sa.UniqueConstraint("token", "ts", name="uq_funding_payments_token_ts"),
    )
    op.create_table(
        "signal_snapshots",
        sa.Column("as_of", _UTC, primary_key=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("stale", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signal_snapshots")
    op.drop_table("funding_payments")
    op.drop_index("ix_order_events_client_id", table_name="order_events")
    op.drop_table("order_events")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("trigger_id")
