"""Clock skew between the machine and the venue (issue #17).

Binance refuses a signed request whose ``timestamp`` is more than 1 s ahead of its clock or
more than ``recvWindow`` (5 s) behind it (-1021), and the emulator does the same against its
own clock (``book.clock``). ccxt's ``adjustForTimeDifference`` measures the offset when
markets load (at start, then hourly). A skew present at start is therefore handled by ccxt
alone; a skew that appears *later* (an NTP step, a suspended VM, a venue clock correction)
made every signed call fail until the next markets reload, up to an hour: reads failed their
retries, each order of a plan was left "outcome unknown", and five failed jobs in a row trip
the kill switch. The adapter now measures the clock again on -1021
(``Caller.resync_clock``): a read's retry and an order's resend carry a good timestamp.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.domain.models import OrderStatus, Side
from bot.store.repo import StateStore
from tests.daemon_proc import env_for, events, named
from tests.demo_launcher import EMULATOR_ENV, NO_THROTTLE_ENV
from tests.exchange_emulator import BinanceEmulator
from tests.test_ccxt_exchange import KEY, PERP, SECRET, SPOT, make, order

ORDER_PATHS = ("/api/v3/order", "/fapi/v1/order", "/fapi/v1/algoOrder")


def shifted(offset_ms: int) -> Callable[[], int]:
    return lambda: int(time.time() * 1000) + offset_ms


@pytest.fixture
def emu() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(KEY, SECRET) as emulator:
        yield emulator


def refusals(emu: BinanceEmulator, path: str) -> int:
    return sum(1 for r in emu.requests_for(path=path) if r.status == 400)


@pytest.mark.parametrize("offset_ms", [20_000, -20_000])
def test_a_skew_present_at_start_is_measured_with_the_markets(emu: BinanceEmulator,
                                                              offset_ms: int) -> None:
    emu.book.clock = shifted(offset_ms)
    exchange = make(emu)
    exchange.load_markets()
    assert exchange.fetch_balances().total["USDT"] == 20000
    assert refusals(emu, "/api/v3/account") == 0


@pytest.mark.parametrize("offset_ms", [20_000, -20_000])
def test_a_read_after_the_venue_clock_moved_resyncs_and_succeeds(emu: BinanceEmulator,
                                                                 offset_ms: int) -> None:
    exchange = make(emu)
    exchange.load_markets()
    emu.book.clock = shifted(offset_ms)  # after the markets (and ccxt's offset) loaded
    emu.clear_requests()
    assert exchange.fetch_balances().total["USDT"] == 20000
    # one refusal per ccxt instance, one clock read each, then the retry passes
    assert refusals(emu, "/api/v3/account") == 1 and refusals(emu, "/fapi/v3/account") == 1
    assert emu.count("GET", "/api/v3/time") == 1 and emu.count("GET", "/fapi/v1/time") == 1
    emu.clear_requests()
    exchange.fetch_balances()  # the offset holds: no refusal, no clock read
    assert all(r.status == 200 for r in emu.requests)


@pytest.mark.parametrize(("kind", "path"), [(SPOT, "/api/v3/order"), (PERP, "/fapi/v1/order")])
def test_an_order_refused_for_its_timestamp_is_resent_once_after_a_resync(
        emu: BinanceEmulator, kind: Any, path: str) -> None:
    exchange = make(emu)
    exchange.load_markets()
    exchange.fetch_prices(["SOL"], kind)  # the notional check needs no read after the skew
    emu.book.clock = shifted(-15_000)  # the venue's clock fell behind ours
    emu.clear_requests()
    result = exchange.place_order(order("sb-skew-1", "SOL", kind, Side.BUY, "1"))
    assert (result.status, result.filled) == (OrderStatus.FILLED, Decimal(1))
    posts = emu.requests_for("POST", path)
    assert [r.status for r in posts] == [400, 200]  # refused unprocessed, then sent again
    orders = [o for o in emu.book.orders.values() if o.client_id == "sb-skew-1"]
    assert len(orders) == 1


class SteppingClockEmulator(BinanceEmulator):
    """The venue's clock steps ``offset_ms`` once its first order was filled: the rest of
    the plan meets a clock ccxt measured before the step."""

    def __init__(self, offset_ms: int) -> None:
        super().__init__(KEY, SECRET)
        self.offset_ms = offset_ms
        self.stepped = False

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        reply = super().handle(method, raw_path, headers, body)
        if (not self.stepped and method == "POST" and raw_path.split("?")[0] in ORDER_PATHS
                and reply.status == 200):
            self.stepped = True
            self.book.clock = shifted(self.offset_ms)
        return reply


@pytest.mark.process
@pytest.mark.parametrize("offset_ms", [-12_000, 12_000])
def test_the_daemon_trades_through_a_venue_clock_step(tmp_path: Path, offset_ms: int) -> None:
    with SteppingClockEmulator(offset_ms) as emu:
        emu.book.clock = shifted(-offset_ms // 2)  # skewed from the start, too
        cfg = tmp_path / "demo.toml"
        cfg.write_text('mode = "demo"\n\n[exchange]\nname = "binance"\n')
        env = env_for(tmp_path / "state.sqlite3", SECTORBOT__EXCHANGE__API_KEY=KEY,
                      SECTORBOT__EXCHANGE__API_SECRET=SECRET,
                      **{EMULATOR_ENV: emu.base_url, NO_THROTTLE_ENV: "1"})
        proc = subprocess.run([sys.executable, "-m", "tests.demo_launcher", "run", "--once",
                               "--config", str(cfg)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert emu.stepped
        refused = [r for r in emu.requests if r.status == 400]
        assert refused, "the step was never met: the test checks nothing"
        [completed] = named(events(proc.stdout), "cycle.completed")
        assert completed["orders_sent"] >= 2, completed
        assert completed["orders_filled"] == completed["orders_sent"], completed
        assert completed["orders_rejected"] == 0, completed
        store = StateStore(tmp_path / "state.sqlite3", read_only=True)
        try:
            rows = store.orders()
            assert rows and {r.status for r in rows} == {OrderStatus.FILLED.value}
        finally:
            store.close()
        cids = [o.client_id for o in emu.book.orders.values()]
        assert len(cids) == len(set(cids)) == len(rows)
