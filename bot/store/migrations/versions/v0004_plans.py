"""Plans: the identity every cycle order's client id is derived from.

Issue #10: client ids were numbered by an order's place in its plan, so a plan that changed
within one decision (a stop fired, a position opened by hand) gave the same id to a different
order. An order's id is now a digest of what it is plus the id of the plan that wants it. A
plan row is that identity: a new one per planning act, reused only when the same decision is
re-run after its plan was cut short (a crash), so a re-run recognises its own orders. Purely
additive: ``orders.plan_id`` is nullable and older rows keep it empty.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_UTC = sa.DateTime(timezone=True)  # UtcDateTime


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("completed_at", _UTC, nullable=True),
    )
    op.create_index("ix_plans_decision_id", "plans", ["decision_id"])
    op.add_column("orders", sa.Column("plan_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("plan_id")
    op.drop_index("ix_plans_decision_id", table_name="plans")
    op.drop_table("plans")
