"""What every venue emulator shares: a loopback HTTP server, a fault queue, a request log.

Each venue (``server.py`` for Binance, ``bybit_server.py``, ``okx_server.py``) subclasses
:class:`EmulatorServer` with its own ``handle`` (signatures, routes, error bodies) and its
own fault and request records; serving, fault matching and the request log live here once.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, Self, TypeVar

RESET = 0
"""A ``Reply`` status that means: answer nothing and reset the connection."""


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(data).encode(),
                 {"Content-Type": "application/json", **(headers or {})})


class FaultLike(Protocol):
    times: int | None

    def matches(self, method: str, path: str, params: dict[str, str]) -> bool: ...


class RequestLike(Protocol):
    method: str
    path: str
    params: dict[str, str]


FaultT = TypeVar("FaultT", bound=FaultLike)
RequestT = TypeVar("RequestT", bound=RequestLike)


def fault_matches(method: str | None, path: str | None,
                  when: Callable[[dict[str, str]], bool] | None,
                  req_method: str, req_path: str, params: dict[str, str]) -> bool:
    """A fault with no method/path/predicate matches every request."""
    return ((method is None or method == req_method) and (path is None or path == req_path)
            and (when is None or when(params)))


class EmulatorServer(Generic[FaultT, RequestT]):
    """Serve ``handle`` on 127.0.0.1 (random port); use as a context manager."""

    thread_name = "venue-emulator"

    def __init__(self) -> None:
        self.requests: list[RequestT] = []
        self._faults: list[FaultT] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- what a venue supplies -----------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Reply:
        raise NotImplementedError

    def response_headers(self) -> dict[str, str]:
        """Headers added to every answer (Binance reports its used request weight)."""
        return {}

    def normalise_path(self, path: str) -> str:
        """How ``requests_for`` reads a path argument (OKX accepts ``account/config``)."""
        return path

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, tls: ssl.SSLContext | None = None) -> Self:
        """Serve plain HTTP, or HTTPS with the server context ``tls`` (see ``tls.py``)."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.emulator = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, name=self.thread_name,
                         kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- faults ------------------------------------------------------------------------------
    def inject(self, fault: FaultT) -> FaultT:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str, params: dict[str, str]) -> FaultT | None:
        """The first matching fault, spending one of its ``times`` (None: until cleared)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, params):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # -- request log ---------------------------------------------------------------------------
    def requests_for(self, method: str | None = None, path: str | None = None,
                     **params: str) -> list[RequestT]:
        if path is not None:
            path = self.normalise_path(path)
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)
                    and all(r.params.get(k) == v for k, v in params.items())]

    def count(self, method: str | None = None, path: str | None = None, **params: str) -> int:
        return len(self.requests_for(method, path, **params))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, request: RequestT) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        emulator: EmulatorServer[Any, Any] = self.server.emulator  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = emulator.handle(self.command, self.path, self.headers, body)
        if reply.status == RESET:
            # A connection reset: no status line, no body; SO_LINGER 0 makes close() send a
            # TCP RST instead of a FIN (``inject_reset``).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        try:
            self.send_response(reply.status)
            for name, value in {**reply.headers, **emulator.response_headers()}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout): nothing to tell it

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read the emulator's ``requests`` instead."""
