"""Schema migrations: an old state database upgrades in place without losing or changing a row.

The "first version" database is built from ``V1`` below, a frozen copy of the tables as
``create_all`` made them before Alembic existed. It must never follow the current models:
its whole point is to stay what old files on disk actually contain.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    exc,
    inspect,
    select,
    text,
)

from bot.domain.models import MarketKind, OrderResult, OrderStatus, OrderType, Side
from bot.store.engine import create_store_engine, parse_target
from bot.store.migrate import (
    SchemaError,
    alembic_config,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from bot.store.repo import StateStore
from bot.store.schema import SCHEMA_VERSION
from tests.pg_server import session_server

# -- the frozen first-version schema ---------------------------------------------------------
V1 = MetaData()
_D, _T = String(64), DateTime(timezone=True)  # DecimalText and UtcDateTime, as stored
Table("decisions", V1, Column("decision_id", String(64), primary_key=True),
      Column("seq", Integer, nullable=False, unique=True), Column("as_of", _T, nullable=False),
      Column("action", String(32), nullable=False), Column("payload", Text, nullable=False),
      Column("created_at", _T, nullable=False),
      Index("ix_decisions_as_of", "as_of"))
Table("orders", V1, Column("client_id", String(64), primary_key=True),
      Column("decision_id", String(64), nullable=True, index=True),
      Column("token", String(32), nullable=False), Column("market", String(8), nullable=False),
      Column("side", String(8), nullable=False),
      Column("order_type", String(16), nullable=False), Column("amount", _D, nullable=False),
      Column("price", _D), Column("trigger_price", _D),
      Column("reduce_only", Boolean, nullable=False), Column("leverage", _D),
      Column("status", String(24), nullable=False, index=True),
      Column("exchange_id", String(64)), Column("filled", _D, nullable=False),
      Column("average_price", _D), Column("fee", _D, nullable=False),
      Column("reason", Text, nullable=False), Column("error", Text),
      Column("created_at", _T, nullable=False), Column("updated_at", _T, nullable=False))
Table("fills", V1, Column("id", Integer, primary_key=True, autoincrement=True),
      Column("client_id", String(64), nullable=False, index=True),
      Column("token", String(32), nullable=False), Column("market", String(8), nullable=False),
      Column("side", String(8), nullable=False), Column("amount", _D, nullable=False),
      Column("price", _D, nullable=False), Column("fee", _D, nullable=False),
      Column("ts", _T, nullable=False))
Table("positions", V1, Column("token", String(32), primary_key=True),
      Column("market", String(8), primary_key=True), Column("amount", _D, nullable=False),
      Column("entry_price", _D), Column("mark_price", _D), Column("leverage", _D),
      Column("stop_price", _D), Column("liquidation_price", _D),
      Column("updated_at", _T, nullable=False))
Table("equity", V1, Column("ts", _T, primary_key=True), Column("equity", _D, nullable=False),
      Column("cash", _D, nullable=False))
Table("kv", V1, Column("key", String(64), primary_key=True),
      Column("value", Text, nullable=False), Column("updated_at", _T, nullable=False))

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
T1 = datetime(2024, 1, 3, tzinfo=UTC)


def v1_rows(sqlite: bool) -> dict[str, list[dict[str, Any]]]:
    """Real-looking rows for every v1 table, in the form the old code wrote them."""
    def ts(when: datetime) -> datetime:  # old SQLite files hold naive UTC
        return when.replace(tzinfo=None) if sqlite else when

    order = dict(decision_id="d-1", token="SOL", market="spot", side="buy", order_type="market",
                 price=None, trigger_price=None, reduce_only=False, leverage=None,
                 exchange_id=None, average_price=None, error=None, created_at=ts(T0),
                 updated_at=ts(T0))
    return {
        "decisions": [
            dict(decision_id="d-1", seq=1, as_of=ts(T0), action="rotate",
                 payload='{"action": "rotate", "reasons": ["defi leads"]}', created_at=ts(T0)),
            dict(decision_id="d-2", seq=2, as_of=ts(T1), action="hold",
                 payload='{"action": "hold", "reasons": []}', created_at=ts(T1))],
        "orders": [
            {**order, "client_id": "sb-1", "amount": "1.23456789", "status": "filled",
             "exchange_id": "42", "filled": "1.23456789", "average_price": "101.123456789012",
             "fee": "0.0012", "reason": "rotate in"},
            {**order, "client_id": "sb-2", "token": "ARB", "market": "perp", "side": "sell",
             "order_type": "stop_market", "trigger_price": "0.92", "reduce_only": True,
             "leverage": "3", "amount": "100", "status": "pending", "filled": "0", "fee": "0",
             "reason": "stop", "error": "timeout"}],
        "fills": [dict(client_id="sb-1", token="SOL", market="spot", side="buy",
                       amount="1.23456789", price="101.123456789012", fee="0.0012", ts=ts(T0))],
        "positions": [
            dict(token="SOL", market="spot", amount="1.23456789", entry_price=None,
                 mark_price="101.5", leverage=None, stop_price=None, liquidation_price=None,
                 updated_at=ts(T0)),
            dict(token="ARB", market="perp", amount="-100", entry_price="1.1", mark_price="1.05",
                 leverage="3", stop_price="1.2", liquidation_price="1.45", updated_at=ts(T0))],
        "equity": [dict(ts=ts(T0), equity="1410.0", cash="1000"),
                   dict(ts=ts(T1), equity="1395.123456789", cash="1000")],
        "kv": [dict(key="schema_version", value="1", updated_at=ts(T0)),
               dict(key="replay_cursor", value='"2024-01-03T00:00:00+00:00"',
                    updated_at=ts(T1)),
               dict(key="risk.killswitch", value='{"reason": "drawdown 26.0% >= 25%"}',
                    updated_at=ts(T1))],
    }


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest,
            tmp_path: Path) -> Iterator[Callable[[], Path | str]]:
    """Hands out fresh, empty locations on one backend: files, or PostgreSQL databases."""
    names = iter(range(1000))

    def fresh() -> Path | str:
        if request.param == "sqlite":
            return tmp_path / f"state{next(names)}.sqlite3"
        return session_server(request.config).fresh_url()

    yield fresh


@pytest.fixture
def location(backend: Callable[[], Path | str]) -> Path | str:
    return backend()


@pytest.fixture
def raw(location: Path | str) -> Iterator[Engine]:
    """A plain engine on the location, bypassing the store (as old code or an operator would)."""
    engine = create_engine(parse_target(location).url)
    yield engine
    engine.dispose()


def migrate(location: Path | str, target: str = "head") -> None:
    engine = create_store_engine(parse_target(location), for_migrations=True)
    try:
        upgrade_to_head(engine, target)
    finally:
        engine.dispose()


def fill_v1(engine: Engine, *, version_row: bool = True) -> None:
    rows = v1_rows(engine.dialect.name == "sqlite")
    if not version_row:
        rows["kv"] = rows["kv"][1:]
    with engine.begin() as conn:
        for table in V1.sorted_tables:
            conn.execute(table.insert(), rows[table.name])


def dump(engine: Engine, metadata: MetaData = V1) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in ``metadata`` (only its columns), in primary-key order."""
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            cols = [text(f'"{c.name}"') for c in table.columns]
            keys = [text(f'"{c.name}"') for c in table.primary_key.columns]
            out[table.name] = [tuple(r) for r in conn.execute(
                select(*cols).select_from(text(f'"{table.name}"')).order_by(*keys))]
    return out


