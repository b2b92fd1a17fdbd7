"""The same persistence guarantees on SQLite and PostgreSQL: each test runs on both backends.

The PostgreSQL run uses a throwaway server (tests/pg_server.py) and skips, saying what to
install, when no server binaries are available. Its databases use a non-UTC session time zone
on purpose, so a store that leaned on the session zone would fail here.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.domain.models import (
    Bucket,
    Decision,
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    PerpPosition,
    Portfolio,
    Regime,
    Side,
)
from bot.store.engine import parse_target
from bot.store.migrate import head_revision
from bot.store.repo import StateStore
from bot.store.schema import SCHEMA_VERSION, Base
from tests.pg_server import session_server

T0 = datetime(2024, 1, 2, tzinfo=UTC)
# Values a float, a fixed-scale NUMERIC or a careless str() would all mangle.
AWKWARD = [Decimal("101.123456789012"), Decimal("0.000000000000000001"), Decimal("-0.5"),
           Decimal("123456789012345678901234567890.123456789"), Decimal("1.10"), Decimal("0")]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store lives: a file, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "state.sqlite3"
    return session_server(request.config).fresh_url()


@pytest.fixture
def open_store(location: Path | str) -> Iterator[Callable[[], StateStore]]:
    """Open (or reopen, as after a crash) the store; everything opened is closed afterwards."""
    opened: list[StateStore] = []

    def open_() -> StateStore:
        opened.append(StateStore(location))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def intent(cid: str = "sb-x-001", amount: Decimal = Decimal("1.23456789")) -> OrderIntent:
    return OrderIntent(cid, "SOL", MarketKind.SPOT, Side.BUY, amount, reason="rotate in")


def result(status: OrderStatus, filled: str, cid: str = "sb-x-001") -> OrderResult:
    return OrderResult(cid, "42", "SOL", MarketKind.SPOT, Side.BUY, OrderType.MARKET, status,
                       Decimal("1.23456789"), Decimal(filled), Decimal("101.123456789012"),
                       Decimal("0.0012"), timestamp=T0)


def test_journal_refuses_a_second_intent_with_the_same_client_id(
        open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    assert store.journal_intent(intent(), "d1") is True
    assert store.journal_intent(intent(), "d1") is False
    assert open_store().journal_intent(intent(), "d1") is False  # also after a restart
    rows = store.orders()
    assert len(rows) == 1 and rows[0].status == "pending" and rows[0].trigger_id is None
    assert [e.status for e in store.order_history("sb-x-001")] == ["pending"]


def test_decimals_round_trip_exactly(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    for i, value in enumerate(AWKWARD):
        store.journal_intent(intent(f"sb-d-{i}", amount=value), None)
        store.record_funding("ARB", T0 + timedelta(hours=i), value, rate=value)
    reopened = open_store()
    amounts = {o.client_id: o.amount for o in reopened.orders()}
    for i, value in enumerate(AWKWARD):
        assert format(amounts[f"sb-d-{i}"], "f") == format(value, "f")
    funding = reopened.funding_payments("ARB")
    assert [format(f.amount, "f") for f in funding] == [format(v, "f") for v in AWKWARD]
    assert [f.rate for f in funding] == AWKWARD


def test_datetimes_come_back_aware_utc_whatever_zone_went_in(
        open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    ist = timezone(timedelta(hours=5, minutes=30))
    when = datetime(2024, 3, 1, 9, 15, 30, 123456, tzinfo=ist)
    store.record_portfolio(Portfolio(Decimal(1000), {}, {}, {}), when)
    (point,) = open_store().equity_curve()
    assert point.ts == when and point.ts.tzinfo == UTC
    assert point.ts.hour == 3 and point.ts.minute == 45 and point.ts.microsecond == 123456
    # What is on disk must be the right instant too, not merely round-trip through our own code:
    # other tools (psql, backups, SQL reports) read it without our type decorator.
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW timezone").scalar() != "UTC"  # keeps this honest
            epoch = conn.exec_driver_sql("SELECT extract(epoch FROM ts) FROM equity").scalar_one()
            assert Decimal(epoch) == Decimal(str(when.timestamp()))
        else:
            raw = conn.exec_driver_sql("SELECT ts FROM equity").scalar()
            assert raw == "2024-03-01 03:45:30.123456"  # naive UTC, as files always held
    with pytest.raises(Exception, match="naive datetime refused"):
        store.record_portfolio(Portfolio(Decimal(1), {}, {}, {}), datetime(2024, 1, 1))


def test_result_records_fill_once_and_history_once(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    store.journal_intent(intent(), "d1")
    store.journal_result(result(OrderStatus.PARTIALLY_FILLED, "0.5"))
    store.journal_result(result(OrderStatus.FILLED, "1.23456789"), trigger_id="algo-7")
    store.journal_result(result(OrderStatus.FILLED, "1.23456789"))  # the same answer again
    reopened = open_store()
    fills = reopened.fills()
    assert [f.amount for f in fills] == [Decimal("0.5"), Decimal("0.73456789")]
    assert fills[0].price == Decimal("101.123456789012") and fills[0].ts == T0
    (order,) = reopened.orders()
    assert order.status == "filled" and order.trigger_id == "algo-7"
    history = reopened.order_history("sb-x-001")
    assert [e.status for e in history] == ["pending", "partially_filled", "filled"]
    assert all(e.at.tzinfo == UTC for e in history)
    assert reopened.order_history("nope") == []


def test_failures_are_recorded_once_per_distinct_error(
        open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    store.journal_intent(intent(), None)
    for _ in range(3):
        store.journal_failure("sb-x-001", OrderStatus.UNKNOWN, "timeout")
    store.journal_failure("sb-x-001", OrderStatus.REJECTED, "insufficient margin")
    store.journal_failure("never-journalled", OrderStatus.REJECTED, "ignored")
    history = store.order_history("sb-x-001")
    assert [(e.status, e.detail) for e in history] == [
        ("pending", "rotate in"), ("unknown", "timeout"), ("rejected", "insufficient margin")]
    assert store.orders()[0].error == "insufficient margin"


def test_portfolio_snapshot_replaces_positions(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    perp = PerpPosition("ARB", Decimal(100), Decimal(1), Decimal(3), Decimal("1.1"),
                        stop_price=Decimal("0.92"))
    pf = Portfolio(Decimal(1000), {"BTC": Decimal("0.01")}, {"ARB": perp},
                   {"BTC": Decimal(40000), "ARB": Decimal("1.1")})
    store.record_portfolio(pf, T0)
    positions = open_store().positions()
    assert [(p.market, p.token, p.amount) for p in positions] == [
        ("perp", "ARB", Decimal(100)), ("spot", "BTC", Decimal("0.01"))]
    assert positions[0].stop_price == Decimal("0.92")
    store.record_portfolio(Portfolio(Decimal(1000), {}, {}, {}), T0.replace(day=3))
    assert store.positions() == []
    curve = open_store().equity_curve()
    assert [p.equity for p in curve] == [Decimal("1410.0"), Decimal(1000)]
    assert curve[0].ts == T0


def test_decisions_are_kept_once_in_order(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    for i, action in enumerate(("rebalance", "hold")):
        d = Decision(f"{i:016x}abc", T0 + timedelta(hours=i), Regime.BULL, action,
                     {"BTC": 0.6}, {Bucket.CORE: 1.0}, 0.1, (), (), None, ("why",), 0.8)
        store.save_decision(d)
        store.save_decision(d)  # a cycle re-run after a crash
    reopened = open_store()
    assert [d.action for d in reopened.decisions()] == ["rebalance", "hold"]
    last = reopened.last_decision()
    assert last is not None and last.as_of == T0 + timedelta(hours=1)
    found = reopened.decision("0000000000000000")  # the CLI accepts an id prefix
    assert found is not None and found.payload["reasons"] == ["why"]


def test_kv_round_trips_json_and_mirrors_the_schema_version(
        open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    assert store.get("missing") is None
    store.put("killswitch", {"tripped": True, "reason": "drawdown"})
    store.put("killswitch", {"tripped": False})
    assert open_store().get("killswitch") == {"tripped": False}
    assert store.get("schema_version") == SCHEMA_VERSION == int(head_revision())


def test_funding_is_recorded_once_per_token_and_time(
        open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    assert store.record_funding("ARB", T0, Decimal("-0.42"), Decimal("0.0001")) is True
    assert store.record_funding("ARB", T0, Decimal("-0.42"), Decimal("0.0001")) is False
    assert store.record_funding("OP", T0, Decimal("0.10")) is True
    assert [(f.token, f.amount, f.rate) for f in open_store().funding_payments()] == [
        ("ARB", Decimal("-0.42"), Decimal("0.0001")), ("OP", Decimal("0.10"), None)]


def test_signal_snapshots_keep_payload_and_stale_keys(
        open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    assert store.signal_snapshot() is None
    store.record_signal_snapshot(T0, {"tvl": {"defi": 1.5}, "px": Decimal("0.1")}, {"tvl"})
    store.record_signal_snapshot(T0 + timedelta(hours=1), {"tvl": {"defi": 2.0}})
    store.record_signal_snapshot(T0, {"tvl": {"defi": 1.6}}, ["tvl", "oi"])  # a re-run cycle
    reopened = open_store()
    latest = reopened.signal_snapshot()
    assert latest is not None and latest.as_of == T0 + timedelta(hours=1) and not latest.stale
    first = reopened.signal_snapshot(T0)
    assert first is not None
    assert first.payload == {"tvl": {"defi": 1.6}} and first.stale == {"tvl", "oi"}


def test_store_is_at_head_and_matches_the_models(open_store: Callable[[], StateStore]) -> None:
    store = open_store()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, Base.metadata) == []


# -- SQLite specifics ---------------------------------------------------------------------------
def test_sqlite_file_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "s.sqlite3"
    old_umask = os.umask(0)  # the most permissive umask a service manager could hand us
    try:
        store = StateStore(path)
        store.put("k", {"a": 1})
        siblings = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in siblings)
        for p in (path, *siblings):
            assert (p.stat().st_mode & 0o777) == 0o600, p
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for p in siblings:  # as left behind by an older build or a careless restore
            p.chmod(0o644)
        again = StateStore(path)
        assert again.get("k") == {"a": 1}
        for p in siblings:
            assert (p.stat().st_mode & 0o777) == 0o600, p
        store.close()
        again.close()
    finally:
        os.umask(old_umask)


def test_locations_parse_to_the_right_backend(tmp_path: Path) -> None:
    assert parse_target(tmp_path / "a.sqlite3").path == tmp_path / "a.sqlite3"
    assert parse_target(str(tmp_path / "b.sqlite3")).path == tmp_path / "b.sqlite3"
    assert parse_target(f"sqlite:///{tmp_path}/c.sqlite3").path == tmp_path / "c.sqlite3"
    pg = parse_target("postgresql://bot:s3cret@db.internal:5432/sectorbot")
    assert pg.path is None and pg.url.drivername == "postgresql+psycopg"
    assert "s3cret" not in pg.location and "db.internal:5432/sectorbot" in pg.location
    for bad in ("sqlite://", "sqlite:///:memory:", "mysql://u@h/db"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_traded_names_every_pair_with_a_fill_and_none_without(
        open_store: Callable[[], StateStore]) -> None:
    """Reconciliation asks which (token, market) we ever filled on. The database answers
    from the decimal text: tiny, large and trailing-zero fills count; zero in any spelling
    does not."""
    store = open_store()
    cases = {"sb-a": ("SOL", MarketKind.SPOT, "0.000000000000000001"),
             "sb-b": ("ETH", MarketKind.PERP, "10"),
             "sb-c": ("ARB", MarketKind.SPOT, "0.000"),
             "sb-d": ("OP", MarketKind.PERP, "0"),
             "sb-e": ("LINK", MarketKind.SPOT, "1.10"),
             "sb-f": ("SOL", MarketKind.PERP, "0E-8")}
    for cid, (token, market, filled) in cases.items():
        store.journal_intent(OrderIntent(cid, token, market, Side.BUY, Decimal(5),
                                         reason="t"), "d1")
        status = OrderStatus.FILLED if Decimal(filled) else OrderStatus.CANCELED
        store.journal_result(OrderResult(cid, f"v-{cid}", token, market, Side.BUY,
                                         OrderType.MARKET, status, Decimal(5),
                                         Decimal(filled), Decimal(100), Decimal(0),
                                         timestamp=T0))
    assert store.traded() == {("SOL", "spot"), ("ETH", "perp"), ("LINK", "spot")}


def test_sector_figures_are_kept_as_first_seen_and_only_new_days_are_written(
        open_store: Callable[[], StateStore]) -> None:
    """What a live decision read is kept: a provider revising its history later does not
    change a kept figure, and each cycle writes only the days it adds."""
    from bot.domain.models import Series

    def series(values: list[float], first: datetime) -> Series:
        return Series(tuple((first + timedelta(days=i), v) for i, v in enumerate(values)))

    store = open_store()
    d1 = datetime(2024, 3, 2, tzinfo=UTC)  # the figure of 03-01
    seen = {"L1": {"tvl_usd": series([1.5, 2.25, 3.0], d1)},
            "DEX": {"volume_usd": series([10.0], d1)}}
    assert store.record_sector_metrics(seen, d1 + timedelta(days=3)) == 4
    revised = {"L1": {"tvl_usd": series([9.0, 9.0, 9.0, 4.125], d1)}}
    assert store.record_sector_metrics(revised, d1 + timedelta(days=4)) == 1
    reopened = open_store()  # a restarted daemon knows what it kept
    assert reopened.record_sector_metrics(revised, d1 + timedelta(days=5)) == 0
    kept = [(r.day.isoformat(), r.sector, r.metric, r.value)
            for r in reopened.sector_metric_points()]
    assert kept == [("2024-03-01", "DEX", "volume_usd", 10.0),
                    ("2024-03-01", "L1", "tvl_usd", 1.5),
                    ("2024-03-02", "L1", "tvl_usd", 2.25),
                    ("2024-03-03", "L1", "tvl_usd", 3.0),
                    ("2024-03-04", "L1", "tvl_usd", 4.125)]


def test_venue_candles_and_funding_are_kept_as_first_seen_and_only_newer_written(
        open_store: Callable[[], StateStore]) -> None:
    """The candles and funding a live decision read are kept exactly (decimal text): a
    venue revising a kept day later does not change it, and a restarted daemon reads the
    newest kept day and reading per token back, so it writes only what is newer."""
    from datetime import date

    from bot.store.market_data import KeptCandle, KeptFunding

    def candle(token: str, day: date, close: str, high: str | None = None) -> KeptCandle:
        c = Decimal(close)
        return KeptCandle(token, day, "spot", c, Decimal(high) if high else None,
                          c if high else None, c, Decimal("12.5"), c * Decimal("12.5"))

    def funding(token: str, hours: int, rate: str) -> KeptFunding:
        return KeptFunding(token, T0 + timedelta(hours=hours), Decimal(rate), Decimal("8.0"))

    d1 = date(2024, 3, 1)
    days = [d1 + timedelta(days=i) for i in range(3)]
    store = open_store()
    assert store.record_market_data(
        "binance", [candle("BTC", d, c, h) for d, c, h in
                    zip(days, ["62000.12", "0.000000000000000001", "63000.10"],
                        ["62500.5", None, "63000.10"], strict=True)]
        + [candle("SOL", d1, "101.123456789012")],
        [funding("BTC", 0, "0.00010000"), funding("BTC", 1, "-0.0000125")],
        T0) == (4, 2)
    # The venue revises every day it serves and adds one: only the new day is written.
    revised = [candle("BTC", d, "1") for d in [*days, d1 + timedelta(days=3)]]
    assert store.record_market_data("binance", revised, [funding("BTC", 1, "0.5")],
                                    T0 + timedelta(hours=1)) == (1, 0)
    reopened = open_store()  # a restarted daemon knows what it kept
    assert reopened.newest_kept_candles() == {"BTC": d1 + timedelta(days=3), "SOL": d1}
    assert reopened.newest_kept_funding() == {"BTC": T0 + timedelta(hours=1)}
    assert reopened.newest_kept_funding()["BTC"].tzinfo == UTC
    assert reopened.record_market_data(
        "binance", [*revised, candle("SOL", d1, "7")],
        [funding("BTC", 0, "9"), funding("BTC", 1, "9"), funding("BTC", 2, "0.0003")],
        T0 + timedelta(hours=2)) == (0, 1)
    kept = [(r.token, r.day.isoformat(), format(r.close, "f"),
             None if r.high is None else format(r.high, "f"), r.venue, r.market)
            for r in reopened.venue_candles()]
    assert kept == [("BTC", "2024-03-01", "62000.12", "62500.5", "binance", "spot"),
                    ("BTC", "2024-03-02", "0.000000000000000001", None, "binance", "spot"),
                    ("BTC", "2024-03-03", "63000.10", "63000.10", "binance", "spot"),
                    ("BTC", "2024-03-04", "1", None, "binance", "spot"),
                    ("SOL", "2024-03-01", "101.123456789012", None, "binance", "spot")]
    assert reopened.venue_candles()[0].quote_volume == Decimal("775001.500")
    assert [(r.ts, format(r.rate, "f"), r.interval_hours) for r in reopened.venue_funding()] \
        == [(T0, "0.00010000", Decimal("8.0")),
            (T0 + timedelta(hours=1), "-0.0000125", Decimal("8.0")),
            (T0 + timedelta(hours=2), "0.0003", Decimal("8.0"))]


def test_venue_data_from_another_venue_is_refused_not_mixed(
        open_store: Callable[[], StateStore]) -> None:
    """The venue tables are keyed by token and day (or time): a store reused after switching
    venue would mix two venues' candles under one token. The second venue's data is
    refused (nothing kept), on this store and on one reopened, and the export names one
    venue."""
    from datetime import date

    from bot.store.market_data import KeptCandle, KeptFunding

    def candle(day: date, close: str) -> KeptCandle:
        c = Decimal(close)
        return KeptCandle("BTC", day, "spot", c, None, None, c, Decimal("1"), c)

    d1 = date(2024, 3, 1)
    store = open_store()
    assert store.kept_venue() is None
    assert store.record_market_data("binance", [candle(d1, "100")],
                                    [KeptFunding("BTC", T0, Decimal("0.0001"), Decimal("8"))],
                                    T0) == (1, 1)
    later = [candle(d1 + timedelta(days=1), "7")]
    funding = [KeptFunding("BTC", T0 + timedelta(hours=8), Decimal("9"), Decimal("8"))]
    assert store.record_market_data("bybit", later, funding, T0 + timedelta(days=1)) == (0, 0)
    reopened = open_store()
    assert reopened.kept_venue() == "binance"
    assert reopened.record_market_data("bybit", later, funding, T0 + timedelta(days=1)) \
        == (0, 0)
    assert {r.venue for r in reopened.venue_candles()} == {"binance"}
    assert {r.venue for r in reopened.venue_funding()} == {"binance"}
    assert [r.day for r in reopened.venue_candles()] == [d1]
    # The venue it keeps goes on being kept.
    assert reopened.record_market_data("binance", later, funding, T0 + timedelta(days=1)) \
        == (1, 1)
