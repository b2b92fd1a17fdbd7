"""SQLAlchemy table definitions. Money is stored as exact decimal text, never as a float.

These models describe the schema at the Alembic head. The database itself is created and
changed only by the revisions in ``bot/store/migrations/versions``; a test compares the two so
they cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Mirrors the numeric Alembic head revision into kv["schema_version"] for humans and for the
# pre-Alembic detection (a database stamped "1" by create_all is revision 0001).
SCHEMA_VERSION = 8


class DecimalText(TypeDecorator[Decimal]):
    """Decimal stored as text: SQLite's NUMERIC is a float and would lose cents.

    Text on PostgreSQL too, so both backends hold byte-identical values and no scale is imposed.
    """

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else format(Decimal(value), "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out, whatever the backend or its session time zone.

    SQLite keeps no zone, so values go in as naive UTC (the format existing files hold).
    PostgreSQL's ``timestamptz`` would read a naive value in the session's time zone, so there
    the aware value is sent and the answer converted back to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: the store keeps UTC only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    __tablename__ = "decisions"
    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderRow(Base):
    """The order journal: written before a request is sent, updated with the answer."""

    __tablename__ = "orders"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str | None] = mapped_column(String(64), index=True)
    token: Mapped[str] = mapped_column(String(32))
    market: Mapped[str] = mapped_column(String(8))
    side: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    trigger_price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    leverage: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    exchange_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filled: Mapped[Decimal] = mapped_column(DecimalText, default=Decimal(0))
    average_price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    fee: Mapped[Decimal] = mapped_column(DecimalText, default=Decimal(0))
    reason: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Revision 0002. Venues give conditional (stop) orders their own id, distinct from the
    # order id they become once triggered; reconciliation after a crash needs both.
    trigger_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Revision 0004. The plan the order belongs to (its client id is derived from it); empty
    # for risk-watch orders and rows written before 0004.
    plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PlanRow(Base):
    """Revision 0004: one planning act of the cycle, the identity its orders' ids come from.

    A plan is completed once the executor has gone through every order of it. A decision
    re-run while its last plan is still open (the run was cut short) resumes that plan, so
    its orders get the ids they had; any other re-run gets a new plan and new ids.
    """

    __tablename__ = "plans"
    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class PlanSkipRow(Base):
    """Revision 0005: a leg a plan did not send, and why (too small, unfunded, frozen)."""

    __tablename__ = "plan_skips"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(64), index=True)
    token: Mapped[str] = mapped_column(String(32))
    market: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)


class TransferRow(Base):
    """Revision 0006: USDT moved between a venue's spot and futures wallets (write-ahead).

    ``amount`` is positive; ``to_wallet`` is ``perp`` or ``spot``. Status: ``pending``
    (written, maybe sent), ``done``, ``rejected``, ``unknown`` (sent, answer lost: looked up
    before any new transfer), ``expired`` (looked up, never happened).
    """

    __tablename__ = "transfers"
    transfer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    to_wallet: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24))
    venue_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderEventRow(Base):
    """Revision 0002: every status an order went through, so a post-mortem can replay it."""

    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), ForeignKey("orders.client_id"),
                                           index=True)
    status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class FillRow(Base):
    __tablename__ = "fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    token: Mapped[str] = mapped_column(String(32))
    market: Mapped[str] = mapped_column(String(8))
    side: Mapped[str] = mapped_column(String(8))
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    price: Mapped[Decimal] = mapped_column(DecimalText)
    fee: Mapped[Decimal] = mapped_column(DecimalText)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)


class PositionRow(Base):
    """The latest known holdings, replaced each cycle (history lives in fills and equity)."""

    __tablename__ = "positions"
    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    market: Mapped[str] = mapped_column(String(8), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    entry_price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    mark_price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    leverage: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    liquidation_price: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EquityRow(Base):
    __tablename__ = "equity"
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    equity: Mapped[Decimal] = mapped_column(DecimalText)
    cash: Mapped[Decimal] = mapped_column(DecimalText)


class FundingPaymentRow(Base):
    """Revision 0002: perp funding paid (negative) or received, as the venue booked it.

    One row per (token, ts): re-reading the venue's income history after a restart is harmless.
    """

    __tablename__ = "funding_payments"
    __table_args__ = (UniqueConstraint("token", "ts", name="uq_funding_payments_token_ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    rate: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)


class SignalSnapshotRow(Base):
    """Revision 0002: the inputs a decision saw (JSON), and which of them were stale."""

    __tablename__ = "signal_snapshots"
    as_of: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    stale: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class KillSwitchRow(Base):
    """Revision 0003: every trip of the kill switch, with its numbers, and how it was cleared.

    The active trip is the newest row with no ``cleared_at``. Kept as history rather than a
    flag, so an operator can see how often and why the daemon stopped taking risk.
    """

    __tablename__ = "kill_switch_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tripped_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text)
    equity: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    high_water: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cleared_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SectorMetricPointRow(Base):
    """Revision 0007: each provider's daily sector figure as first seen by the daemon.

    A decision on a venue reads providers whose history is revised later; kept as first
    seen, the figures can be exported in the replay format (``sectorbot export-signals``) and
    any day replayed with what the engine knew. ``day`` is the day the figure closes; it
    became visible at the next 00:00 UTC.
    """

    __tablename__ = "sector_metric_points"
    sector: Mapped[str] = mapped_column(String(32), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[float] = mapped_column(Float(53))
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VenueCandleRow(Base):
    """Revision 0008: each closed daily candle a decision on a venue read, as first seen.

    ``day`` is the candle's UTC day (it closed at the next 00:00 UTC). Prices and volumes are
    the exact text of the values the engine read (``quote_volume`` is the one it ranked
    liquidity on). ``high``/``low`` are None where the venue's were missing or inconsistent
    (the engine then read no extremes for the day). A later revision by the venue never
    replaces a kept day.
    """

    __tablename__ = "venue_candles"
    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    venue: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(8))
    open: Mapped[Decimal] = mapped_column(DecimalText)
    high: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    low: Mapped[Decimal | None] = mapped_column(DecimalText, nullable=True)
    close: Mapped[Decimal] = mapped_column(DecimalText)
    volume: Mapped[Decimal] = mapped_column(DecimalText)
    quote_volume: Mapped[Decimal] = mapped_column(DecimalText)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VenueFundingRow(Base):
    """Revision 0008: each funding reading a decision on a venue read, as first seen.

    ``ts`` is the cycle's ``as_of`` (the reading is stamped there, as the engine saw it);
    ``rate / interval_hours`` is exactly the per-hour rate the engine read.
    """

    __tablename__ = "venue_funding"
    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    venue: Mapped[str] = mapped_column(String(16))
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    interval_hours: Mapped[Decimal] = mapped_column(DecimalText)


class KeyValueRow(Base):
    """Small daemon state: replay cursor, rotation memory, paper account, high-water mark."""

    __tablename__ = "kv"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


Index("ix_decisions_as_of", DecisionRow.as_of)