def schema_of(engine: Engine) -> dict[str, Any]:
    """A comparable description of every table: columns, keys, indexes, unique constraints."""
    insp = inspect(engine)
    described: dict[str, Any] = {}
    for name in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        described[name] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
            insp.get_pk_constraint(name)["constrained_columns"],
            sorted((i["name"], tuple(i["column_names"]), i["unique"])
                   for i in insp.get_indexes(name)),
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            sorted(tuple(f["constrained_columns"]) for f in insp.get_foreign_keys(name)))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            described["ddl"] = sorted(conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE name != 'alembic_version' "
                "AND sql IS NOT NULL").all())
    return described


def test_revision_0001_is_exactly_the_pre_alembic_schema(
        location: Path | str, raw: Engine, backend: Callable[[], Path | str]) -> None:
    migrate(location, "0001")
    frozen = create_engine(parse_target(backend()).url)
    V1.create_all(frozen)
    assert schema_of(raw) == schema_of(frozen)
    frozen.dispose()


@pytest.mark.parametrize("origin", ["create_all", "revision_0001"])
def test_a_v1_database_with_rows_upgrades_with_nothing_lost(location: Path | str, raw: Engine,
                                                            origin: str) -> None:
    if origin == "create_all":  # the pre-Alembic file: no alembic_version table at all
        V1.create_all(raw)
    else:
        migrate(location, "0001")
    fill_v1(raw)
    before = dump(raw)

    store = StateStore(location)
    with raw.connect() as conn:
        assert current_revision(conn) == head_revision()
    after = dump(raw)
    # Every row still there, byte for byte; the schema_version mirror moves on and the
    # kill switch moves from kv into its own table (0003), still tripped.
    assert {t: rows for t, rows in after.items() if t != "kv"} == {
        t: rows for t, rows in before.items() if t != "kv"}
    moved = ("schema_version", "risk.killswitch")
    assert [r for r in after["kv"] if r[0] not in moved] == [
        r for r in before["kv"] if r[0] not in moved]
    assert not [r for r in after["kv"] if r[0] == "risk.killswitch"]
    active = store.active_kill_switch()
    assert active is not None and (active.reason, active.tripped_at) == (
        "drawdown 26.0% >= 25%", T1)
    assert [r[1] for r in after["kv"] if r[0] == "schema_version"] == [str(SCHEMA_VERSION)]

    # The same rows, read through the store, with exact values and aware datetimes.
    orders = {o.client_id: o for o in store.orders()}
    assert orders["sb-1"].average_price == Decimal("101.123456789012")
    assert orders["sb-2"].trigger_price == Decimal("0.92") and orders["sb-2"].reduce_only
    assert all(o.trigger_id is None for o in orders.values())
    (fill,) = store.fills()
    assert (fill.amount, fill.ts) == (Decimal("1.23456789"), T0)
    assert [p.amount for p in store.positions()] == [Decimal("-100"), Decimal("1.23456789")]
    assert [(e.ts, e.equity) for e in store.equity_curve()] == [
        (T0, Decimal("1410.0")), (T1, Decimal("1395.123456789"))]
    assert [d.decision_id for d in store.decisions()] == ["d-1", "d-2"]
    last = store.last_decision()
    assert last is not None and last.as_of == T1
    assert store.get("replay_cursor") == "2024-01-03T00:00:00+00:00"
    assert store.get("schema_version") == SCHEMA_VERSION

    # The new tables exist, start empty, and work against the old rows.
    assert set(inspect(raw).get_table_names()) >= {"order_events", "funding_payments",
                                                   "signal_snapshots", "alembic_version"}
    assert store.order_history("sb-2") == [] and store.funding_payments() == []
    store.journal_result(OrderResult("sb-2", "43", "ARB", MarketKind.PERP, Side.SELL,
                                     OrderType.STOP_MARKET, OrderStatus.OPEN, Decimal(100),
                                     Decimal(0), None, Decimal(0)), trigger_id="algo-1")
    assert [e.status for e in store.order_history("sb-2")] == ["open"]
    assert store.record_funding("ARB", T1, Decimal("-0.42")) is True
    cleared = store.clear_kill_switch("test")
    assert cleared is not None and store.active_kill_switch() is None
    assert [(k.reason, k.cleared_by) for k in store.kill_switch_history()] == [
        ("drawdown 26.0% >= 25%", "test")]
    store.close()


