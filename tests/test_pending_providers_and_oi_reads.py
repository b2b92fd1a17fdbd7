"""Review fixes: a provider still on its first round holds the strategy (``providers:pending``)
while a failed provider does not; optional open interest is read cheaply (one attempt, no
account-wide pause on a 429, one deadline) and never fails a cycle; OI is never read in USD."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.domain.engine import HOLD, evaluate
from bot.domain.models import Series, TokenSpec
from bot.domain.params import StrategyParams
from bot.domain.signals import PROVIDERS_PENDING
from bot.exchange import ccxt_exchange
from bot.exchange.ccxt_exchange import _contract_size, _open_interest_rows
from bot.sources.market import VenueSignals
from tests.engine_fixtures import UNIVERSE, at, playbook_market, portfolio_from_weights
from tests.exchange_emulator import BinanceEmulator
from tests.test_ccxt_exchange import KEY, SECRET, make

P = StrategyParams()
METRICS = ("tvl_usd", "volume_usd", "dev_commits", "fees_usd", "category_volume_usd")
OI_PATH = "/futures/data/openInterestHist"


def _rotating_case() -> tuple[Any, Any]:
    """Day -10 of the playbook with every sector metric stale: momentum alone rotates L2->L1
    (selling ARB/OP/POL), the reviewer's proof."""
    snap = playbook_market().snapshot(at(-10))
    prices = {t: Decimal(str(s.points[-1][1])) for t, s in snap.closes.items()}
    book = portfolio_from_weights({"BTC": .35, "ETH": .2, "ARB": .1, "OP": .1, "POL": .05,
                                   "ZEC": .1, "XMR": .1}, prices)
    keys = {f"metric:{m}:{s.name}" for s in UNIVERSE.sectors for m in METRICS}
    return dataclasses.replace(snap, stale=frozenset(snap.stale | keys)), book


def test_a_provider_still_on_its_first_round_holds_the_strategy() -> None:
    failed, book = _rotating_case()
    moved = evaluate(failed, book, UNIVERSE, P, None).decision
    assert moved.action == "rotate", "a failed provider keeps today's behaviour"
    pending = dataclasses.replace(failed, stale=failed.stale | {PROVIDERS_PENDING})
    ev = evaluate(pending, book, UNIVERSE, P, None)
    assert ev.decision.action == HOLD
    assert ev.decision.rotation is None, "rotation not advanced"
    assert all(ev.decision.spot_weights.get(t, 0.0) >= w - 1e-9
               for t, w in ev.current_book.items()), "nothing sold"
    assert any("first round" in r for r in ev.decision.reasons)


class _Provider:
    def __init__(self, name: str, published: bool, failed: Mapping[str, str]) -> None:
        self.name, self.round_budget = name, 1.0
        self.published, self.started = published, True
        self.dropped: dict[str, str] = {}
        self._failed = dict(failed)

    def refresh(self, as_of: datetime) -> None: ...

    def metrics(self, as_of: datetime) -> tuple[dict[str, dict[str, Series]], dict[str, str]]:
        return {}, dict(self._failed)

    def close(self) -> None: ...


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = debug = error = warning


class _Venue:
    name = "fake"

    def __init__(self, oi_error: BaseException | None = None) -> None:
        self.oi_error = oi_error

    def load_markets(self, reload: bool = False) -> Mapping[Any, Any]:
        return {}

    def fetch_daily_candles(self, token: str, market: Any, limit: int) -> list[Any]:
        return []

    def fetch_funding_rates(self, tokens: Any) -> dict[str, Any]:
        return {}

    def fetch_open_interest_history(self, tokens: Any, days: int) -> None:
        if self.oi_error is not None:
            raise self.oi_error
        return None


def test_the_snapshot_says_pending_only_while_a_first_round_is_unpublished() -> None:
    as_of = at(0)
    pending = _Provider("github", False, {"metric:dev_commits:L1":
                                          "github: first round not finished yet"})
    failed = _Provider("defillama", True, {"metric:tvl_usd:L1": "timed out"})
    log = _Log()
    both = VenueSignals(_Venue(), [], 400, log, sector_metrics=[pending, failed])
    snap = both.snapshot(as_of)
    assert PROVIDERS_PENDING in snap.stale and "metric:tvl_usd:L1" in snap.stale
    assert ("signal.fetch_failed", {"signal": PROVIDERS_PENDING,
                                    "error": "first round not finished yet: github"}) in log.lines
    pending.published = True
    assert PROVIDERS_PENDING not in both.snapshot(as_of).stale
    only_failed = VenueSignals(_Venue(), [], 400, _Log(), sector_metrics=[failed])
    assert PROVIDERS_PENDING not in only_failed.snapshot(as_of).stale


