"""A stop the venue fires, or a position the venue closes, reaches the operator in demo mode.

The demo daemon as ``sectorbot run`` wires it (ccxt against the Binance emulator, the alerts
observer posting to a loopback webhook): nothing of ours runs while the venue fires a stop, so
the daemon learns it from the venue at its next risk-watch tick. ``stoploss.triggered`` is
logged once (not again on the next tick, nor by the cycle's reconciliation), the stop-out is
alerted and counted; a perp gone with no order of ours explaining it is ``position.liquidated``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.domain.models import OrderStatus
from bot.domain.planner import Plan
from bot.logs import configure_logging, get_logger
from bot.service.alerts import AlertObserver
from bot.service.daemon import Daemon
from bot.service.reconcile import reconcile
from tests.exchange_emulator import BinanceEmulator
from tests.test_alerts import HOOK_SECRET, Loopback, alert_env, settings_for
from tests.test_stop_lifecycle import long_open

KEY, SECRET = "demo-key-stopalert", "demo-secret-stopalert"


@dataclass
class Demo:
    emu: BinanceEmulator
    daemon: Daemon
    hook: Loopback
    out: io.StringIO

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, self.out.getvalue().splitlines())
                if e["event"] == name]

    def open_sol(self) -> None:
        """The cycle's entry path: a 2x SOL long and its 8% stop on the venue (trigger 138)."""
        plan = Plan((long_open("sb-alert-sol", "SOL", "10"),), (), {"SOL": 0.08})
        report = self.daemon.cycle.executor.execute(plan, "d-alert", 0.08)
        assert report.stops_placed == 1
        assert [a.status for a in self.emu.book.algos.values()] == ["NEW"]


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    from ccxt.base.exchange import Exchange

    from tests.exchange_emulator.transport import RerouteAdapter

    with BinanceEmulator(KEY, SECRET) as emu:
        original = Exchange.__init__

        def routed(self: Any, config: Any = None) -> None:
            original(self, {} if config is None else config)
            self.enableRateLimit = False
            self.session.mount("https://", RerouteAdapter(emu.base_url))

        monkeypatch.setattr(Exchange, "__init__", routed)
        hook = Loopback()
        config = tmp_path / "demo.toml"
        config.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
        settings_for(tmp_path, monkeypatch, alert_env(
            hook, SECTORBOT__EXCHANGE__API_KEY=KEY, SECTORBOT__EXCHANGE__API_SECRET=SECRET))
        del_token = "SECTORBOT__ALERTS__TELEGRAM_BOT_TOKEN"
        monkeypatch.delenv(del_token)  # the webhook alone
        settings = load_settings(config)
        out = io.StringIO()
        configure_logging("info", "json", stream=out)
        log = get_logger()
        alerts = AlertObserver(settings.alerts, log, settings.mode)
        daemon = Daemon(settings, log, observer=alerts)
        try:
            yield Demo(emu, daemon, hook, out)
        finally:
            daemon.shutdown()
            alerts.close(5.0)
            hook.close()


def test_a_stop_fired_on_the_venue_is_logged_once_and_alerted(demo: Demo) -> None:
    demo.open_sol()
    (stop,) = demo.emu.book.algos.values()
    assert demo.emu.set_price("SOL", "130") == [stop.algo_id]  # gaps through 138: it fires
    assert "SOLUSDT" not in demo.emu.book.positions

    demo.daemon._risk_job()  # the next risk-watch tick: the daemon learns it from the venue
    (fired,) = demo.events("stoploss.triggered")
    assert fired["level"] == "warning"
    assert (fired["token"], fired["client_id"]) == ("SOL", stop.client_algo_id)
    assert (Decimal(fired["amount"]), Decimal(fired["price"])) == (Decimal(-10), Decimal(130))
    assert demo.daemon.store.order_status(stop.client_algo_id) is OrderStatus.TRIGGERED

    # Asked again (the next tick, the cycle's reconciliation): the same answer, no new event.
    demo.daemon._risk_job()
    reconcile(demo.daemon.exchange, demo.daemon.store, demo.daemon.log)
    assert len(demo.events("stoploss.triggered")) == 1
    assert demo.events("position.liquidated") == []  # the stop's fill explains the close

    demo.hook.wait_for(2)  # the start alert, then the stop-out
    texts = demo.hook.texts()
    assert texts[1:] == ["[sectorbot demo] Stop-out on SOL: -10 at 130."], texts
    assert all(path == f"/hooks/{HOOK_SECRET}" for path, _ in demo.hook.received)


def test_a_perp_the_venue_closes_alone_is_alerted_as_liquidated(demo: Demo) -> None:
    demo.open_sol()
    demo.daemon._risk_job()  # the watch sees the position held (and protected)
    assert demo.events("stoploss.missing") == []
    # The venue closes the position on its own (a liquidation) and drops its stop.
    demo.emu.book.positions.pop("SOLUSDT")
    (stop,) = demo.emu.book.algos.values()
    stop.status = "CANCELED"

    demo.daemon._risk_job()
    demo.daemon._risk_job()
    (gone,) = demo.events("position.liquidated")
    assert gone["level"] == "error" and gone["token"] == "SOL"
    assert Decimal(gone["amount"]) == Decimal(-10)
    assert demo.events("stoploss.triggered") == []
    assert demo.daemon.store.order_status(stop.client_algo_id) is OrderStatus.CANCELED
    demo.hook.wait_for(2)
    assert any(t.startswith("[sectorbot demo] LIQUIDATED SOL: -10 at ")
               for t in demo.hook.texts()), demo.hook.texts()
