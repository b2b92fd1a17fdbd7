"""A host that trickles its answer cannot hold a request (and its provider's round) for ever:
the timeout bounds each read, and a request as a whole ends at its deadline
(``PoliteClient.request_deadline``), as a provider error the round marks stale."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.config import SectorSources
from bot.sources.github import GitHubActivity
from bot.sources.http_client import HttpPolicy, PoliteClient, ProviderError
from tests.provider_server import Sleeps

TIMEOUT = 0.2
DRIP = 0.1
"""A byte every DRIP seconds: each read gets an answer well within the timeout."""
BODY = b"[" + b" " * 38 + b"]"  # 40 bytes: 4 s of trickle


@pytest.fixture
def dripping() -> Iterator[str]:
    """A loopback host that answers 200 at once, then its body a byte at a time."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.1)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(BODY))
                for byte in BODY:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(DRIP)
            except OSError:
                return  # the client gave up: what this test wants

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(1)
        srv.close()


def client(url: str) -> PoliteClient:
    return PoliteClient(url, HttpPolicy(timeout_seconds=TIMEOUT, attempts=1,
                                        min_interval_seconds=0.0), sleep=Sleeps())


def test_a_trickling_answer_ends_at_the_request_deadline(dripping: str) -> None:
    c = client(dripping)
    started = time.monotonic()
    with pytest.raises(ProviderError, match="no full answer within"):
        c.get_json("/x")
    took = time.monotonic() - started
    # Never the 4 s of trickle; at most one read beyond the deadline.
    assert c.request_deadline <= took < c.request_deadline + TIMEOUT + 0.3, took
    c.close()


def test_a_round_against_a_trickling_host_ends_and_its_job_reads_stale(dripping: str) -> None:
    as_of = datetime(2024, 6, 13, 12, tzinfo=UTC)
    sources = {"L1": SectorSources(chains=(), repos=("solana-labs/solana",),
                                   coingecko_categories=())}
    provider = GitHubActivity(client(dripping), sources, round_budget_seconds=0.1)
    started = time.monotonic()
    provider.refresh(as_of)
    assert time.monotonic() - started < 3 * TIMEOUT + TIMEOUT + 0.5
    assert provider.published
    _, stale = provider.metrics(as_of)
    assert any("no full answer within" in why for why in stale.values()), stale
    provider.close()
