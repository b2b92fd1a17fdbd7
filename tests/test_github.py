"""Developer activity per sector from GitHub through real HTTP on loopback: daily commits
summed over a sector's repositories, a year of history on the first fetch, 202 "computing",
unknown repositories, rate limits, and the optional token kept secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import SectorSources, load_sector_sources, load_settings, load_universe
from bot.service.venue import providers
from bot.sources.github import GitHubActivity
from bot.sources.http_client import HttpPolicy, PoliteClient
from tests.daemon_proc import run_cli
from tests.github_server import GitHubFake, weeks_for
from tests.provider_server import Fault, Sleeps, serve

LAST = date(2024, 6, 12)
AS_OF = datetime(2024, 6, 13, tzinfo=UTC)  # the close of 06-12
REPOS = {"solana-labs/solana", "ava-labs/avalanchego", "Uniswap/v4-core"}
SOURCES = {"L1": SectorSources(repos=("solana-labs/solana", "ava-labs/avalanchego")),
           "DEX": SectorSources(repos=("Uniswap/v4-core", "nobody/nothing"))}
STATS = "/repos/{}/stats/commit_activity"


@pytest.fixture
def fake() -> GitHubFake:
    return GitHubFake(LAST, REPOS)


@pytest.fixture
def url(fake: GitHubFake) -> Iterator[str]:
    with serve(fake) as base:
        yield base


def activity(url: str, sleeps: Sleeps | None = None, attempts: int = 3,
             headers: dict[str, str] | None = None) -> GitHubActivity:
    policy = HttpPolicy(timeout_seconds=5, attempts=attempts, base_delay=0.01,
                        min_interval_seconds=0.0)
    return GitHubActivity(PoliteClient(url, policy, headers=headers, sleep=sleeps or Sleeps()),
                          SOURCES)


def daily(repo: str) -> dict[datetime, float]:
    out = {}
    for week in weeks_for(repo, LAST):
        for i, count in enumerate(week["days"]):
            out[datetime.fromtimestamp(week["week"], UTC) + timedelta(days=i + 1)] = count
    return out


def test_a_sector_s_commits_are_the_daily_sum_of_its_repositories(url: str) -> None:
    provider = activity(url)
    metrics, stale = provider.metrics(AS_OF)
    assert stale == {}
    l1 = dict(metrics["L1"]["dev_commits"].points)
    sol, avax = daily("solana-labs/solana"), daily("ava-labs/avalanchego")
    assert len(l1) >= 300, "a year of history on the first fetch"
    assert max(l1) == AS_OF, "only closed days: nothing after the close of 06-12"
    for when, value in l1.items():
        assert value == sol[when] + avax[when]
    assert "HTTP 404" in provider.dropped["dev nobody/nothing"]
    assert dict(metrics["DEX"]["dev_commits"].points) == {
        k: v for k, v in daily("Uniswap/v4-core").items() if k <= AS_OF}


def test_202_while_github_computes_is_asked_again_then_read(fake: GitHubFake,
                                                           url: str) -> None:
    path = STATS.format("ava-labs/avalanchego")
    fake.fail(path, Fault(202), Fault(202))
    sleeps = Sleeps()
    metrics, stale = activity(url, sleeps).metrics(AS_OF)
    assert stale == {} and "L1" in metrics
    assert fake.count(path) == 3 and len(sleeps.asked) == 2


def test_still_computing_after_every_try_is_stale_and_asked_again_next_round(
        fake: GitHubFake, url: str) -> None:
    path = STATS.format("ava-labs/avalanchego")
    fake.fail(path, Fault(202), Fault(202))
    provider = activity(url, attempts=2)
    metrics, stale = provider.metrics(AS_OF)
    assert "still computing (202)" in stale["metric:dev_commits:L1"]
    assert "L1" not in metrics and "DEX" in metrics
    provider.refresh(AS_OF + timedelta(hours=1))
    metrics, stale = provider.metrics(AS_OF + timedelta(hours=1))
    assert stale == {} and "L1" in metrics


def test_a_spent_quota_waits_for_its_reset_only_if_soon(fake: GitHubFake, url: str) -> None:
    path = STATS.format("solana-labs/solana")
    far = str(int(datetime.now(UTC).timestamp()) + 3600)
    fake.fail(path, Fault(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": far}))
    metrics, stale = activity(url).metrics(AS_OF)
    assert "throttled" in stale["metric:dev_commits:L1"]
    assert fake.count(path) == 1, "not retried into a spent quota"
    assert "L1" not in metrics, "a rate limit is not an unknown repository: not left out"


def test_the_token_is_sent_and_never_shown(tmp_path: Path, fake: GitHubFake, url: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    token = "ghp_fake0token0for0tests0123456789"
    monkeypatch.setenv("SECTORBOT__SIGNALS__GITHUB_TOKEN", token)
    settings = load_settings(None)
    assert token in settings.secret_values()  # the log redactor scrubs it everywhere
    assert token not in json.dumps(settings.public_dict())
    assert token not in repr(settings)
    monkeypatch.setenv("SECTORBOT__SIGNALS__GITHUB_URL", url)
    monkeypatch.setenv("SECTORBOT__SIGNALS__DEFILLAMA", "false")
    [github] = providers(load_settings(None), load_universe(None), SOURCES)
    github.metrics(AS_OF)  # wired as the daemon wires it, from the settings
    assert fake.headers_seen and all(h.get("Authorization") == f"Bearer {token}"
                                     for h in fake.headers_seen)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[signals]\ngithub_token = "{token}"\n')
    monkeypatch.delenv("SECTORBOT__SIGNALS__GITHUB_TOKEN")
    proc = run_cli(["check-config", "--config", str(cfg)], tmp_path / "s.sqlite3", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("config error: signals.github_token: secrets are refused")
    assert token not in proc.stderr + proc.stdout


def test_the_default_universe_names_repositories_for_every_sector() -> None:
    for name, src in load_sector_sources(None).items():
        assert src.repos, name
        assert all(r.count("/") == 1 for r in src.repos)


def test_a_malformed_repository_name_is_refused_with_its_key(tmp_path: Path) -> None:
    universe = tmp_path / "sectors.toml"
    universe.write_text('[core]\ntokens = ["BTC"]\n[sectors.L1]\ntokens = ["SOL"]\n'
                        '[sectors.L1.github]\nrepos = ["solana"]\n')
    with pytest.raises(Exception, match=r"sectors.L1.github.repos: 'solana' is not owner/name"):
        load_sector_sources(universe)
