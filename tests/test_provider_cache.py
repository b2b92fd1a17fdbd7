"""Conditional requests through real HTTP on loopback: the server sends an ETag, the next
round asks with If-None-Match, a 304 reuses the kept body (the series unchanged); a changed
answer (new ETag) is new data; a corrupt cache entry is ignored, never a crash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import SectorSources
from bot.sources.defillama import DefiLlamaSectors
from bot.sources.http_cache import ResponseCache
from bot.sources.http_client import HttpPolicy, PoliteClient
from tests.defillama_server import DefiLlamaFake
from tests.provider_server import Sleeps, serve

AS_OF = datetime(2023, 7, 27, tzinfo=UTC)
CHAIN = "/v2/historicalChainTvl/Solana"
SOURCES = {"L1": SectorSources(chains=("Solana",))}


class WithETags:
    """DefiLlama's fake behind validators: each 200 carries ``ETag`` (the body's hash) and
    ``Last-Modified``; a request whose ``If-None-Match`` matches gets a bodiless 304.
    ``bump`` changes a path's answer (so its ETag)."""

    def __init__(self) -> None:
        self.fake = DefiLlamaFake()
        self.headers_seen: list[dict[str, str]] = []
        self.statuses: list[tuple[str, int]] = []
        self.bumped: dict[str, float] = {}

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]:
        asked = self.headers_seen[-1].get("If-None-Match")
        status, headers, body, stall = self.fake.answer(path)
        if status == 200 and path in self.bumped:
            rows = json.loads(body)
            rows[-1]["tvl"] *= self.bumped[path]
            body = json.dumps(rows).encode()
        if status == 200:
            etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
            headers = {**headers, "ETag": etag,
                       "Last-Modified": "Wed, 26 Jul 2023 00:00:00 GMT"}
            if asked == etag:
                status, body = 304, b""
        self.statuses.append((path, status))
        return status, headers, body, stall

    def conditional(self, path: str) -> list[str | None]:
        return [h.get("If-None-Match") for h, (p, _) in zip(self.headers_seen, self.statuses,
                                                             strict=True) if p == path]


@pytest.fixture
def server() -> WithETags:
    return WithETags()


@pytest.fixture
def url(server: WithETags) -> Iterator[str]:
    with serve(server) as base:
        yield base


def provider(url: str, cache: ResponseCache) -> tuple[DefiLlamaSectors, PoliteClient]:
    policy = HttpPolicy(timeout_seconds=5, attempts=2, base_delay=0.01,
                        min_interval_seconds=0.0)
    client = PoliteClient(url, policy, sleep=Sleeps(), cache=cache)
    return DefiLlamaSectors(client, SOURCES, refresh_every=timedelta(hours=6)), client


def tvl(p: DefiLlamaSectors, when: datetime) -> Any:
    metrics, stale = p.metrics(when)
    assert stale == {}
    return metrics["L1"]["tvl_usd"].points


def test_an_unchanged_answer_is_a_304_and_the_kept_body(server: WithETags, url: str,
                                                         tmp_path: Path) -> None:
    p, client = provider(url, ResponseCache(tmp_path / "cache"))
    first = tvl(p, AS_OF)
    later = AS_OF + timedelta(hours=7)  # every job due again
    p.refresh(later)
    assert tvl(p, later) == first
    assert server.conditional(CHAIN)[0] is None
    assert server.conditional(CHAIN)[1] is not None, "the second round asks conditionally"
    assert (CHAIN, 304) in server.statuses and client.not_modified >= 1
    # A restarted daemon (a new client over the same directory) revalidates too.
    again, client2 = provider(url, ResponseCache(tmp_path / "cache"))
    assert tvl(again, later) == first and client2.not_modified >= 1


def test_a_changed_answer_is_new_data(server: WithETags, url: str, tmp_path: Path) -> None:
    p, _ = provider(url, ResponseCache(tmp_path / "cache"))
    first = tvl(p, AS_OF)
    server.bumped[CHAIN] = 2.0
    later = AS_OF + timedelta(hours=7)
    p.refresh(later)
    points = tvl(p, later)
    assert server.statuses.count((CHAIN, 200)) == 2, "the new ETag's answer was read"
    assert points[-1][1] == pytest.approx(first[-1][1] * 2)
    assert points[:-1] == first[:-1]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other url", "bad json body"])
def test_a_corrupt_entry_is_ignored_and_the_request_goes_out_unconditional(
        server: WithETags, url: str, tmp_path: Path, damage: str) -> None:
    cache = ResponseCache(tmp_path / "cache")
    p, _ = provider(url, cache)
    first = tvl(p, AS_OF)
    entries = sorted((tmp_path / "cache").glob("*.entry"))
    assert entries
    for entry in entries:
        raw = entry.read_bytes()
        head, _, body = raw.partition(b"\n")
        if damage == "garbage":
            entry.write_bytes(b"\x00\xffnot an entry")
        elif damage == "truncated":
            entry.write_bytes(raw[: len(raw) // 2])
        elif damage == "other url":
            meta = json.loads(head)
            meta["url"] = "http://elsewhere/"
            entry.write_bytes(json.dumps(meta).encode() + b"\n" + body)
        else:  # stored that way, checksum and all: the 304's body cannot be decoded
            meta = json.loads(head)
            bad = b"[{"
            meta.update(length=len(bad), sha256=hashlib.sha256(bad).hexdigest())
            entry.write_bytes(json.dumps(meta).encode() + b"\n" + bad)
    later = AS_OF + timedelta(hours=7)
    p.refresh(later)
    assert tvl(p, later) == first
    if damage == "bad json body":
        assert (CHAIN, 304) in server.statuses  # then asked again without conditions
        assert server.conditional(CHAIN)[-1] is None
    else:
        assert server.conditional(CHAIN)[1] is None
        assert cache.ignored >= len(entries)


def test_a_half_written_entry_left_by_an_exit_is_pruned_once_stale(tmp_path: Path) -> None:
    """An exit between writing an entry's ``*.tmp`` and renaming it leaves the file behind:
    one older than a minute is pruned when the cache is opened; a fresh one may be another
    writer's, under way, and stays."""
    import os
    import time

    directory = tmp_path / "cache"
    directory.mkdir()
    old, fresh = directory / "tmpabc.tmp", directory / "tmpdef.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    long_ago = time.time() - 120
    os.utime(old, (long_ago, long_ago))
    ResponseCache(directory)
    assert not old.exists()
    assert fresh.exists()
