"""Venue market data as first seen: the daily candles and funding a live decision read.

Issue #13: revision 0007 keeps the provider figures, but a live day could still not be
replayed exactly: the venue's candles and funding the engine read were not kept, and a venue
may revise a candle later. Each closed day's candle and each funding reading is kept as the
daemon first saw it (exact decimal text), so ``sectorbot export-signals --replay-dir`` writes
a complete replay directory. Purely additive.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_DECIMAL = sa.String(64)  # DecimalText
_UTC = sa.DateTime(timezone=True)  # UtcDateTime


def upgrade() -> None:
    op.create_table(
        "venue_candles",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("market", sa.String(8), nullable=False),
        sa.Column("open", _DECIMAL, nullable=False),
        sa.Column("high", _DECIMAL, nullable=True),
        sa.Column("low", _DECIMAL, nullable=True),
        sa.Column("close", _DECIMAL, nullable=False),
        sa.Column("volume", _DECIMAL, nullable=False),
        sa.Column("quote_volume", _DECIMAL, nullable=False),
        sa.Column("fetched_at", _UTC, nullable=False),
    )
    op.create_table(
        "venue_funding",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("ts", _UTC, primary_key=True),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("rate", _DECIMAL, nullable=False),
        sa.Column("interval_hours", _DECIMAL, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("venue_funding")
    op.drop_table("venue_candles")
