"""The read-only dashboard page: what it reads from the store, and that nothing in it can
inject markup or show a secret (issue #16). The page of a live service daemon, rendered in
Chromium, is in tests/test_http_health.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.config import load_universe
from bot.domain.models import Decision, Portfolio, Regime
from bot.domain.models import PerpPosition as Perp
from bot.logs import register_secrets
from bot.service.dashboard import DashboardData, collect, equity_svg, render
from bot.store.repo import StateStore
from bot.store.schema import OrderRow

T = datetime(2024, 5, 1, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
SECRET = "sk_live_DashboardSecret987654321"


def hostile_store(path: Path) -> StateStore:
    store = StateStore(path)
    for day in range(3):
        store.record_portfolio(Portfolio(
            cash=Decimal(1000), spot={"BTC": Decimal("0.1"), "ETH": Decimal(1)},
            perps={"SOL": Perp("SOL", Decimal(-5), Decimal(100), Decimal(2), Decimal(101))},
            prices={"BTC": Decimal(60000 + day * 1000), "ETH": Decimal(3000)}),
            T + timedelta(days=day))
        store.record_signal_snapshot(T + timedelta(days=day), {
            "closes": {"BTC": [(T + timedelta(days=day)).isoformat(), 60000 + day * 2000]}})
    store.save_decision(Decision(
        decision_id="d" * 16, as_of=T + timedelta(days=2), regime=Regime.BULL, action="hold",
        spot_weights={"BTC": 0.5}, bucket_weights={}, cash_reserve=0.05, overlay=(),
        scores=(), rotation=None, reasons=(HOSTILE, "plain reason"), confidence=0.5))
    with store.session() as s:
        s.add(OrderRow(client_id="sb-x", decision_id=None, token="SOL", market="perp",
                       side="sell", order_type="market", amount=Decimal(5), status="rejected",
                       reduce_only=False, filled=Decimal(0), fee=Decimal(0), reason=HOSTILE,
                       error=f"venue said no to https://u:{SECRET}@proxy", created_at=T,
                       updated_at=T))
    return store


def test_the_page_reads_the_store_and_escapes_every_string(tmp_path: Path) -> None:
    register_secrets([SECRET])
    store = hostile_store(tmp_path / "state.sqlite3")
    try:
        data = collect(store, load_universe(None), "paper", now=T)
    finally:
        store.close()
    assert [round(p[2] or 0) for p in data.curve] == [60000, 62000, 64000]  # BTC per point
    assert data.equity == Decimal(1000) + Decimal("0.1") * 62000 + 3000 - 5  # perp uPnL -5
    page = render(data)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert SECRET not in page and "**********" in page
    assert "NO STOP" in page  # the short SOL perp has no stop
    assert ">plain reason<" in page
    rows = {b: (now, target) for b, now, target in data.buckets}
    assert rows["core"][0] > 0.5 and rows["cash"][1] == 0.05


def test_an_empty_store_and_a_short_curve_render() -> None:
    page = render(DashboardData(generated_at=T, mode="paper"))
    assert "no positions" in page and "no decision yet" in page
    assert "not enough equity points yet" in page
    svg = equity_svg([(T, 100.0, None), (T + timedelta(days=1), 110.0, None)])
    assert svg.count("<polyline") == 1 and "BTC" not in svg  # equity alone, no BTC history
