"""Provider rounds run concurrently: three loopback providers (DefiLlama, GitHub, CoinGecko),
DefiLlama's host stalled. GitHub's and CoinGecko's rounds end and are published within their
own time; DefiLlama's round is bounded by its timeouts and budget and its sectors read stale
with the reason, first "not finished", then the timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.config import SectorSources
from bot.sources.coingecko import CoinGeckoCategories
from bot.sources.defillama import DefiLlamaSectors
from bot.sources.github import GitHubActivity
from bot.sources.http_client import HttpPolicy, PoliteClient
from bot.sources.market import VenueSignals
from tests.coingecko_server import CoinGeckoFake
from tests.defillama_server import DefiLlamaFake
from tests.github_server import GitHubFake
from tests.provider_server import Sleeps, serve

AS_OF = datetime(2024, 6, 13, 12, tzinfo=UTC)
STALL = 4.0
TIMEOUT = 0.5
SOURCES = {"L1": SectorSources(chains=("Solana",), repos=("solana-labs/solana",),
                               coingecko_categories=("smart-contract-platform",))}


class Stalled:
    """Every answer of ``fake`` comes ``stall`` seconds late (a host that hangs)."""

    def __init__(self, fake: Any, stall: float) -> None:
        self.fake, self.stall = fake, stall
        self.headers_seen: list[dict[str, str]] = fake.headers_seen

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]:
        status, headers, body, _ = self.fake.answer(path)
        return status, headers, body, self.stall


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = debug = error = warning


class NoVenue:
    """A venue with no market: only the providers matter here."""

    name = "none"

    def load_markets(self, reload: bool = False) -> Mapping[Any, Any]:
        return {}

    def fetch_daily_candles(self, token: str, market: Any, limit: int) -> list[Any]:
        return []

    def fetch_funding_rates(self, tokens: Any) -> dict[str, Any]:
        return {}

    def fetch_open_interest_history(self, tokens: Any, days: int) -> None:
        return None


@pytest.fixture
def urls() -> Iterator[tuple[str, str, str]]:
    llama = Stalled(DefiLlamaFake(last_day=date(2024, 6, 12)), STALL)
    with ExitStack() as stack:
        yield (stack.enter_context(serve(llama)),
               stack.enter_context(serve(GitHubFake(date(2024, 6, 12),
                                                    {"solana-labs/solana"}))),
               stack.enter_context(serve(CoinGeckoFake(now=AS_OF))))


def signals(urls: tuple[str, str, str], budget: float) -> VenueSignals:
    def client(url: str) -> PoliteClient:
        policy = HttpPolicy(timeout_seconds=TIMEOUT, attempts=1, min_interval_seconds=0.0)
        return PoliteClient(url, policy, sleep=Sleeps())

    llama, github, gecko = urls
    providers = [DefiLlamaSectors(client(llama), SOURCES, round_budget_seconds=budget),
                 GitHubActivity(client(github), SOURCES, round_budget_seconds=budget),
                 CoinGeckoCategories(client(gecko), SOURCES, round_budget_seconds=budget)]
    return VenueSignals(NoVenue(), [], 400, Log(), sector_metrics=providers)


def test_a_stalled_host_delays_no_other_provider_s_round(urls: tuple[str, str, str]) -> None:
    venue = signals(urls, budget=0.8)
    llama, github, _gecko = venue.sector_metrics
    started = time.monotonic()
    assert venue.start_rounds(AS_OF) == ["defillama", "github", "coingecko"]
    assert time.monotonic() - started < 0.2, "starting the rounds waits for none"
    done: dict[str, float] = {}
    while time.monotonic() - started < 10 and len(done) < 3:
        for p in venue.sector_metrics:
            if p.published and p.name not in done:
                done[p.name] = time.monotonic() - started
        time.sleep(0.01)
    # GitHub's and CoinGecko's rounds take loopback time, not DefiLlama's timeouts.
    assert done["github"] < 1.0 and done["coingecko"] < 1.0, done
    # DefiLlama's: one request timed out (0.5 s), a second one too (started within the
    # 0.8 s budget), then the budget ended the round; never the 4 s stall per request.
    assert 2 * TIMEOUT <= done["defillama"] < 2 * TIMEOUT + 1.0, done
    assert "dev_commits" in github.metrics(AS_OF)[0]["L1"]
    _, stale = llama.metrics(AS_OF)
    assert any(f"no answer within {TIMEOUT:g}s" in why for why in stale.values()), stale
    assert not venue.running_rounds()


def test_a_first_read_runs_the_rounds_at_once_and_a_late_provider_reads_stale(
        urls: tuple[str, str, str]) -> None:
    """A read before any round (``sectorbot signals``; a daemon prefills instead) starts
    every provider's round at once and waits at most the round budget: the stalled one is
    stale ("first round not finished yet"), the others are in the snapshot."""
    venue = signals(urls, budget=0.8)
    started = time.monotonic()
    snapshot = venue.snapshot(AS_OF)
    took = time.monotonic() - started
    assert took < 0.8 + 0.3, took
    assert "dev_commits" in snapshot.sector_metrics["L1"]
    assert not any("category" in k for k in snapshot.stale), snapshot.stale
    late = {k for k in snapshot.stale if k.startswith(("metric:tvl_usd", "metric:volume_usd",
                                                       "metric:fees_usd"))}
    assert late, snapshot.stale
    reasons = {venue._reported.get(k) for k in late}
    assert any(r and ("first round not finished" in r or "no answer within" in r)
               for r in reasons), reasons
    # The stalled round finishes on its own; the next read has the timeout as its reason.
    deadline = time.monotonic() + 5
    while venue.running_rounds() and time.monotonic() < deadline:
        time.sleep(0.02)
    _, stale = venue.sector_metrics[0].metrics(AS_OF + timedelta(minutes=1))
    assert any(f"no answer within {TIMEOUT:g}s" in why for why in stale.values()), stale
