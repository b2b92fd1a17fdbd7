"""The replay driver settles each simulated day on the paper exchange and keeps the record."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from bot.domain.models import MarketKind, OrderIntent, Side
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.service.replay_driver import ReplayDriver
from bot.sources.replay import ReplayData, bundled_sample_dir
from bot.store.repo import StateStore
from tests.test_risk_watch import RecordingLog


def test_funding_on_a_held_perp_is_logged_and_recorded(tmp_path: Path) -> None:
    data = ReplayData.load(bundled_sample_dir())
    exchange = PaperExchange(PaperConfig(), ["BTC"], ["BTC"])
    store = StateStore(tmp_path / "s.sqlite3")
    log = RecordingLog()
    driver = ReplayDriver(data, exchange, store, date(2021, 3, 1), 1, log)
    first = driver.advance()
    assert first is not None
    exchange.set_leverage("BTC", Decimal(2))
    exchange.place_order(OrderIntent("sb-t-1", "BTC", MarketKind.PERP, Side.BUY,
                                     Decimal("0.1")))
    second = driver.advance()
    assert second is not None
    paid = log.named("funding.paid")
    assert len(paid) == 1 and paid[0]["token"] == "BTC"
    (row,) = store.funding_payments("BTC")
    assert row.ts == second
    assert row.amount == Decimal(paid[0]["cash_delta"])
    assert row.amount < 0, "a long pays positive funding (early 2021 was a crowded bull)"
    driver.persist()
    assert store.get("replay.cursor") == second.isoformat()


def test_funding_is_charged_per_settlement_as_it_happened(tmp_path: Path) -> None:
    """Issue #12: each replay day was charged the latest single rate for 24 h (up to 3x off
    on a day whose three settlements differ). The day's charge is the sum over its
    settlements, each at its own rate."""
    data = ReplayData.load(bundled_sample_dir())
    exchange = PaperExchange(PaperConfig(), ["BTC"], ["BTC"])
    store = StateStore(tmp_path / "s.sqlite3")
    # 2021-03-08 settled at 0.01 %, 0.072 % and 0.025 % per 8 h
    driver = ReplayDriver(data, exchange, store, date(2021, 3, 8), 1, RecordingLog())
    start = driver.advance()
    assert start is not None
    exchange.set_leverage("BTC", Decimal(2))
    exchange.place_order(OrderIntent("sb-t-1", "BTC", MarketKind.PERP, Side.BUY,
                                     Decimal("0.1")))
    end = driver.advance()
    assert end is not None
    settled = data.funding_settlements("BTC", start, end)
    assert len(settled) == 3 and len({r.hourly_rate for _, r in settled}) > 1
    mark = data.marks(end)["BTC"]
    expected = -sum((Decimal("0.1") * mark * Decimal(repr(r.hourly_rate))
                     * Decimal(repr(r.interval_hours)) for _, r in settled), Decimal(0))
    (row,) = store.funding_payments("BTC")
    assert abs(row.amount - expected) < Decimal("0.000001")
    latest = data.funding_rates(end)["BTC"]
    flat = -Decimal("0.1") * mark * Decimal(repr(latest.hourly_rate)) * 24
    assert abs(row.amount - flat) > Decimal("0.001"), "charged the latest rate for 24 h"
    store.close()
