"""Sector TVL, DEX volume and fees from DefiLlama through real HTTP on loopback: sums, history
from the first fetch, and every way an answer goes wrong (throttled, 5xx, truncated,
renamed, NaN, stalled), each ending in a stale signal with its reason and the last good
series kept."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.config import SectorSources, load_sector_sources, load_universe
from bot.sources.defillama import CATEGORY_ALIASES, DefiLlamaSectors, spellings_of
from bot.sources.http_client import HttpPolicy, PoliteClient
from tests.defillama_server import CHAIN_VOLUME_SHARE, FIXTURES, DefiLlamaFake
from tests.provider_server import Fault, Sleeps, serve

AS_OF = datetime(2023, 7, 27, tzinfo=UTC)
SOURCES = {
    "L1": SectorSources(chains=("Solana", "Avalanche")),
    "DEX": SectorSources(categories=("Dexes",)),  # the old spelling: matched by alias
    "LENDING": SectorSources(categories=("Lending", "CDP")),
}


@pytest.fixture
def fake() -> DefiLlamaFake:
    return DefiLlamaFake()


@pytest.fixture
def base_url(fake: DefiLlamaFake) -> Iterator[str]:
    with serve(fake) as url:
        yield url


def provider(url: str, sleeps: Sleeps | None = None, timeout: float = 5.0,
             attempts: int = 3, sources: dict[str, SectorSources] | None = None,
             ) -> DefiLlamaSectors:
    policy = HttpPolicy(timeout_seconds=timeout, attempts=attempts, base_delay=0.01,
                        min_interval_seconds=0.0)
    client = PoliteClient(url, policy, sleep=sleeps or Sleeps())
    return DefiLlamaSectors(client, sources or SOURCES, top_protocols=3,
                        refresh_every=timedelta(hours=6))


def chain_values(chain: str) -> dict[datetime, float]:
    """The fixture's figures, keyed by when they become visible (the day after)."""
    rows = json.loads((FIXTURES / f"chain_{chain}.json").read_text())
    return {datetime.fromtimestamp(r["date"], UTC) + timedelta(days=1): r["tvl"] for r in rows}


def test_sector_tvl_is_the_sum_of_its_chains_and_largest_protocols(base_url: str) -> None:
    metrics, stale = provider(base_url).metrics(AS_OF)
    assert stale == {}
    l1 = metrics["L1"]["tvl_usd"].points
    sol, avax = chain_values("Solana"), chain_values("Avalanche")
    assert len(l1) >= 90, "a fresh daemon has months of history on its first fetch"
    for when, value in l1:
        assert value == pytest.approx(sol[when] + avax[when])
    listed = json.loads((FIXTURES / "protocols.json").read_text())
    top_dex = sorted((p["tvl"] for p in listed if p["category"] == "Dexs"), reverse=True)[:3]
    assert metrics["DEX"]["tvl_usd"].points[-1][1] == pytest.approx(sum(top_dex), rel=1e-6)
    lending = sorted((p["tvl"] for p in listed if p["category"] in ("Lending", "CDP")),
                     reverse=True)[:3]
    assert metrics["LENDING"]["tvl_usd"].points[-1][1] == pytest.approx(sum(lending), rel=1e-6)


def test_dex_volume_sums_a_chain_sector_s_chains_and_takes_all_dexes_for_the_dex_sector(
        base_url: str) -> None:
    metrics, stale = provider(base_url).metrics(AS_OF)
    assert stale == {}
    overview = json.loads((FIXTURES / "overview_dexs.json").read_text())
    total = {datetime.fromtimestamp(ts, UTC) + timedelta(days=1): v
             for ts, v in overview["totalDataChart"]}
    share = CHAIN_VOLUME_SHARE["Solana"] + CHAIN_VOLUME_SHARE["Avalanche"]
    l1, dex = metrics["L1"]["volume_usd"].points, metrics["DEX"]["volume_usd"].points
    assert len(l1) >= 90 and len(dex) >= 90
    for when, value in l1:
        assert value == pytest.approx(total[when] * share, rel=1e-6)
    assert dict(dex) == pytest.approx(total)
    assert "volume_usd" not in metrics["LENDING"], "a lending sector has no DEX volume"


