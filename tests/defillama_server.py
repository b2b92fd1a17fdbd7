"""A loopback HTTP server answering DefiLlama's free endpoints from tests/fixtures/defillama.

Real HTTP (the client under test uses httpx over a socket), with faults a test can script
per path: a status with headers, a truncated body, a stall, a renamed field.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "defillama"


CHAIN_VOLUME_SHARE = {"Solana": 0.3, "Avalanche": 0.05, "Arbitrum": 0.2, "Optimism": 0.05}
"""Chains the fake knows, and the share of the recorded DEX volume each is given."""


@dataclass
class Fault:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stall: float = 0.0


class DefiLlamaFake:
    def __init__(self, last_day: date | None = None) -> None:
        """``last_day``: shift every series so it ends that day (a daemon on the wall clock
        needs recent figures; the recorded ones end on 2023-07-25)."""
        self.protocols: list[dict[str, Any]] = json.loads((FIXTURES / "protocols.json")
                                                          .read_text())
        self.uniswap = json.loads((FIXTURES / "protocol_uniswap.json").read_text())
        self.overview = json.loads((FIXTURES / "overview_dexs.json").read_text())
        self.chains: dict[str, list[dict[str, Any]]] = {}
        """Extra or replaced ``/v2/historicalChainTvl/<chain>`` answers (unshifted)."""
        self.shift = 0
        if last_day is not None:
            end = datetime.fromtimestamp(self.uniswap["tvl"][-1]["date"], UTC).date()
            self.shift = (last_day - end).days * 86_400
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def fail(self, path: str, *faults: Fault) -> None:
        """The next requests to ``path`` get these answers, in order, then normal ones."""
        with self.lock:
            self.faults.setdefault(path, []).extend(faults)

    def count(self, prefix: str = "") -> int:
        return sum(1 for p in self.requests if p.startswith(prefix))

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]:
        with self.lock:
            self.requests.append(path)
            queued = self.faults.get(path)
            fault = queued.pop(0) if queued else None
        if fault is not None and (fault.status != 200 or fault.body is not None):
            return fault.status, fault.headers, fault.body or b"", fault.stall
        stall = fault.stall if fault is not None else 0.0
        body = self._body(path)
        if body is None:
            return 404, {}, b'{"message":"not found"}', stall
        return 200, {}, json.dumps(body).encode(), stall

    def _body(self, path: str) -> Any:
        if path == "/protocols":
            return self.protocols
        if path.startswith("/v2/historicalChainTvl/"):
            chain = path.rsplit("/", 1)[1]
            file = FIXTURES / f"chain_{chain}.json"
            if chain in self.chains:
                rows = self.chains[chain]
            elif file.exists():
                rows = json.loads(file.read_text())
            else:
                return None
            return [{**p, "date": p["date"] + self.shift} for p in rows]
        if path == "/overview/dexs" or path.startswith("/overview/dexs/"):
            chain = path.removeprefix("/overview/dexs").strip("/")
            scale = CHAIN_VOLUME_SHARE.get(chain, 1.0) if chain else 1.0
            if chain and chain not in CHAIN_VOLUME_SHARE:
                return None
            return {**self.overview,
                    "totalDataChart": [[ts + self.shift, round(v * scale, 2)]
                                       for ts, v in self.overview["totalDataChart"]]}
        if path.startswith("/protocol/"):
            slug = path.rsplit("/", 1)[1]
            listed = next((p for p in self.protocols if p["slug"] == slug), None)
            if listed is None:
                return None
            last = self.uniswap["tvl"][-1]["totalLiquidityUSD"]
            scale = float(listed["tvl"]) / last
            return {**self.uniswap, "name": listed["name"],
                    "tvl": [{"date": p["date"] + self.shift,
                             "totalLiquidityUSD": round(p["totalLiquidityUSD"] * scale, 2)}
                            for p in self.uniswap["tvl"]]}
        return None


class Answers(Protocol):
    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]: ...


@contextmanager
def serve(fake: Answers) -> Iterator[str]:
    """Run ``fake`` (anything that answers a path) on a loopback port; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            seen = getattr(fake, "headers_seen", None)
            if seen is not None:
                seen.append(dict(self.headers))
            status, headers, body, stall = fake.answer(path)
            if stall:
                time.sleep(stall)
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
