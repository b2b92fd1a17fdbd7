"""``sectorbot venues`` (issue #16, "compare offerings, especially regarding fees"): every
supported venue's spot and perp fees, funding interval, minimum order sizes and the cost of
the current plan, offline in paper mode (the README's default: no keys, no network), and with
the account's own fees read through ccxt where keys are configured (Binance emulator)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
from ccxt.base.exchange import Exchange
from sqlalchemy import select

from bot.cli import main
from bot.config import load_settings
from bot.service.daemon import Daemon
from bot.store.repo import StateStore
from bot.store.schema import DecisionRow, OrderRow
from tests.exchange_emulator import BinanceEmulator
from tests.exchange_emulator.transport import RerouteAdapter
from tests.test_risk_watch import RecordingLog

PAPER_ENV = {"SECTORBOT__REPLAY__START": "2021-03-01",
             "SECTORBOT__SIGNALS__DEFILLAMA": "false", "SECTORBOT__SIGNALS__GITHUB": "false",
             "SECTORBOT__SIGNALS__COINGECKO": "false"}


def clean_env(monkeypatch: pytest.MonkeyPatch, state: Path, **extra: str) -> None:
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SECTORBOT__STATE__PATH", str(state))
    for key, value in {**PAPER_ENV, **extra}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def paper_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A paper daemon's store after a few cycles, the daemon stopped (its lock released)."""
    state = tmp_path / "state.sqlite3"
    clean_env(monkeypatch, state)
    daemon = Daemon(load_settings(None), RecordingLog())
    try:
        for _ in range(4):
            assert daemon.step()
    finally:
        daemon.shutdown()
    yield state


def published(cls: str) -> dict[str, Any]:
    fees: dict[str, Any] = getattr(ccxt, cls)().fees
    return fees