def test_nothing_after_as_of_is_visible(base_url: str) -> None:
    as_of = datetime(2023, 5, 1, tzinfo=UTC)
    metrics, _ = provider(base_url).metrics(as_of)
    for per in metrics.values():
        points = per["tvl_usd"].points
        assert points and points[-1][0] <= as_of


def test_a_throttled_request_waits_as_asked_then_succeeds(fake: DefiLlamaFake,
                                                          base_url: str) -> None:
    path = "/v2/historicalChainTvl/Solana"
    fake.fail(path, Fault(429, {"Retry-After": "2"}))
    sleeps = Sleeps()
    metrics, stale = provider(base_url, sleeps).metrics(AS_OF)
    assert stale == {} and "L1" in metrics
    assert fake.count(path) == 2
    assert 2.0 in sleeps.asked


def test_a_wait_longer_than_allowed_fails_at_once_and_marks_the_sector_stale(
        fake: DefiLlamaFake, base_url: str) -> None:
    path = "/v2/historicalChainTvl/Solana"
    fake.fail(path, Fault(429, {"Retry-After": "3600"}))
    metrics, stale = provider(base_url).metrics(AS_OF)
    assert "throttled" in stale["metric:tvl_usd:L1"]
    assert fake.count(path) == 1
    assert "tvl_usd" not in metrics["L1"] and "tvl_usd" in metrics["DEX"]
    assert "volume_usd" in metrics["L1"], "the sector's other metric is not affected"


@pytest.mark.parametrize("fault, reason", [
    (Fault(500), "server error 500"),
    (Fault(200, body=b'[{"date": 1672531200, "tv'), "not valid JSON"),
    (Fault(200, body=json.dumps([{"date": 1672531200, "totalValueLocked": 1.0}]).encode()),
     "tvl"),
    (Fault(200, body=b'[{"date": 1672531200, "tvl": NaN}]'), "finite"),
])
def test_a_bad_answer_marks_the_sector_stale_and_keeps_its_last_good_series(
        fake: DefiLlamaFake, base_url: str, fault: Fault, reason: str) -> None:
    tvl = provider(base_url)
    first, _ = tvl.metrics(AS_OF)
    path = "/v2/historicalChainTvl/Avalanche"
    tries = 3 if fault.status >= 500 else 1  # only a 5xx is retried (3 attempts)
    fake.fail(path, *[fault] * tries)
    later = AS_OF + timedelta(hours=7)  # past the refresh interval: fetched again
    tvl.refresh(later)
    metrics, stale = tvl.metrics(later)
    assert reason in stale["metric:tvl_usd:L1"]
    assert set(stale) == {"metric:tvl_usd:L1"}, "only the sector that failed"
    assert metrics["L1"]["tvl_usd"] == first["L1"]["tvl_usd"], "the last good series stays"
    assert fake.count(path) == 1 + tries
    tvl.refresh(later + timedelta(minutes=5))
    again, stale = tvl.metrics(later + timedelta(minutes=5))
    assert again["L1"]["tvl_usd"] == first["L1"]["tvl_usd"]
    assert stale == {}, "a failed sector is fetched again on the next round, not in 6 hours"


def test_a_stalled_path_costs_its_own_timeouts_and_the_other_sectors_are_read(
        fake: DefiLlamaFake, base_url: str) -> None:
    """A slow answer is not a dead host: the path that stalls fails, the rest go on."""
    fake.fail("/protocols", Fault(stall=10), Fault(stall=10))
    started = time.monotonic()
    metrics, stale = provider(base_url, timeout=0.5, attempts=2).metrics(AS_OF)
    elapsed = time.monotonic() - started
    assert "no answer within 0.5s" in stale["metric:tvl_usd:DEX"]
    assert "no answer within 0.5s" in stale["metric:tvl_usd:LENDING"], "listed once per round"
    assert fake.count("/protocols") == 2
    assert "tvl_usd" in metrics["L1"] and "volume_usd" in metrics["DEX"]
    assert elapsed < 5, "two 0.5 s timeouts, not the 10 s stall"


