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
