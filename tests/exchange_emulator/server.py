"""A local Binance (spot ``/api/v3`` + USD-M ``/fapi``) REST server for offline tests.

Unmodified ccxt talks to it through ``route_to`` (see ``transport.py``), so requests are signed,
sent over real HTTP and parsed exactly as in production. The server checks the API key header,
the HMAC-SHA256 signature and the timestamp, keeps the account in a ``Book`` and records every
request. Faults are injected from Python (never over HTTP) with the ``inject_*`` methods; each
fault matches an optional method/path and fires ``times`` times.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.exchange_emulator.book import Book, Instrument, VenueError
from tests.exchange_emulator.http_base import (
    RESET,
    EmulatorServer,
    Reply,
    fault_matches,
    json_reply,
)
from tests.exchange_emulator.routes import ROUTES, Route

ORIGINAL_HOST_HEADER = "X-Emulator-Original-Host"
MARKET_CLOCK = frozenset({"/api/v3/time", "/fapi/v1/time", "/api/v3/ping", "/fapi/v1/ping"})
"""Public routes a stale market feed leaves alone (``freeze_market_data``)."""
DEFAULT_INSTRUMENTS = (
    ("BTC", "60000", "0.1", "0.00001", "0.001", "100"),
    ("ETH", "3000", "0.01", "0.0001", "0.001", "20"),
    ("SOL", "150", "0.01", "0.001", "0.01", "5"),
    ("LINK", "15", "0.001", "0.01", "0.01", "5"),
    ("AAVE", "100", "0.01", "0.001", "0.1", "5"),
    ("UNI", "8", "0.0001", "0.01", "1", "5"),
    ("ARB", "0.8", "0.0001", "0.1", "0.1", "5"),
)


def default_instruments() -> list[Instrument]:
    """Seven USDT markets with Binance-like steps (base, price, tick, spot step, perp step,
    perp notional floor). SOL settles funding every 4h and ARB every hour, the rest 8h."""
    out = []
    for base, price, tick, spot_step, perp_step, floor in DEFAULT_INSTRUMENTS:
        out.append(Instrument(base, Decimal(price), Decimal(tick), Decimal(spot_step),
                              Decimal(perp_step), Decimal("5"), Decimal(floor)))
    out[2].funding_interval_hours, out[6].funding_interval_hours = 4, 1
    return out


@dataclass
class Recorded:
    """One request as the server saw it (``params`` without ``signature``)."""

    method: str
    path: str
    params: dict[str, str]
    host: str
    api_key: str | None
    at: float
    status: int = 0


@dataclass
class Fault:
    """One injected misbehaviour. ``times=None`` means until ``clear_faults``."""

    kind: str  # latency | rate_limit | status | timeout | accept_then_fail | error | reset
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    seconds: float = 0.0
    retry_after: int = 1
    status: int = 503
    code: int = 0
    msg: str = ""
    body: str | None = None
    after_processing: bool = False
    when: Callable[[dict[str, str]], bool] | None = None

    def matches(self, method: str, path: str, params: dict[str, str]) -> bool:
        return fault_matches(self.method, self.path, self.when, method, path, params)


_Reply = Reply  # the name tests already import


class BinanceEmulator(EmulatorServer[Fault, Recorded]):
    """The venue. Use as a context manager or call ``start``/``stop``.

    ``duplicate_scope="open"`` copies Binance (a client id must be unique among *open*
    orders only, so a filled market order does not block a resend of its id); ``"all"``
    makes every id single-use.
    """

    thread_name = "binance-emulator"

    def __init__(self, api_key: str = "emu-key", api_secret: str = "emu-secret",
                 instruments: Iterable[Instrument] | None = None,
                 spot_balances: dict[str, Decimal] | None = None,
                 futures_wallet: Decimal = Decimal("10000"),
                 duplicate_scope: str = "open") -> None:
        super().__init__()
        self.api_key, self._secret = api_key, api_secret.encode()
        self.book = Book(list(instruments or default_instruments()),
                         spot_balances or {"USDT": Decimal("10000")}, futures_wallet,
                         duplicate_scope)
        self._frozen: tuple[Book, int] | None = None

    # -- market and account control ------------------------------------------------------------
    def set_price(self, symbol: str, price: Decimal | str | float) -> list[int]:
        """Move a market (``"SOL"`` or ``"SOLUSDT"``); returns the algo ids it triggered."""
        sym = symbol if symbol.endswith("USDT") else f"{symbol}USDT"
        with self._lock:
            return [a.algo_id for a in self.book.set_price(sym, Decimal(str(price)))]

    def settle_funding(self, symbol: str) -> Decimal:
        sym = symbol if symbol.endswith("USDT") else f"{symbol}USDT"
        with self._lock:
            return self.book.settle_funding(sym)

    # -- faults ------------------------------------------------------------------------------
    def inject_latency(self, seconds: float, path: str | None = None,
                       method: str | None = None, times: int | None = None) -> Fault:
        return self.inject(Fault("latency", method, path, times, seconds=seconds))

    def inject_rate_limit(self, times: int = 1, retry_after: int = 1, path: str | None = None,
                          method: str | None = None) -> Fault:
        """HTTP 429 with ``Retry-After`` and Binance's -1003 body; nothing is processed."""
        return self.inject(Fault("rate_limit", method, path, times, retry_after=retry_after))

    def inject_status(self, status: int = 500, times: int | None = 1, path: str | None = None,
                      method: str | None = None, body: str | None = None) -> Fault:
        """A bare 5xx (or any status) before processing: the request had no effect."""
        return self.inject(Fault("status", method, path, times, status=status, body=body))

    def inject_timeout(self, seconds: float, path: str | None = None, method: str | None = None,
                       times: int = 1, after_processing: bool = False) -> Fault:
        """Answer only after ``seconds`` (longer than the client timeout). With
        ``after_processing`` the request takes effect first, like a lost response."""
        return self.inject(Fault("timeout", method, path, times, seconds=seconds,
                                 after_processing=after_processing))

    def inject_accept_then_fail(self, path: str, method: str = "POST", status: int = 503,
                                times: int = 1, body: str | None = None) -> Fault:
        """Process the request (the order exists) and then answer ``status``."""
        return self.inject(Fault("accept_then_fail", method, path, times, status=status,
                                 body=body))

    def inject_error(self, code: int, msg: str, path: str | None = None,
                     method: str | None = None, status: int = 400, times: int = 1,
                     when: Callable[[dict[str, str]], bool] | None = None) -> Fault:
        """Refuse with a Binance error code, e.g. -4116, -2019, -2022, -4164."""
        return self.inject(Fault("error", method, path, times, status=status, code=code,
                                 msg=msg, when=when))

    def inject_echo(self, status: int = 400, path: str | None = None,
                    method: str | None = None, times: int | None = 1, code: int = -1100,
                    html: bool = False,
                    when: Callable[[dict[str, str]], bool] | None = None) -> Fault:
        """Refuse with an error body that echoes the request back, as some gateways and
        WAFs do: the query string and form body (signature included) and the API-key
        header. JSON with Binance's ``code`` (``html=False``) or an HTML error page."""
        return self.inject(Fault("echo", method, path, times, status=status, code=code,
                                 body="html" if html else None, when=when))

    def inject_reset(self, path: str | None = None, method: str | None = None,
                     times: int | None = 1, after_processing: bool = False) -> Fault:
        """Reset the connection instead of answering (a TCP RST, no status line). With
        ``after_processing`` the request takes effect first: an order exists that the client
        never hears of."""
        return self.inject(Fault("reset", method, path, times,
                                 after_processing=after_processing))

    # -- stale market data ---------------------------------------------------------------------
    def freeze_market_data(self, lag_seconds: float = 0.0) -> None:
        """From now on the public market routes (tickers, klines, premium index, exchange
        info) answer from a copy of the instruments as they are now, with timestamps
        ``lag_seconds`` old (the newest candle then closes that long ago), while the account
        (fills, stops at the mark) goes on at the live prices: a stale feed. Server time is
        never lagged. ``thaw_market_data`` ends it."""
        with self._lock:
            frozen = copy.copy(self.book)
            frozen.instruments = {s: copy.copy(i) for s, i in self.book.instruments.items()}
            self._frozen = (frozen, int(lag_seconds * 1000))

    def thaw_market_data(self) -> None:
        with self._lock:
            self._frozen = None

    # -- request handling ----------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        query, text = parts.query, body.decode()
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(text, keep_blank_values=True))
        signature = params.pop("signature", None)
        host = headers.get(ORIGINAL_HOST_HEADER) or headers.get("Host", "")
        record = Recorded(method, parts.path, params, host,
                          headers.get("X-MBX-APIKEY"), time.time())
        self._record(record)
        reply = self._respond(method, parts.path, params, headers, query, text, signature)
        record.status = reply.status
        return reply

    def response_headers(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(len(self.requests))}

    def _respond(self, method: str, path: str, params: dict[str, str], headers: Any,
                 query: str, text: str, signature: str | None) -> _Reply:
        fault = self._take_fault(method, path, params)
        if fault is not None and fault.kind == "latency":
            self._stopping.wait(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "rate_limit":
            return _json(429, {"code": -1003, "msg": "Too many requests; current limit of IP is "
                               "2400 requests per minute. Please use the websocket for live "
                               "updates to avoid polling the API."},
                         {"Retry-After": str(fault.retry_after)})
        if fault is not None and fault.kind == "echo":
            return _echo(fault, method, path, query, text, headers)
        if fault is not None and fault.kind == "status":
            return _Reply(fault.status, (fault.body or "<html>Server Error</html>").encode(),
                          {"Content-Type": "text/html"})
        if fault is not None and fault.kind == "timeout" and not fault.after_processing:
            self._stopping.wait(fault.seconds)
            return _Reply(504, b"<html>Gateway Timeout</html>", {"Content-Type": "text/html"})
        if fault is not None and fault.kind == "reset" and not fault.after_processing:
            return _Reply(RESET, b"")
        route = ROUTES.get((method, path))
        if route is None:
            return _json(404, {"code": -1, "msg": f"emulator: no route {method} {path}"})
        try:
            if route.signed:
                self._authenticate(headers, query, text, signature, params)
            if fault is not None and fault.kind == "error":
                raise VenueError(fault.code, fault.msg, fault.status)
            with self._lock:
                now = self.book.clock()
                frozen = self._frozen
                if frozen is not None and not route.signed and path not in MARKET_CLOCK:
                    data = route.handler(frozen[0], params, now - frozen[1])
                else:
                    data = route.handler(self.book, params, now)
        except VenueError as exc:
            return _json(exc.status, {"code": exc.code, "msg": exc.msg})
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "reset":
            return _Reply(RESET, b"")
        if fault is not None and fault.kind == "accept_then_fail":
            return _Reply(fault.status,
                          (fault.body or "<html>503 Service Unavailable</html>").encode(),
                          {"Content-Type": "text/html"})
        return _json(200, data)

    def _authenticate(self, headers: Any, query: str, text: str, signature: str | None,
                      params: dict[str, str]) -> None:
        key = headers.get("X-MBX-APIKEY")
        if not key:
            raise VenueError(-2014, "API-key format invalid.", 401)
        if key != self.api_key:
            raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload = _strip_signature(query) + _strip_signature(text)
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(expected, signature):
            raise VenueError(-1022, "Signature for this request is not valid.")
        stamp = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        now = self.book.clock()
        if stamp > now + 1000 or now - stamp > window:
            raise VenueError(-1021, "Timestamp for this request is outside of the recvWindow.")


def _echo(fault: Fault, method: str, path: str, query: str, text: str,
          headers: Any) -> _Reply:
    """The request as a careless gateway echoes it (``inject_echo``)."""
    seen = (f"{method} {path}?{query} body={text} "
            f"X-MBX-APIKEY={headers.get('X-MBX-APIKEY')}")
    if fault.body == "html":
        return _Reply(fault.status, f"<html><body><h1>Bad Gateway</h1><pre>{seen}</pre>"
                      "</body></html>".encode(), {"Content-Type": "text/html"})
    return _json(fault.status, {"code": fault.code, "msg": f"Illegal request: {seen}"})


def _strip_signature(raw: str) -> str:
    """``a=1&b=2&signature=ff`` -> ``a=1&b=2`` (ccxt appends the signature last)."""
    marker = raw.find("signature=")
    if marker < 0:
        return raw
    return raw[:marker].rstrip("&")


_json = json_reply


__all__ = ["BinanceEmulator", "Fault", "Recorded", "Route", "default_instruments"]