def test_a_cleared_kill_switch_leaves_no_trip_behind(location: Path | str, raw: Engine) -> None:
    migrate(location, "0002")
    with raw.begin() as conn:
        conn.execute(text("INSERT INTO kv (key, value, updated_at) VALUES "
                          "('risk.killswitch', 'null', :t)"), {"t": T0})
    migrate(location)
    store = StateStore(location)
    try:
        assert store.active_kill_switch() is None and store.kill_switch_history() == []
        assert store.get("risk.killswitch") is None
    finally:
        store.close()


def test_downgrading_0003_puts_a_tripped_switch_back_in_kv(location: Path | str,
                                                           raw: Engine) -> None:
    store = StateStore(location)
    store.trip_kill_switch("5 consecutive failed jobs", Decimal("900"), Decimal("1000"))
    assert store.trip_kill_switch("again").reason == "5 consecutive failed jobs"  # one at a time
    store.close()
    engine = create_store_engine(parse_target(location), for_migrations=True)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    engine.dispose()
    assert "kill_switch_events" not in inspect(raw).get_table_names()
    with raw.connect() as conn:
        value = conn.execute(text("SELECT value FROM kv WHERE key = 'risk.killswitch'")).scalar()
    assert json.loads(value) == {"reason": "5 consecutive failed jobs"}


