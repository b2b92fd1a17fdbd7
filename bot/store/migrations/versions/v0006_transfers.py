"""Transfers between a venue's spot and futures wallets, journalled like orders.

Issue #11: with ``exchange.auto_transfer`` the daemon moves USDT between Binance's spot and
USD-M wallets so each side can pay for its legs. A transfer is written before it is sent and
updated with the answer; one whose answer was lost is looked up on the venue before any new
one is sent. Purely additive.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_DECIMAL = sa.String(64)  # DecimalText
_UTC = sa.DateTime(timezone=True)  # UtcDateTime


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("amount", _DECIMAL, nullable=False),
        sa.Column("to_wallet", sa.String(8), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("venue_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("transfers")