def test_a_host_nobody_answers_on_costs_one_connection_round_not_one_per_sector() -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sleeps = Sleeps()
    metrics, stale = provider(url, sleeps, attempts=2).metrics(AS_OF)
    assert metrics == {}
    assert set(stale) == {"metric:tvl_usd", "metric:tvl_usd:DEX", "metric:tvl_usd:L1",
                          "metric:tvl_usd:LENDING", "metric:volume_usd",
                          "metric:volume_usd:DEX", "metric:volume_usd:L1",
                          "metric:fees_usd", "metric:fees_usd:DEX", "metric:fees_usd:L1",
                          "metric:fees_usd:LENDING"}
    assert all("cannot connect" in reason for reason in stale.values()
               if reason.startswith("GET"))
    assert len(sleeps.asked) == 1, "one backoff between the two tries of one request"


def test_a_round_stops_at_its_budget_and_the_rest_is_fetched_next_round(
        fake: DefiLlamaFake, base_url: str) -> None:
    fake.fail("/protocols", Fault(stall=0.6))
    policy = HttpPolicy(timeout_seconds=5, attempts=1, min_interval_seconds=0.0)
    tvl = DefiLlamaSectors(PoliteClient(base_url, policy), SOURCES, top_protocols=3,
                           round_budget_seconds=0.3)
    first, stale = tvl.metrics(AS_OF)
    assert stale == {}, "what was not reached is not stale, only not there yet"
    assert set(first) == {"DEX"} and set(first["DEX"]) == {"tvl_usd"}
    tvl.refresh(AS_OF + timedelta(minutes=1))
    second, stale = tvl.metrics(AS_OF + timedelta(minutes=1))
    assert stale == {} and "L1" in second


def test_a_stop_request_ends_a_round_between_requests(base_url: str) -> None:
    asked = {"n": 0}

    def stopping() -> bool:
        asked["n"] += 1
        return asked["n"] > 1  # the daemon is told to stop after the first job

    policy = HttpPolicy(timeout_seconds=5, attempts=1, min_interval_seconds=0.0)
    tvl = DefiLlamaSectors(PoliteClient(base_url, policy), SOURCES, stopping=stopping)
    metrics, stale = tvl.metrics(AS_OF)
    assert stale == {} and sum(len(m) for m in metrics.values()) == 1


def test_millisecond_timestamps_mark_the_sector_stale_instead_of_failing_the_cycle(
        fake: DefiLlamaFake, base_url: str) -> None:
    rows = json.loads((FIXTURES / "chain_Solana.json").read_text())
    fake.chains["Solana"] = [{**r, "date": r["date"] * 1000} for r in rows]
    metrics, stale = provider(base_url).metrics(AS_OF)
    assert "not a unix time in seconds" in stale["metric:tvl_usd:L1"]
    assert "tvl_usd" in metrics["DEX"]


def test_a_day_still_open_at_the_fetch_is_never_kept_as_its_close(base_url: str) -> None:
    """Fetched at noon, DefiLlama's last point is the day so far; a decision after
    midnight must not read it as that day's close."""
    fake = DefiLlamaFake(last_day=date(2024, 3, 10))
    with serve(fake) as url:
        tvl = provider(url)
        noon = datetime(2024, 3, 10, 12, tzinfo=UTC)
        tvl.refresh(noon)
        after_midnight, _ = tvl.metrics(datetime(2024, 3, 11, 1, tzinfo=UTC))
    last = after_midnight["L1"]["tvl_usd"].points[-1][0]
    assert last == datetime(2024, 3, 10, tzinfo=UTC), "the close of 03-09, not of 03-10"


