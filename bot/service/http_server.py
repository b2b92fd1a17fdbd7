"""The monitoring endpoint of a service daemon: ``/healthz``, ``/livez``, ``/metrics``, ``/``.

The standard library's ``ThreadingHTTPServer`` on a daemon thread: four read-only routes
need no framework, and prometheus-client's own server would serve ``/metrics`` only. Nothing
here may hold up or break trading: requests read the health snapshot and the metrics
registry (never the venue, never the daemon's trading lock) and the dashboard reads the
store read-only; a port already in use is logged (``http.bind_failed``) and the daemon trades
without the endpoint. It starts only after the daemon took its store's owner lock (the
daemon object exists), so a refused second daemon never binds.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from bot.config import HttpSettings, Settings
from bot.service.dashboard import DashboardSource
from bot.service.health import health_report, liveness_report
from bot.service.telemetry import Telemetry

REQUEST_TIMEOUT_SECONDS = 10.0
"""A client that sends nothing for this long loses its thread (no slow client keeps one)."""
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


MAX_CONNECTIONS = 16
"""Connections served at once; more are closed unanswered. A thread per connection without a
cap lets a flood of idle connections use up the threads the daemon's own jobs start."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], telemetry: Telemetry,
                 page: Callable[[], str], log: Any) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.telemetry = telemetry
        self.page = page
        self.log = log
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: the client retries, trading goes on
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_SECONDS
    server_version = "sectorbot"
    sys_version = ""

    def do_GET(self) -> None:  # the stdlib's name
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a scrape every 15 s must not fill the daemon's log (it is a contract)."""

    def _answer(self, head: bool) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                healthy, body = health_report(self.server.telemetry.health.facts())
                self._send(200 if healthy else 503, "application/json",
                           json.dumps(body, sort_keys=True).encode(), head)
            elif path == "/livez":
                alive, body = liveness_report(self.server.telemetry.health.facts())
                self._send(200 if alive else 503, "application/json",
                           json.dumps(body, sort_keys=True).encode(), head)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, self.server.telemetry.metrics.render(),
                           head)
            elif path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", self.server.page().encode(), head,
                           policy=PAGE_POLICY)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n", head)
        except Exception as exc:  # the daemon's thread is not ours: answer, never raise
            self.server.log.warning("http.request_failed", path=path[:100],
                                    error_type=type(exc).__name__, error=str(exc))
            self._send(500, "text/plain; charset=utf-8",
                       f"internal error ({type(exc).__name__}); see the daemon's log\n"
                       .encode(), head)

    def _send(self, code: int, content_type: str, body: bytes, head: bool,
              policy: str | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if policy:
            self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class MonitoringServer:
    """A bound server serving on its own daemon thread until :meth:`close`."""

    def __init__(self, server: _Server, dashboard: DashboardSource | None = None) -> None:
        self._server = server
        self._dashboard = dashboard
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.25},
                                        name="sectorbot-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
        if self._dashboard is not None:
            self._dashboard.close()


def start_monitoring(settings: Settings, telemetry: Telemetry, log: Any,
                     page: Callable[[], str] | None = None) -> MonitoringServer | None:
    """Bind and serve; None (after ``http.bind_failed``) when the address cannot be bound."""
    http: HttpSettings = settings.http
    dashboard: DashboardSource | None = None
    if page is None:
        dashboard = DashboardSource(settings)
        page = dashboard.page
    try:
        server = _Server((http.host, http.port), telemetry, page, log)
    except (OSError, OverflowError) as exc:
        log.error("http.bind_failed", host=http.host, port=http.port, error=str(exc),
                  action="trading goes on without /healthz, /metrics and the dashboard")
        return None
    monitor = MonitoringServer(server, dashboard)
    log.info("http.listening", host=http.host, port=monitor.port,
             endpoints=["/healthz", "/livez", "/metrics", "/"])
    return monitor


def run_monitored(daemon: Any, telemetry: Telemetry, settings: Settings, log: Any) -> int:
    """``daemon.run_forever()`` with the endpoint up around it; the daemon's exit status."""
    monitor = start_monitoring(settings, telemetry, log)
    try:
        return int(daemon.run_forever())
    finally:
        if monitor is not None:
            monitor.close()


def probe(http: HttpSettings, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """``sectorbot healthcheck``: GET /healthz of the daemon this config describes.
    (status code, body); code 0 when nothing answered. A wildcard host is probed on
    loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(http.host, http.host)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{http.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            return int(exc.code), json.loads(exc.read())
        except ValueError:
            return int(exc.code), {}
    except (OSError, ValueError) as exc:
        return 0, {"status": "unreachable", "reasons": [f"{url}: {exc}"]}
