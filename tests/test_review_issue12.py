"""Regressions from the money-path review of issue #12 (backtest and its speed work).

1. A stop id the journal holds as cancelled is never sent again, even once the venue (the
   paper exchange bounds what it remembers) has forgotten the stop.
2. Replayed funding settlements are validated before the account changes.
3. A store written by a backtest (account kept only at the end) is refused by a daemon.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.domain.models import (
    FundingRate,
    MarketKind,
    OrderIntent,
    OrderStatus,
    Side,
)
from bot.exchange.paper import PaperConfig, PaperExchange
from bot.exchange.paper_orders import KEEP_FINISHED
from bot.service.daemon import Daemon, StartupError
from bot.service.executor import ExecutionReport, Executor
from bot.store.repo import StateStore
from tests.test_risk_watch import RecordingLog

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def journal(store: StateStore) -> dict[str, str]:
    return {row.client_id: row.status for row in store.orders()}


def test_a_cancelled_stop_id_the_venue_forgot_is_not_sent_again(tmp_path: Path) -> None:
    ex = PaperExchange(PaperConfig(), ["SOL"], ["SOL"])
    ex.update_market(T0, {"SOL": Decimal(100)}, {})
    ex.set_leverage("SOL", Decimal(2))
    ex.place_order(OrderIntent("p1", "SOL", MarketKind.PERP, Side.BUY, Decimal(1)))
    store = StateStore(tmp_path / "s.sqlite3")
    executor = Executor(ex, store, RecordingLog())
    position = ex.fetch_positions()[0]
    first = executor.place_stop(position, 0.1, "plan-1", ExecutionReport())
    assert first is not None
    ex.cancel_order(first)
    store.journal_result(ex.fetch_order_by_client_id(first.client_id, "SOL",
                                                     MarketKind.PERP, trigger=True))  # type: ignore[arg-type]
    assert journal(store)[first.client_id] == OrderStatus.CANCELED.value
    for i in range(2 * KEEP_FINISHED):  # the venue forgets the cancelled stop
        ex.place_order(OrderIntent(f"s{i}", "SOL", MarketKind.SPOT,
                                   Side.BUY if i % 2 == 0 else Side.SELL, Decimal("0.1")))
    assert ex.fetch_order_by_client_id(first.client_id, "SOL", MarketKind.PERP,
                                       trigger=True) is None
    second = executor.place_stop(position, 0.1, "plan-1", ExecutionReport())
    assert second is not None and second.client_id != first.client_id
    assert [o.client_id for o in ex.fetch_open_orders(trigger=True)] == [second.client_id]
    assert journal(store)[second.client_id] == OrderStatus.OPEN.value
    store.close()


@pytest.mark.parametrize("rate, interval", [(math.nan, 8.0), (0.0001, 0.0), (0.0001, math.inf)])
def test_a_bad_funding_settlement_leaves_the_paper_account_untouched(
        rate: float, interval: float) -> None:
    ex = PaperExchange(PaperConfig(), ["SOL"], ["SOL"])
    ex.update_market(T0, {"SOL": Decimal(100)}, {})
    ex.set_leverage("SOL", Decimal(2))
    ex.place_order(OrderIntent("p1", "SOL", MarketKind.PERP, Side.BUY, Decimal(1)))
    before = ex.to_state()
    later = T0 + timedelta(days=1)
    bad = {"SOL": ((later, FundingRate("SOL", rate, interval)),)}
    with pytest.raises(ValueError, match="settlement"):
        ex.update_market(later, {"SOL": Decimal(120)}, {}, settlements=bad)
    assert ex.to_state() == before


def test_a_daemon_refuses_a_store_a_backtest_wrote(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(tmp_path / "bt.sqlite3"))
    settings = load_settings(None)
    backtest = Daemon(settings, RecordingLog(), durable=False)
    assert backtest.step()  # killed here: no account and no cursor were ever written
    backtest.store.close()
    backtest._release_owner()
    with pytest.raises(StartupError, match="written by `sectorbot backtest`"):
        Daemon(settings, RecordingLog())
    fresh = tmp_path / "fresh.sqlite3"
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(fresh))
    daemon = Daemon(load_settings(None), RecordingLog())
    assert daemon.step()
    daemon.stop_event.set()
    assert daemon.shutdown() == 0
    assert StateStore(fresh).get("store.backtest") is None