def test_any_error_from_the_open_interest_read_is_stale_oi_not_a_failed_cycle() -> None:
    venue = _Venue(KeyError("data"))
    signals = VenueSignals(venue, [TokenSpec("SOL", "L1")], 400, _Log())
    assert "oi:SOL" in signals.snapshot(at(0)).stale


def test_a_200_error_body_fails_only_its_token() -> None:
    """ccxt raises a bare KeyError parsing ``{"code": 0, "msg": ...}`` as statistics."""
    with BinanceEmulator(KEY, SECRET) as emu:
        emu.inject_error(0, "busy", path=OI_PATH, status=200, times=1)
        adapter = make(emu, perp_tokens=("SOL", "BTC"))
        answer = adapter.fetch_open_interest_history(["SOL", "BTC"], 30)
        adapter.close()
    assert answer is not None and set(answer.failed) == {"BTC"}, answer
    assert len(answer.history["SOL"]) == 30


def test_a_throttled_open_interest_read_stops_and_pauses_nothing_else() -> None:
    with BinanceEmulator(KEY, SECRET) as emu:
        emu.inject_rate_limit(times=5, retry_after=60, path=OI_PATH)
        adapter = make(emu, perp_tokens=("SOL", "BTC", "ARB"))
        started = time.monotonic()
        answer = adapter.fetch_open_interest_history(["SOL", "BTC", "ARB"], 30)
        took = time.monotonic() - started
        hits = [r for r in emu.requests if OI_PATH in r.path]
        assert adapter._caller._quiet_until < time.monotonic(), "no account-wide pause"
        adapter.fetch_funding_rates(["SOL"])  # the account's other calls go on at once
        adapter.close()
    assert len(hits) == 1, "one attempt, and the first 429 ends the read"
    assert answer is not None and set(answer.failed) == {"ARB", "BTC", "SOL"}
    assert time.monotonic() - started < 3.0 and took < 1.0


def test_a_failing_open_interest_read_is_tried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with BinanceEmulator(KEY, SECRET) as emu:
        emu.inject_status(503, times=None, path=OI_PATH)
        adapter = make(emu, perp_tokens=("SOL", "BTC"))
        answer = adapter.fetch_open_interest_history(["SOL", "BTC"], 30)
        hits = [r for r in emu.requests if OI_PATH in r.path]
        adapter.close()
    assert answer is not None and set(answer.failed) == {"BTC", "SOL"}
    assert len(hits) == 2


def test_the_open_interest_read_has_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ccxt_exchange, "OI_READ_SECONDS", 0.2)
    with BinanceEmulator(KEY, SECRET) as emu:
        emu.inject_latency(0.3, path=OI_PATH, times=1)
        adapter = make(emu, perp_tokens=("SOL", "BTC", "ARB"))
        adapter.load_markets()
        answer = adapter.fetch_open_interest_history(["SOL", "BTC", "ARB"], 30)
        hits = [r for r in emu.requests if OI_PATH in r.path]
        adapter.close()
    assert answer is not None and list(answer.history) == ["ARB"]
    assert set(answer.failed) == {"BTC", "SOL"} and "ran out" in answer.failed["SOL"]
    assert len(hits) == 1


def test_open_interest_is_never_read_in_usd() -> None:
    rows = [{"timestamp": 1, "openInterestAmount": 10.0, "openInterestValue": 1000.0},
            {"timestamp": 2, "openInterestAmount": None, "openInterestValue": 2000.0},
            {"timestamp": 3, "openInterestAmount": 12.0, "openInterestValue": 1300.0}]
    assert _open_interest_rows(rows) == [(1, 10.0), (3, 12.0)]
    only_usd = [{"timestamp": t, "openInterestValue": 1000.0 * t} for t in (1, 2, 3)]
    assert _open_interest_rows(only_usd) == []
    assert _open_interest_rows(rows[:1], 0.01) == [(1, 0.1)], "OKX contracts x size"
    assert _contract_size({"contractSize": 0.01}) == 0.01
    assert _contract_size({"contractSize": None}) == 0.0 == _contract_size({})
