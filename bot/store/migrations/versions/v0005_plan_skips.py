"""What a plan left out and why: legs too small, unfunded, frozen.

Issue #11: where the venue splits wallets and nothing moves USDT between them, a side that
cannot pay for its legs is sized down or skipped; ``sectorbot status`` must say so. The
skips were only logged; this keeps them with their plan. Purely additive.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "plan_skips",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("market", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_plan_skips_plan_id", "plan_skips", ["plan_id"])


def downgrade() -> None:
    op.drop_index("ix_plan_skips_plan_id", table_name="plan_skips")
    op.drop_table("plan_skips")