def test_a_chain_that_stopped_reporting_is_left_out_and_named(fake: DefiLlamaFake,
                                                               base_url: str) -> None:
    rows = json.loads((FIXTURES / "chain_Avalanche.json").read_text())
    fake.chains["Avalanche"] = rows[:-30]  # its last month missing: it stopped
    tvl = provider(base_url)
    metrics, stale = tvl.metrics(AS_OF)
    assert stale == {}
    sol = chain_values("Solana")
    l1 = dict(metrics["L1"]["tvl_usd"].points)
    assert l1 == pytest.approx(sol), "Solana alone: no stale Avalanche value carried forward"
    assert "stopped reporting" in tvl.dropped["tvl chain Avalanche"]


def test_a_young_component_does_not_show_up_as_growth(fake: DefiLlamaFake,
                                                      base_url: str) -> None:
    rows = json.loads((FIXTURES / "chain_Avalanche.json").read_text())
    fake.chains["Avalanche"] = rows[-20:]  # listed 20 days ago
    tvl = provider(base_url)
    metrics, _ = tvl.metrics(AS_OF)
    assert dict(metrics["L1"]["tvl_usd"].points) == pytest.approx(chain_values("Solana"))
    assert "under 90 days" in tvl.dropped["tvl chain Avalanche"]


def test_a_chain_defillama_does_not_know_is_left_out_not_the_sector(base_url: str) -> None:
    sources = {"L1": SectorSources(chains=("Solana", "Atlantis"))}
    tvl = provider(base_url, sources=sources)
    metrics, stale = tvl.metrics(AS_OF)
    assert stale == {}
    assert dict(metrics["L1"]["tvl_usd"].points) == pytest.approx(chain_values("Solana"))
    assert "HTTP 404" in tvl.dropped["tvl chain Atlantis"]


def test_the_default_universe_names_a_tvl_source_for_every_sector() -> None:
    sources = load_sector_sources(None)
    for sector in load_universe(None).sectors:
        src = sources[sector.name]
        assert src.chains or src.categories, sector.name
        for category in src.categories:
            known = set().union(*CATEGORY_ALIASES.values())
            assert spellings_of(category) & known, (sector.name, category)


def test_a_read_never_waits_for_a_round_in_progress(fake: DefiLlamaFake,
                                                    base_url: str) -> None:
    """The daemon runs rounds in a job of their own; a decision reading meanwhile gets the
    last published figures at once (a slow provider must not hold up trading)."""
    import threading

    tvl = provider(base_url)
    first, _ = tvl.metrics(AS_OF)  # the first read runs the first round itself
    requests = len(fake.requests)
    assert tvl.metrics(AS_OF + timedelta(hours=7)) == (first, {})
    assert len(fake.requests) == requests, "a read after the first sends nothing"
    fake.fail("/v2/historicalChainTvl/Solana", Fault(stall=2))
    later = AS_OF + timedelta(hours=7)
    slow = threading.Thread(target=tvl.refresh, args=(later,))
    slow.start()
    time.sleep(0.3)  # the round is now waiting on the stalled answer
    started = time.monotonic()
    during, stale = tvl.metrics(later)
    waited = time.monotonic() - started
    slow.join()
    assert slow_was_running(fake) and waited < 1.0
    assert during == first and stale == {}


def slow_was_running(fake: DefiLlamaFake) -> bool:
    return fake.count("/v2/historicalChainTvl/Solana") == 2


# -- fees -------------------------------------------------------------------------------------

def fee_breakdown(name: str) -> dict[datetime, float]:
    """One protocol's recorded daily fees, keyed by when they become visible."""
    overview = json.loads((FIXTURES / "overview_fees.json").read_text())
    return {datetime.fromtimestamp(ts, UTC) + timedelta(days=1): values[name]
            for ts, values in overview["totalDataChartBreakdown"] if name in values}


