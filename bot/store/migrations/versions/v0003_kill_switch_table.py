"""Kill-switch state in its own table, with the history of every trip.

Issue #6 lists kill-switch state among what must be durable; until now it was one JSON value
in ``kv`` (``risk.killswitch``), overwritten on clear. A tripped switch found there is moved
into the table (its ``updated_at`` becomes ``tripped_at``) and the kv row is removed, so the
trip survives the upgrade and the daemon stays stopped.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_DECIMAL = sa.String(64)  # DecimalText
_UTC = sa.DateTime(timezone=True)  # UtcDateTime
_OLD_KEY = "risk.killswitch"


def upgrade() -> None:
    events = op.create_table(
        "kill_switch_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tripped_at", _UTC, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("equity", _DECIMAL, nullable=True),
        sa.Column("high_water", _DECIMAL, nullable=True),
        sa.Column("cleared_at", _UTC, nullable=True),
        sa.Column("cleared_by", sa.String(64), nullable=True),
    )
    kv = sa.table("kv", sa.column("key", sa.String), sa.column("value", sa.Text),
                  sa.column("updated_at", _UTC))
    bind = op.get_bind()
    row = bind.execute(sa.select(kv.c.value, kv.c.updated_at)
                       .where(kv.c.key == _OLD_KEY)).first()
    if row is None:
        return
    value = json.loads(row.value)
    if value:
        reason = value.get("reason") if isinstance(value, dict) else None
        bind.execute(events.insert().values(tripped_at=row.updated_at,
                                            reason=str(reason or "tripped before 0003")))
    bind.execute(kv.delete().where(kv.c.key == _OLD_KEY))


def downgrade() -> None:
    events = sa.table("kill_switch_events", sa.column("reason", sa.Text),
                      sa.column("tripped_at", _UTC), sa.column("cleared_at", _UTC),
                      sa.column("id", sa.Integer))
    bind = op.get_bind()
    active = bind.execute(sa.select(events.c.reason, events.c.tripped_at)
                          .where(events.c.cleared_at.is_(None))
                          .order_by(events.c.id.desc())).first()
    if active is not None:
        kv = sa.table("kv", sa.column("key", sa.String), sa.column("value", sa.Text),
                      sa.column("updated_at", _UTC))
        bind.execute(kv.insert().values(key=_OLD_KEY,
                                        value=json.dumps({"reason": active.reason}),
                                        updated_at=active.tripped_at))
    op.drop_table("kill_switch_events")
