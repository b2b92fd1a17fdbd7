"""Provider figures as first seen: sector metrics a live decision read, kept for replay.

Issue #13: in testnet/demo/live the engine reads sector TVL, DEX volume and developer
activity from providers whose history gets revised. Each daily figure is kept as the daemon
first saw it, so ``sectorbot export-signals`` can write it in the replay format and a day be
replayed with what the engine knew. Purely additive.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_UTC = sa.DateTime(timezone=True)  # UtcDateTime


def upgrade() -> None:
    op.create_table(
        "sector_metric_points",
        sa.Column("sector", sa.String(32), primary_key=True),
        sa.Column("metric", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("value", sa.Float(53), nullable=False),
        sa.Column("fetched_at", _UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sector_metric_points")