def venues_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["venues", "--json", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def test_offline_paper_mode_lists_three_venues_at_ccxts_published_fees(
        paper_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["venues"])
    text = capsys.readouterr().out
    assert code == 0
    for name in ("binance", "bybit", "okx"):
        assert f"\n{name} " in text
    assert "unknown offline" in text and "8 h (published)" in text

    report = venues_json(capsys)
    assert [v["name"] for v in report["venues"]] == ["binance", "bybit", "okx"]
    assert not any(v["contacted"] for v in report["venues"])
    fees = {v["name"]: v["fees"] for v in report["venues"]}
    binance, usdm = published("binance"), published("binanceusdm")
    assert (fees["binance"]["spot"]["taker"], fees["binance"]["spot"]["maker"]) == (
        binance["trading"]["taker"], binance["trading"]["maker"])
    assert (fees["binance"]["perp"]["taker"], fees["binance"]["perp"]["maker"]) == (
        usdm["linear"]["trading"]["taker"], usdm["linear"]["trading"]["maker"])
    okx = published("okx")
    assert (fees["okx"]["spot"]["taker"], fees["okx"]["spot"]["maker"]) == (
        okx["spot"]["taker"], okx["spot"]["maker"])
    assert (fees["okx"]["perp"]["taker"], fees["okx"]["perp"]["maker"]) == (
        okx["swap"]["taker"], okx["swap"]["maker"])
    bybit = published("bybit")["trading"]
    for kind in ("spot", "perp"):
        assert (fees["bybit"][kind]["taker"], fees["bybit"][kind]["maker"]) == (
            bybit["taker"], bybit["maker"])
    for venue in report["venues"]:
        assert venue["min_order_sizes"] == {"status": "unknown offline"}
        assert venue["funding"]["text"] == "8 h (published)"
        assert {f["source"] for f in venue["fees"].values()} == {"published"}
    assert report["paper"] == {"spot_fee_bps": 10.0, "perp_fee_bps": 5.0,
                               "slippage_bps": 5.0}


def test_the_plan_cost_is_the_stored_decisions_orders_at_each_venues_taker_fee(
        paper_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = paper_store.read_bytes()
    report = venues_json(capsys)
    assert paper_store.read_bytes() == before  # read-only: nothing written

    store = StateStore(paper_store, read_only=True)
    try:
        with store.session() as s:
            newest = s.scalars(select(DecisionRow).join(
                OrderRow, OrderRow.decision_id == DecisionRow.decision_id)
                .where(OrderRow.trigger_price.is_(None))
                .order_by(DecisionRow.seq.desc()).limit(1)).one()
            orders = list(s.scalars(select(OrderRow).where(
                OrderRow.decision_id == newest.decision_id,
                OrderRow.trigger_price.is_(None))))
    finally:
        store.close()
    assert orders and all(o.filled > 0 for o in orders)
    plan = report["plan"]
    assert plan["decision_id"] == newest.decision_id
    assert len(plan["orders"]) == len(orders)
    notional = {"spot": 0.0, "perp": 0.0}
    for o in orders:
        notional[o.market] += float(o.amount * o.average_price)
    assert plan["notional_usdt"] == pytest.approx(notional)
    for venue in report["venues"]:
        fees = sum(notional[k] * venue["fees"][k]["taker"] for k in notional)
        slippage = sum(notional.values()) * 5.0 / 10_000
        cost = venue["plan_cost_usdt"]
        assert cost["fees"] == pytest.approx(fees, abs=1e-6)
        assert cost["total"] == pytest.approx(fees + slippage, abs=1e-6)
    assert sum(notional.values()) > 0
    costs = {v["name"]: v["plan_cost_usdt"]["total"] for v in report["venues"]}
    assert len(set(costs.values())) == 3  # the venues' fees differ, so do the costs


def test_without_a_store_it_still_compares_and_says_there_is_no_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "none" / "state.sqlite3"
    clean_env(monkeypatch, state)
    report = venues_json(capsys)
    assert report["plan"]["orders"] == [] and "no state yet" in report["plan"]["note"]
    assert all(v["plan_cost_usdt"]["total"] == 0 for v in report["venues"])
    assert not state.parent.exists()


KEY, SECRET = "venues-key-51c0", "venues-secret-9d2e77"


def test_with_keys_the_binance_account_fees_are_read_through_ccxt_and_nothing_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    tiers = published("binanceusdm")["linear"]["trading"]["tiers"]
    spot_published = published("binance")["trading"]["taker"]
    with BinanceEmulator(KEY, SECRET) as emu:
        emu.book.fee_tier = 3  # type: ignore[attr-defined]
        original = Exchange.__init__

        def routed(self: Any, config: Any = None) -> None:
            original(self, {} if config is None else config)
            adapter = RerouteAdapter(emu.base_url)
            self.session.mount("https://", adapter)
            self.session.mount("http://", adapter)

        monkeypatch.setattr(Exchange, "__init__", routed)
        cfg = tmp_path / "demo.toml"
        cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
        clean_env(monkeypatch, tmp_path / "state.sqlite3",
                  SECTORBOT__EXCHANGE__API_KEY=KEY, SECTORBOT__EXCHANGE__API_SECRET=SECRET)
        report = venues_json(capsys, "--config", str(cfg))
        sent = [(r.method, r.path) for r in emu.requests]
    binance = next(v for v in report["venues"] if v["name"] == "binance")
    assert binance["contacted"] is True
    perp = binance["fees"]["perp"]
    assert perp["source"] == "account"
    assert (perp["taker"], perp["maker"]) == (tiers["taker"][3][1], tiers["maker"][3][1])
    assert ("GET", "/fapi/v1/accountConfig") in sent
    # Binance's demo hosts have no wallet API (sapi): the spot fee is the published one,
    # and the report says why.
    spot = binance["fees"]["spot"]
    assert spot["source"] == "published" and spot["note"]
    assert spot["taker"] == spot_published
    # Markets were read: minimum sizes for the listed tokens, "not listed" for the rest.
    sizes = binance["min_order_sizes"]
    assert sizes["BTC"]["spot"]["min_notional"] == "5"
    assert sizes["BTC"]["perp"]["min_amount"]
    assert any(row.get("spot", {}).get("status") for row in sizes.values())
    # Funding intervals from the venue: SOL settles every 4 h on the emulator.
    assert binance["funding"]["interval_hours"]["SOL"] == 4
    assert binance["funding"]["interval_hours"]["BTC"] == 8
    # Reads only: no order, no leverage or margin setting.
    assert sent and all(method == "GET" for method, _ in sent), sent
    for other in (v for v in report["venues"] if v["name"] != "binance"):
        assert other["contacted"] is False and "no keys" in other["status"]
    text = json.dumps(report)
    assert KEY not in text and SECRET not in text