def test_sector_fees_sum_a_chain_sector_s_chains_and_a_category_s_largest_earners(
        fake: DefiLlamaFake, base_url: str) -> None:
    tvl = provider(base_url)
    metrics, stale = tvl.metrics(AS_OF)
    assert stale == {}
    chart = json.loads((FIXTURES / "overview_fees_chain.json").read_text())["totalDataChart"]
    share = CHAIN_VOLUME_SHARE["Solana"] + CHAIN_VOLUME_SHARE["Avalanche"]
    l1 = metrics["L1"]["fees_usd"].points
    assert len(l1) >= 90
    expected = {datetime.fromtimestamp(ts, UTC) + timedelta(days=1): v * share
                for ts, v in chart}
    for when, value in l1:
        assert value == pytest.approx(expected[when], rel=1e-6)
    # DEX: the Dexs protocols of the breakdown (matched through the "Dexes" alias), not
    # Pendle (Yield); LENDING: Compound, with Aave left out (its fees stop on 2023-06-07).
    assert dict(metrics["DEX"]["fees_usd"].points) == pytest.approx(fee_breakdown("Uniswap V3"))
    assert dict(metrics["LENDING"]["fees_usd"].points) == pytest.approx(
        fee_breakdown("Compound V2"))
    assert "stopped reporting" in tvl.dropped["fees protocol Aave V3"]
    assert fake.count("/overview/fees") == 3, "two chains, and the breakdown once per round"
    assert fake.count("/overview/fees/") == 2


@pytest.mark.parametrize("fault, reason", [
    (Fault(429, {"Retry-After": "3600"}), "throttled"),
    (Fault(500), "server error 500"),
    (Fault(200, body=b'{"totalDataChartBreakdown": [[1672531200, {"Compound V2": 1'),
     "not valid JSON"),
    (Fault(200, body=json.dumps({"totalDataChartBreakdown": [], "protocolz": []}).encode()),
     "protocols"),
    (Fault(200, body=b'{"totalDataChartBreakdown": [[1672531200, {"Compound V2": NaN}]], '
                     b'"protocols": []}'), "finite"),
    (Fault(200, body=json.dumps({"totalDataChartBreakdown": [[1672531200000, {}]],
                                 "protocols": []}).encode()), "unix time in seconds"),
])
def test_a_bad_fees_answer_marks_the_category_sectors_fees_stale_and_nothing_else(
        fake: DefiLlamaFake, base_url: str, fault: Fault, reason: str) -> None:
    tvl = provider(base_url)
    first, _ = tvl.metrics(AS_OF)
    fake.fail("/overview/fees", *[fault] * (3 if fault.status >= 500 else 1))
    later = AS_OF + timedelta(hours=7)
    tvl.refresh(later)
    metrics, stale = tvl.metrics(later)
    assert set(stale) == {"metric:fees_usd:DEX", "metric:fees_usd:LENDING"}, stale
    assert reason in stale["metric:fees_usd:LENDING"]
    assert stale["metric:fees_usd:DEX"] == stale["metric:fees_usd:LENDING"], \
        "asked once per round: one reason for both"
    assert metrics["LENDING"]["fees_usd"] == first["LENDING"]["fees_usd"], "last good kept"
    assert metrics["L1"]["fees_usd"] == first["L1"]["fees_usd"]


def test_a_stalled_fees_breakdown_costs_its_own_timeout(fake: DefiLlamaFake,
                                                        base_url: str) -> None:
    fake.fail("/overview/fees", Fault(stall=10))
    started = time.monotonic()
    metrics, stale = provider(base_url, timeout=0.5, attempts=1).metrics(AS_OF)
    assert time.monotonic() - started < 5
    assert "no answer within 0.5s" in stale["metric:fees_usd:LENDING"]
    assert "fees_usd" in metrics["L1"] and "tvl_usd" in metrics["LENDING"]
