"""Category attention from CoinGecko through real HTTP on loopback: a sector's categories
summed into one reading a day, published once the day is over, every way an answer goes
wrong (throttled, 5xx, truncated, renamed, NaN, old, stalled) ending in a stale signal with
its reason, the demo key kept secret, and the history a restarted daemon seeds from its
store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import (
    ConfigError,
    SectorSources,
    load_sector_sources,
    load_settings,
    load_universe,
)
from bot.domain.models import Series
from bot.service.venue import providers
from bot.sources.coingecko import (
    CATEGORY_MCAP,
    CATEGORY_VOLUME,
    CoinGeckoCategories,
    HistoryReader,
)
from bot.sources.http_client import HttpPolicy, PoliteClient
from bot.store.repo import StateStore
from tests.coingecko_server import CoinGeckoFake
from tests.daemon_proc import run_cli
from tests.provider_server import Fault, Sleeps, serve

DAY1 = datetime(2024, 6, 12, 12, tzinfo=UTC)
SOURCES = {
    "L1": SectorSources(coingecko_categories=("smart-contract-platform", "layer-1")),
    "L2": SectorSources(coingecko_categories=("layer-2", "no-such-category")),
    "DEX": SectorSources(coingecko_categories=("decentralized-exchange",)),
}
PATH = "/coins/categories"


@pytest.fixture
def fake() -> CoinGeckoFake:
    return CoinGeckoFake(now=DAY1)


@pytest.fixture
def url(fake: CoinGeckoFake) -> Iterator[str]:
    with serve(fake) as base:
        yield base


def gecko(url: str, sleeps: Sleeps | None = None, timeout: float = 5.0, attempts: int = 3,
          history: HistoryReader | None = None,
          headers: dict[str, str] | None = None) -> CoinGeckoCategories:
    policy = HttpPolicy(timeout_seconds=timeout, attempts=attempts, base_delay=0.01,
                        min_interval_seconds=0.0)
    client = PoliteClient(url, policy, headers=headers, sleep=sleeps or Sleeps())
    return CoinGeckoCategories(client, SOURCES, history=history)


def volume(fake: CoinGeckoFake, *categories: str) -> float:
    return sum(fake.row(c)["volume_24h"] for c in categories)


def next_day(fake: CoinGeckoFake, provider: CoinGeckoCategories, when: datetime,
             factor: float) -> tuple[dict[str, dict[str, Series]], dict[str, str]]:
    fake.now, fake.scale = when, {"*": factor}
    provider.refresh(when)
    return provider.metrics(when)


def test_a_day_s_reading_is_the_sum_of_its_categories_published_once_the_day_is_over(
        fake: CoinGeckoFake, url: str) -> None:
    provider = gecko(url)
    metrics, stale = provider.metrics(DAY1)
    assert metrics == {} and stale == {}, "today is not over: nothing to read yet"
    fake.now = DAY1 + timedelta(hours=5)
    fake.scale = {"*": 2.0}  # a later reading of the same day replaces the first
    provider.refresh(DAY1 + timedelta(hours=7))
    metrics, stale = next_day(fake, provider, DAY1 + timedelta(hours=13), 3.0)
    assert stale == {}
    close = datetime(2024, 6, 13, tzinfo=UTC)  # the figure of 06-12, visible from 06-13
    l1 = metrics["L1"][CATEGORY_VOLUME].points
    assert l1 == ((close, 2.0 * volume(fake, "smart-contract-platform", "layer-1")),)
    mcap = metrics["DEX"][CATEGORY_MCAP].points
    assert mcap == ((close, 2.0 * fake.row("decentralized-exchange")["market_cap"]),)
    # An id CoinGecko does not list is left out of the sum and named, not the sector.
    l2 = metrics["L2"][CATEGORY_VOLUME].points
    assert l2 == ((close, 2.0 * volume(fake, "layer-2")),)
    assert "not listed" in provider.dropped["coingecko category no-such-category"]
    assert fake.count(PATH) == 3, "one request per round for every sector and metric"


def test_a_throttled_request_waits_as_asked_then_succeeds(fake: CoinGeckoFake,
                                                          url: str) -> None:
    fake.fail(PATH, Fault(429, {"Retry-After": "2"}))
    sleeps = Sleeps()
    provider = gecko(url, sleeps)
    _, stale = provider.metrics(DAY1)
    assert stale == {} and 2.0 in sleeps.asked and fake.count(PATH) == 2


@pytest.mark.parametrize("fault, reason", [
    (Fault(429, {"Retry-After": "3600"}), "throttled"),
    (Fault(500), "server error 500"),
    (Fault(200, body=b'[{"id": "layer-1", "name": "Layer 1", "market_c'), "not valid JSON"),
    (Fault(200, body=json.dumps([{"id": "layer-2", "name": "L2", "market_cap": 1.0,
                                  "volume24h": 1.0}]).encode()), "volume_24h"),
    (Fault(200, body=b'[{"id": "decentralized-exchange", "name": "DEX", "market_cap": 1.0, '
                     b'"volume_24h": NaN}]'), "finite"),
])
def test_a_bad_answer_marks_every_sector_stale_and_keeps_the_days_it_has(
        fake: CoinGeckoFake, url: str, fault: Fault, reason: str) -> None:
    provider = gecko(url)
    provider.metrics(DAY1)
    first, _ = next_day(fake, provider, DAY1 + timedelta(days=1), 1.5)
    fake.fail(PATH, *[fault] * (3 if fault.status >= 500 else 1))
    later = DAY1 + timedelta(days=2)
    metrics, stale = next_day(fake, provider, later, 2.0)
    keys = {f"metric:{m}:{s}" for s in SOURCES for m in (CATEGORY_VOLUME, CATEGORY_MCAP)}
    assert set(stale) == keys | {f"metric:{CATEGORY_VOLUME}", f"metric:{CATEGORY_MCAP}"}
    assert reason in stale[f"metric:{CATEGORY_VOLUME}:DEX"]
    assert metrics == first, "the days read before are kept; the failed day is not invented"
    # The next rounds read again; the failed day (06-14) simply has no point.
    next_day(fake, provider, later + timedelta(days=1), 2.5)
    metrics, stale = next_day(fake, provider, later + timedelta(days=2), 3.0)
    assert stale == {}
    points = metrics["L1"][CATEGORY_VOLUME].points
    assert [when.day for when, _ in points] == [13, 14, 16], "figures of 06-12, 13 and 15"


def test_a_category_without_a_figure_or_with_an_old_one_is_stale_not_zero(
        fake: CoinGeckoFake, url: str) -> None:
    fake.row("layer-1")["volume_24h"] = None
    provider = gecko(url)
    _, stale = provider.metrics(DAY1)
    assert "layer-1 has no volume_24h" in stale[f"metric:{CATEGORY_VOLUME}:L1"]
    assert f"metric:{CATEGORY_MCAP}:L1" not in stale, "its market cap is there"
    fake.now = DAY1 - timedelta(days=3)  # CoinGecko stopped updating its figures
    provider.refresh(DAY1 + timedelta(hours=7))
    _, stale = provider.metrics(DAY1 + timedelta(hours=7))
    assert "older than 36 h" in stale[f"metric:{CATEGORY_MCAP}:DEX"]


def test_a_stall_costs_one_timeout_for_the_round(fake: CoinGeckoFake, url: str) -> None:
    fake.fail(PATH, Fault(stall=10))
    started = time.monotonic()
    _, stale = gecko(url, timeout=0.5, attempts=1).metrics(DAY1)
    assert time.monotonic() - started < 5
    assert "no answer within 0.5s" in stale[f"metric:{CATEGORY_VOLUME}:L1"]
    assert fake.count(PATH) == 1, "asked once for every sector and metric"


def test_a_restarted_daemon_seeds_its_history_from_the_store(fake: CoinGeckoFake, url: str,
                                                            tmp_path: Path) -> None:
    """What the daemon kept (``sector_metric_points``) is read back: the restarted provider
    has every earlier day at once, where a fresh one would need five weeks."""
    store = StateStore(tmp_path / "state.sqlite3")

    def kept() -> list[tuple[str, str, date, float]]:
        return [(r.sector, r.metric, r.day, r.value) for r in store.sector_metric_points()]

    first = gecko(url, history=kept)
    for n in range(4):  # four days, each kept as the daemon's cycle keeps them
        when = DAY1 + timedelta(days=n)
        metrics, _ = next_day(fake, first, when, 1.0 + n)
        store.record_sector_metrics(metrics, when)
    before = first.metrics(DAY1 + timedelta(days=3))[0]
    assert len(before["L1"][CATEGORY_VOLUME].points) == 3
    first.close()
    store.close()

    store = StateStore(tmp_path / "state.sqlite3")
    fake.fail(PATH, Fault(500), Fault(500), Fault(500))  # CoinGecko down at the restart
    restarted = gecko(url, history=kept)
    when = DAY1 + timedelta(days=3, hours=1)
    restarted.metrics(when)  # the first round: seeded, the reading failed
    metrics, stale = next_day(fake, restarted, DAY1 + timedelta(days=4), 5.0)
    assert stale == {}
    points = metrics["L1"][CATEGORY_VOLUME].points
    assert [p[1] for p in points[:3]] == [p[1] for p in before["L1"][CATEGORY_VOLUME].points]
    assert len(points) == 3, "06-15's reading failed at the restart: no point, not a zero"
    store.close()


def test_the_demo_key_is_sent_and_never_shown(tmp_path: Path, fake: CoinGeckoFake, url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = "CG-fake0demo0key0for0tests"
    monkeypatch.setenv("SECTORBOT__SIGNALS__COINGECKO_API_KEY", key)
    settings = load_settings(None)
    assert key in settings.secret_values()  # the log redactor scrubs it everywhere
    assert key not in json.dumps(settings.public_dict()) and key not in repr(settings)
    monkeypatch.setenv("SECTORBOT__SIGNALS__COINGECKO_URL", url)
    monkeypatch.setenv("SECTORBOT__SIGNALS__DEFILLAMA", "false")
    monkeypatch.setenv("SECTORBOT__SIGNALS__GITHUB", "false")
    [provider] = providers(load_settings(None), load_universe(None), SOURCES)
    provider.metrics(DAY1)  # wired as the daemon wires it, from the settings
    assert fake.headers_seen and all(h.get("x-cg-demo-api-key") == key
                                     for h in fake.headers_seen)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[signals]\ncoingecko_api_key = "{key}"\n')
    monkeypatch.delenv("SECTORBOT__SIGNALS__COINGECKO_API_KEY")
    proc = run_cli(["check-config", "--config", str(cfg)], tmp_path / "s.sqlite3", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("config error: signals.coingecko_api_key: secrets are "
                                  "refused")
    assert key not in proc.stderr + proc.stdout


def test_a_bad_coingecko_mapping_is_refused_with_its_key(tmp_path: Path) -> None:
    universe = tmp_path / "sectors.toml"
    universe.write_text('[core]\ntokens = ["BTC"]\n[sectors.L1]\ntokens = ["SOL"]\n'
                        '[sectors.L1.coingecko]\ncategory = ["layer-1"]\n'
                        'categories = ["Layer 1"]\n')
    with pytest.raises(ConfigError) as caught:
        load_sector_sources(universe)
    assert caught.value.lines == [
        "sectors.L1.coingecko.category: unknown key",
        "sectors.L1.coingecko.categories: 'Layer 1' is not a CoinGecko category id (lower "
        "case, digits and '-', such as \"layer-1\")"]