def test_upgrading_twice_is_a_no_op(location: Path | str, raw: Engine) -> None:
    V1.create_all(raw)
    fill_v1(raw)
    StateStore(location).close()
    with raw.connect() as conn:
        tables = MetaData()
        tables.reflect(conn)
    first = dump(raw, tables)
    migrate(location)
    StateStore(location).close()
    assert dump(raw, tables) == first
    assert first["alembic_version"] == [(head_revision(),)]


def test_a_pre_alembic_database_without_its_version_row_is_still_adopted(
        location: Path | str, raw: Engine) -> None:
    # create_all ran, then the process died before writing kv["schema_version"].
    V1.create_all(raw)
    fill_v1(raw, version_row=False)
    store = StateStore(location)
    assert store.get("schema_version") == SCHEMA_VERSION and len(store.orders()) == 2
    store.close()


def test_a_failing_migration_leaves_the_database_as_it_was(location: Path | str,
                                                           raw: Engine) -> None:
    V1.create_all(raw)
    fill_v1(raw)
    with raw.begin() as conn:  # a stray table makes revision 0002 fail half-way through
        conn.exec_driver_sql("CREATE TABLE order_events (id INTEGER PRIMARY KEY)")
    before = dump(raw)
    with pytest.raises(exc.DBAPIError):
        StateStore(location)
    tables = set(inspect(raw).get_table_names())
    assert "alembic_version" not in tables and "funding_payments" not in tables
    assert "trigger_id" not in {c["name"] for c in inspect(raw).get_columns("orders")}
    assert dump(raw) == before


OPEN_AT = """
import sys, time
from bot.store.repo import StateStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start together, imports done
StateStore(sys.argv[1]).close()
"""


def test_processes_opening_at_once_migrate_one_after_the_other(location: Path | str,
                                                               raw: Engine) -> None:
    # The daemon and `sectorbot status` may start together on an old database: real processes,
    # because only the database lock (not an in-process one) can keep them apart.
    V1.create_all(raw)
    fill_v1(raw)
    start_at = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT, str(location), str(start_at)],
                              cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        errors = [p.communicate(timeout=30)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with raw.connect() as conn:
        assert current_revision(conn) == head_revision()
    assert len(dump(raw)["orders"]) == 2


# -- SQLite-only edge cases --------------------------------------------------------------------
def test_refuses_what_it_cannot_have_written(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.sqlite3"
    engine = create_engine(f"sqlite:///{foreign}")
    V1.create_all(engine)
    with engine.begin() as conn:
        conn.execute(V1.tables["kv"].insert(), [dict(key="schema_version", value="7",
                                                     updated_at=T0.replace(tzinfo=None))])
    with pytest.raises(SchemaError, match="schema_version=7"):
        StateStore(foreign)

    partial = tmp_path / "partial.sqlite3"
    engine = create_engine(f"sqlite:///{partial}")
    V1.tables["kv"].create(engine)
    with pytest.raises(SchemaError, match="refusing to guess"):
        StateStore(partial)

    newer = tmp_path / "newer.sqlite3"
    StateStore(newer).close()
    engine = create_engine(f"sqlite:///{newer}")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaError, match="newer version"):
        StateStore(newer)
