"""``exchange.auto_transfer`` through real ccxt and the Binance emulator (issue #11, case 3).

Binance keeps spot and USD-M futures USDT apart. With transfers on, the daemon plans the
account as one pool and moves USDT to the wallet that must pay (``POST
/sapi/v1/asset/transfer``) before the plan's orders: journalled like an order, never sent
twice when its answer is lost, and refused cleanly where the host has no wallet API (demo).
The adapter runs in live mode against the emulator: Binance's wallet API exists on the live
hosts only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.domain.params import StrategyParams
from bot.domain.risk_limits import RiskLimits
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.service.cycle import TradingCycle, TransferPolicy
from bot.store.repo import StateStore
from tests.engine_fixtures import DAY0, PLAYBOOK_START, UNIVERSE, playbook_market
from tests.exchange_emulator import BinanceEmulator, route_to
from tests.test_order_identity import FAST, Snapshots, instruments
from tests.test_risk_watch import RecordingLog

KEY, SECRET = "transfer-key-1f2e", "transfer-secret-3d4c"
TRANSFER = "/sapi/v1/asset/transfer"


@dataclass
class Rig:
    emu: BinanceEmulator
    cycle: TradingCycle
    store: StateStore
    log: RecordingLog


def make_rig(tmp_path: Path, mode: str, futures_wallet: Decimal) -> Iterator[Rig]:
    market = playbook_market()
    prices = market.prices(DAY0)
    invested = Decimal(20_000)
    spot = {t: (invested * Decimal(str(w)) / prices[t]).quantize(Decimal("0.00001"))
            for t, w in PLAYBOOK_START.items()}
    spot["USDT"] = Decimal(3_000)
    with BinanceEmulator(KEY, SECRET, instruments=instruments(prices), spot_balances=spot,
                         futures_wallet=futures_wallet) as emu:
        specs = UNIVERSE.all_tokens()
        ex = CcxtExchange(
            "binance", mode, api_key=SecretStr(KEY), api_secret=SecretStr(SECRET),
            tokens=[t.symbol for t in specs if t.spot],
            perp_tokens=[t.symbol for t in specs if t.perp], max_leverage=3, retry=FAST,
            rate_limit_ms=1, timeout_ms=2000, session_hook=lambda e: route_to(e, emu))
        ex.load_markets()
        store = StateStore(tmp_path / "transfers.sqlite3")
        log = RecordingLog()
        cycle = TradingCycle(universe=UNIVERSE, params=StrategyParams(),
                             limits=RiskLimits(), exchange=ex, store=store,
                             signals=Snapshots(market), log=log,
                             transfers=TransferPolicy(Decimal(5_000)))
        yield Rig(emu, cycle, store, log)
        store.close()
        ex.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, "live", Decimal(0))


def test_the_overlay_margin_is_moved_to_the_futures_wallet_first(live: Rig) -> None:
    """The futures wallet is empty and the rotation wants its overlay: USDT goes from spot
    to USD-M (journalled), then the legs open on a wallet that can margin them."""
    outcome = live.cycle.run(DAY0)
    assert outcome.decision.action == "rotate" and outcome.decision.overlay
    (moved,) = live.emu.book.transfers
    assert moved[1] == "MAIN_UMFUTURE" and moved[2] > 0
    (row,) = live.store.transfers()
    assert (row.status, row.to_wallet, row.amount) == ("done", "perp", moved[2])
    assert row.venue_id == str(moved[0])
    opened = {s for s, p in live.emu.book.positions.items() if p.qty != 0}
    assert opened == {f"{leg.token}USDT" for leg in outcome.decision.overlay
                      if leg.equity_fraction > 0}
    posts = [r for r in live.emu.requests if r.method == "POST"]
    first_perp = next(i for i, r in enumerate(posts) if r.path == "/fapi/v1/order")
    assert posts.index(next(r for r in posts if r.path == TRANSFER)) < first_perp
    assert not [e for e in live.log.named("order.skipped") if "unfunded" in e["reason"]]


def test_a_transfer_whose_answer_is_lost_is_found_not_repeated(live: Rig) -> None:
    live.emu.inject_accept_then_fail(TRANSFER)
    live.cycle.run(DAY0)
    assert len(live.emu.book.transfers) == 1  # it happened, the daemon did not hear it
    (row,) = live.store.transfers()
    assert row.status == "unknown"
    live.cycle.run(DAY0)  # the next cycle looks it up before anything else
    assert live.store.transfers()[0].status == "done"
    assert live.store.transfers()[0].venue_id == str(live.emu.book.transfers[0][0])
    # Found, so not sent again: the futures wallet already holds what the overlay needs.
    assert [r.path for r in live.emu.requests if r.method == "POST" and r.path == TRANSFER] \
        == [TRANSFER]
    assert len(live.emu.book.transfers) == 1
    assert {s for s, p in live.emu.book.positions.items() if p.qty != 0}, "legs now open"


def test_on_binance_demo_the_transfer_is_refused_and_each_side_uses_its_own_wallet(
        tmp_path: Path) -> None:
    """Binance's demo hosts have no wallet API: the transfer is refused before any request
    (ccxt knows), journalled as rejected, and the plan sizes each side on its own wallet."""
    rigs = make_rig(tmp_path, "demo", Decimal(0))
    rig = next(rigs)
    try:
        rig.cycle.run(DAY0)
        (row,) = rig.store.transfers()
        assert row.status == "rejected"
        assert not [r for r in rig.emu.requests if r.path == TRANSFER]
        assert rig.log.named("wallet.transfer_rejected")
        assert [e for e in rig.log.named("order.skipped") if "unfunded" in e["reason"]]
    finally:
        rigs.close()  # closes the store, the adapter and the emulator
