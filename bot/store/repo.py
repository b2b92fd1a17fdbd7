"""The state store: a SQLite file (WAL) or a PostgreSQL database behind a few methods.

The daemon is crash-only: everything it needs to resume (replay cursor, rotation memory, paper
account, the order journal) is committed here before the step that depends on it. Opening the
store migrates the schema in place first (see ``bot.store.migrate``), so a new build can start
on an old file without losing a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.domain.codec import decision_to_dict
from bot.domain.models import Decision, Portfolio
from bot.store.engine import StoreTarget, create_store_engine, parse_target
from bot.store.journal import OrderJournal
from bot.store.market_data import MarketDataLog
from bot.store.migrate import require_head, upgrade_to_head
from bot.store.schema import (
    DecisionRow,
    EquityRow,
    FundingPaymentRow,
    KeyValueRow,
    KillSwitchRow,
    PositionRow,
    SignalSnapshotRow,
)
from bot.store.sector_metrics import SectorMetricLog


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredDecision:
    decision_id: str
    as_of: datetime
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredSignalSnapshot:
    as_of: datetime
    payload: dict[str, Any]
    stale: frozenset[str]


class StateStore(OrderJournal, SectorMetricLog, MarketDataLog):
    """Durable daemon state in one SQLite file or one PostgreSQL database.

    ``path_or_url`` is a filesystem path (SQLite, the default) or a SQLAlchemy URL such as
    ``postgresql+psycopg://user:pw@host/db``. ``path`` is the SQLite file, or None on a server;
    ``location`` names either for humans (without the password).
    """

    def __init__(self, path_or_url: Path | str, *, read_only: bool = False,
                 durable: bool = True) -> None:
        """Open (and migrate) the store; ``read_only`` opens it without writing anything,
        not even a migration, for commands that only look (``status``, ``explain``)."""
        target: StoreTarget = parse_target(path_or_url)
        self.path: Path | None = target.path
        self.location = target.location
        self.read_only = read_only
        if read_only:
            self.engine: Engine = create_store_engine(target, read_only=True)
            try:
                require_head(self.engine)
            except BaseException:
                self.engine.dispose()
                raise
        else:
            migration_engine = create_store_engine(target, for_migrations=True)
            try:
                upgrade_to_head(migration_engine)
            finally:
                migration_engine.dispose()
            self.engine = create_store_engine(target, durable=durable)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._durable = durable
        self._batch: Session | None = None
        self._statements: dict[str, Any] = {}

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One committed transaction per call; inside :meth:`batch`, a block of the batch's
        one transaction that behaves like its own (a clean identity map before and after)."""
        batch = self._batch
        if batch is None:
            with self._sessions.begin() as s:
                yield s
            return
        try:
            yield batch
            batch.flush()
        finally:
            # What a block returns is detached with its state loaded, exactly as after a
            # commit with expire_on_commit=False; the next block reads the database afresh
            # (a Core upsert is never hidden behind an object cached by an earlier block).
            # A block that raises keeps what it already wrote in the step's transaction
            # (its unflushed objects are discarded). That equals a rolled-back commit only
            # because the one error a step catches and goes on from, JournalConflict, is
            # raised before its block writes; any other error fails the step, and the whole
            # step's transaction rolls back (a backtest stops there).
            batch.expunge_all()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Everything inside in one transaction: a backtest step.

        Committing each write on its own is what keeps the live daemon's write-ahead
        journal honest (an order's intent is on disk before it is sent). A backtest's store
        is throwaway and marked unresumable, so no crash can observe what a step writes
        before the step ends; one commit per step removes about half the store's cost.
        Refused on a durable store, so the live daemon can never batch by mistake."""
        if self._durable:
            raise RuntimeError("batch() is for a throwaway (durable=False) store only")
        if self._batch is not None:
            yield
            return
        with self._sessions.begin() as s:
            self._batch = s
            try:
                yield
            finally:
                self._batch = None

    # -- key/value -------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        with self.session() as s:
            value = s.connection().execute(_KEY_VALUE, {"key": key}).scalar()
            return None if value is None else json.loads(value)

    def put(self, key: str, value: Any) -> None:
        self.put_many({key: value})

    def put_many(self, values: Mapping[str, Any]) -> None:
        """Write several keys in one transaction (all or none)."""
        with self.session() as s:
            self._upsert(s, values)

    def _upsert(self, s: Session, values: Mapping[str, Any]) -> None:
        """Each key as one upsert rather than a read-then-write through the ORM."""
        now = _utcnow()
        rows = [{"key": k, "value": json.dumps(v, sort_keys=True), "updated_at": now}
                for k, v in values.items()]
        if not rows:
            return
        # One statement with bound parameters (compiled once and cached), executed per row.
        s.connection().execute(self._replace(KeyValueRow, KeyValueRow.key), rows)

    def _replace(self, table: Any, key: Any) -> Any:
        """An insert that overwrites the row holding the same ``key``: one statement, built
        once per table and run on the connection (Core), instead of the ORM's read-then-write
        ``merge`` or its bulk-insert machinery."""
        cached = self._statements.get(table.__tablename__)
        if cached is not None:
            return cached
        dialect_insert = postgresql_insert if self.engine.dialect.name == "postgresql" \
            else sqlite_insert
        stmt = dialect_insert(table)
        columns = [c.name for c in table.__table__.columns if c.name != key.name]
        excluded = stmt.excluded
        built = stmt.on_conflict_do_update(
            index_elements=[key], set_={c: excluded[c] for c in columns})
        self._statements[table.__tablename__] = built
        return built

    # -- kill switch -----------------------------------------------------------------------
    def active_kill_switch(self) -> KillSwitchRow | None:
        """The trip in force (newest uncleared), or None when the switch is armed."""
        with self.session() as s:
            return s.scalars(_ACTIVE_TRIP).first()

    def trip_kill_switch(self, reason: str, equity: Decimal | None = None,
                         high_water: Decimal | None = None,
                         at: datetime | None = None) -> KillSwitchRow:
        """Record a trip; an already tripped switch is returned unchanged (one trip at a time).
        ``at`` is the venue's clock (the simulated one in replay); default now."""
        with self.session() as s:
            active = s.scalars(_ACTIVE_TRIP).first()
            if active is not None:
                return active
            row = KillSwitchRow(tripped_at=at or _utcnow(), reason=reason, equity=equity,
                                high_water=high_water)
            s.add(row)
            s.flush()
            return row

    def clear_kill_switch(self, cleared_by: str) -> KillSwitchRow | None:
        """Clear the trip in force; returns it (None when nothing was tripped)."""
        with self.session() as s:
            active = s.scalars(select(KillSwitchRow).where(KillSwitchRow.cleared_at.is_(None))
                               .order_by(KillSwitchRow.id.desc())).all()
            for row in active:
                row.cleared_at, row.cleared_by = _utcnow(), cleared_by
            return active[0] if active else None

    def kill_switch_history(self) -> list[KillSwitchRow]:
        with self.session() as s:
            return list(s.scalars(select(KillSwitchRow).order_by(KillSwitchRow.id)))

    # -- decisions -------------------------------------------------------------------------
    def save_decision(self, decision: Decision,
                      state: Mapping[str, Any] | None = None) -> None:
        """Keep a decision (once: a cycle re-run after a crash keeps the first) and, in the
        same transaction, the engine state it leaves (``state``: keys to write), so the
        store never holds one without the other."""
        payload = json.dumps(decision_to_dict(decision), sort_keys=True)
        with self.session() as s:
            self._upsert(s, state or {})
            conn = s.connection()
            if conn.execute(_DECISION_KNOWN, {"id": decision.decision_id}).first() is not None:
                return
            seq = (conn.execute(_LAST_DECISION_SEQ).scalar() or 0) + 1
            conn.execute(_NEW_DECISION, [{
                "decision_id": decision.decision_id, "seq": seq, "as_of": decision.as_of,
                "action": decision.action, "payload": payload, "created_at": _utcnow()}])

    def last_decision(self) -> StoredDecision | None:
        with self.session() as s:
            row = s.scalars(select(DecisionRow).order_by(DecisionRow.seq.desc()).limit(1)).first()
            return None if row is None else _stored(row)

    def decision(self, decision_id: str) -> StoredDecision | None:
        with self.session() as s:
            row = s.scalars(
                select(DecisionRow).where(DecisionRow.decision_id.startswith(decision_id))
            ).first()
            return None if row is None else _stored(row)

    def decisions(self) -> list[StoredDecision]:
        with self.session() as s:
            return [_stored(r) for r in s.scalars(select(DecisionRow).order_by(DecisionRow.seq))]

    # -- positions and equity --------------------------------------------------------------
    def record_portfolio(self, portfolio: Portfolio, ts: datetime) -> None:
        """Replace the positions table with the venue's holdings and append an equity point."""
        with self.session() as s:
            s.execute(delete(PositionRow))
            rows = [dict(token=token, market="spot", amount=amount, entry_price=None,
                         mark_price=portfolio.prices.get(token), leverage=None,
                         stop_price=None, liquidation_price=None, updated_at=ts)
                    for token, amount in sorted(portfolio.spot.items()) if amount != 0]
            rows += [dict(token=token, market="perp", amount=p.amount,
                          entry_price=p.entry_price, mark_price=p.mark_price,
                          leverage=p.leverage, stop_price=p.stop_price,
                          liquidation_price=p.liquidation_price, updated_at=ts)
                     for token, p in sorted(portfolio.perps.items())]
            if rows:
                s.connection().execute(insert(PositionRow), rows)
            s.connection().execute(self._replace(EquityRow, EquityRow.ts),
                      [{"ts": ts, "equity": portfolio.equity(), "cash": portfolio.cash}])

    def positions(self) -> list[PositionRow]:
        with self.session() as s:
            return list(s.scalars(select(PositionRow).order_by(PositionRow.market,
                                                               PositionRow.token)))

    def equity_curve(self) -> list[EquityRow]:
        with self.session() as s:
            return list(s.scalars(select(EquityRow).order_by(EquityRow.ts)))

    # -- funding and signal inputs --------------------------------------------------------
    def record_funding(self, token: str, ts: datetime, amount: Decimal,
                       rate: Decimal | None = None) -> bool:
        """Record one funding payment. False if (token, ts) is already recorded (re-polls)."""
        with self.session() as s:
            exists = s.scalar(select(FundingPaymentRow.id).where(
                FundingPaymentRow.token == token, FundingPaymentRow.ts == ts))
            if exists is not None:
                return False
            s.add(FundingPaymentRow(token=token, ts=ts, amount=amount, rate=rate))
            return True

    def funding_payments(self, token: str | None = None) -> list[FundingPaymentRow]:
        with self.session() as s:
            q = select(FundingPaymentRow).order_by(FundingPaymentRow.ts, FundingPaymentRow.token)
            if token is not None:
                q = q.where(FundingPaymentRow.token == token)
            return list(s.scalars(q))

    def record_signal_snapshot(self, as_of: datetime, payload: Mapping[str, Any],
                               stale: Iterable[str] = ()) -> None:
        """Keep what a decision saw. A cycle re-run after a crash replaces its snapshot."""
        row = {"as_of": as_of, "created_at": _utcnow(),
               "payload": json.dumps(payload, sort_keys=True, default=_json_default),
               "stale": json.dumps(sorted(set(stale)))}
        with self.session() as s:
            s.connection().execute(
                self._replace(SignalSnapshotRow, SignalSnapshotRow.as_of), [row])

    def signal_snapshot(self, as_of: datetime | None = None) -> StoredSignalSnapshot | None:
        """The snapshot taken at ``as_of``, or the newest one."""
        with self.session() as s:
            if as_of is not None:
                row = s.get(SignalSnapshotRow, as_of)
            else:
                row = s.scalars(select(SignalSnapshotRow)
                                .order_by(SignalSnapshotRow.as_of.desc()).limit(1)).first()
            if row is None:
                return None
            return StoredSignalSnapshot(row.as_of, json.loads(row.payload),
                                        frozenset(json.loads(row.stale)))


# Statements run every step, built once: constructing the expression cost more than the
# database did (they are immutable and carry their values as bound parameters).
_KEY_VALUE = select(KeyValueRow.value).where(KeyValueRow.key == bindparam("key"))
_ACTIVE_TRIP = (select(KillSwitchRow).where(KillSwitchRow.cleared_at.is_(None))
                .order_by(KillSwitchRow.id.desc()).limit(1))
_DECISION_KNOWN = select(DecisionRow.seq).where(DecisionRow.decision_id == bindparam("id"))
_LAST_DECISION_SEQ = select(func.max(DecisionRow.seq))
_NEW_DECISION = insert(DecisionRow)


def _stored(row: DecisionRow) -> StoredDecision:
    return StoredDecision(row.decision_id, row.as_of, row.action, json.loads(row.payload))


def _json_default(value: Any) -> Any:
    """Signal payloads carry decimals, datetimes and sets; JSON has none of them."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} in a signal snapshot")
