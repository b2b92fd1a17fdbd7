"""Loopback HTTP for the signal providers' tests: a scripted fake and a server for it.

Real HTTP (the client under test uses httpx over a socket). A fake answers each path from
its recorded or synthetic data; a test scripts faults per path (a status with headers, a
truncated body, a stall), and the fake records every request and its headers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit


@dataclass
class Fault:
    """One scripted answer; ``status`` 200 with no body only stalls a normal answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stall: float = 0.0


class ScriptedFake:
    """Answers ``body(path)`` (404 when None), unless a scripted fault comes first."""

    def __init__(self) -> None:
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def body(self, path: str) -> Any:
        raise NotImplementedError

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
        body = self.body(path)
        if body is None:
            return 404, {}, b'{"message":"Not Found"}', stall
        return 200, {}, json.dumps(body).encode(), stall


class Sleeps:
    """A client's ``sleep``: records the waits it was asked for, waits for none."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


class Answers(Protocol):
    headers_seen: list[dict[str, str]]

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]: ...


@contextmanager
def serve(fake: Answers) -> Iterator[str]:
    """Run ``fake`` (anything that answers a path) on a loopback port; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            fake.headers_seen.append(dict(self.headers))
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
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
