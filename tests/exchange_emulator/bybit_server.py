"""A local Bybit v5 REST server (unified account: spot + USDT linear perps) for offline tests.

Unmodified ccxt talks to it through ``route_to(exchange, emulator, hosts=BYBIT_HOSTS)``, so
requests are signed, sent over real HTTP and parsed exactly as in production. The server
checks the v5 headers (``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-RECV-WINDOW``,
``X-BAPI-SIGN`` = HMAC-SHA256 of timestamp + key + recvWindow + query string or JSON body),
keeps the account in a ``BybitBook`` and records every request. Faults are injected from
Python with the ``inject_*`` methods; each matches an optional method/path and fires
``times`` times.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.exchange_emulator.bybit_book import BybitBook
from tests.exchange_emulator.bybit_models import BybitError, BybitInstrument, BybitOrder, text
from tests.exchange_emulator.bybit_routes import ROUTES
from tests.exchange_emulator.http_base import EmulatorServer, Reply, fault_matches
from tests.exchange_emulator.server import ORIGINAL_HOST_HEADER

#: every host ccxt 4.5 uses for Bybit: live, testnet (``set_sandbox_mode``) and demo trading
#: (``enable_demo_trading``), all derived from its ``hostname`` option ``bybit.com``
BYBIT_HOSTS = frozenset({"api.bybit.com", "api-testnet.bybit.com", "api-demo.bybit.com"})
# base, price, tick, spot step, spot min qty, perp step, perp min qty, perp min notional,
# funding interval (minutes)
DEFAULT_INSTRUMENTS = (
    ("BTC", "60000", "0.1", "0.000001", "0.000048", "0.001", "0.001", "5", 480),
    ("ETH", "3000", "0.01", "0.00001", "0.00062", "0.01", "0.01", "5", 480),
    ("SOL", "150", "0.01", "0.001", "0.001", "0.1", "0.1", "5", 240),
    ("LINK", "15", "0.001", "0.01", "0.01", "0.1", "0.1", "5", 480),
    ("ARB", "0.8", "0.0001", "0.01", "0.01", "0.1", "0.1", "5", 60),
)


def default_bybit_instruments() -> list[BybitInstrument]:
    """Five USDT markets with Bybit-like filters; SOL settles funding every 4h, ARB every
    hour, the rest every 8h. ARB has no spot market (perp only)."""
    out = []
    for base, price, tick, sstep, smin, pstep, pmin, floor, minutes in DEFAULT_INSTRUMENTS:
        out.append(BybitInstrument(base, Decimal(price), Decimal(tick), Decimal(sstep),
                                   Decimal(smin), Decimal("5"), Decimal(pstep), Decimal(pmin),
                                   Decimal(floor), funding_interval_minutes=minutes,
                                   spot=base != "ARB"))
    return out


@dataclass
class BybitRequest:
    """One request as the server saw it; ``params`` are query or JSON fields as text."""

    method: str
    path: str
    params: dict[str, str]
    host: str
    api_key: str | None
    at: float
    status: int = 0
    ret_code: int | None = None


@dataclass
class BybitFault:
    """One injected misbehaviour. ``times=None`` means until ``clear_faults``."""

    kind: str  # rate_limit | ip_limit | status | timeout | accept_then_fail | error
    #           | ack_then_reject
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    seconds: float = 0.0
    status: int = 503
    code: int = 0
    msg: str = ""
    reset_ms: int = 1000
    after_processing: bool = False
    when: Callable[[dict[str, str]], bool] | None = None

    def matches(self, method: str, path: str, params: dict[str, str]) -> bool:
        return fault_matches(self.method, self.path, self.when, method, path, params)


_Reply = Reply


class BybitEmulator(EmulatorServer[BybitFault, BybitRequest]):
    """The venue. Use as a context manager or call ``start``/``stop``.

    ``host_keys`` maps a host to the only API key it accepts, like Bybit's separate
    testnet / demo / live environments (a demo key on testnet gets 10003).
    """

    thread_name = "bybit-emulator"

    def __init__(self, api_key: str = "emu-key", api_secret: str = "emu-secret",
                 instruments: Iterable[BybitInstrument] | None = None,
                 balances: Mapping[str, Decimal | str | int] | None = None,
                 duplicate_scope: str = "all",
                 host_keys: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.api_key, self._secret = api_key, api_secret.encode()
        self.host_keys = dict(host_keys or {})
        self.book = BybitBook(list(instruments or default_bybit_instruments()),
                              {k: Decimal(str(v)) for k, v in
                               (balances or {"USDT": Decimal(10000)}).items()},
                              duplicate_scope)

    # -- market and account control ------------------------------------------------------------
    def set_price(self, token: str, price: Decimal | str | float) -> list[BybitOrder]:
        """Move a market (``"SOL"`` or ``"SOLUSDT"``); returns the conditional orders fired."""
        symbol = token if token.endswith("USDT") else f"{token}USDT"
        with self._lock:
            return self.book.set_price(symbol, Decimal(str(price)))

    def settle_funding(self, token: str) -> Decimal:
        symbol = token if token.endswith("USDT") else f"{token}USDT"
        with self._lock:
            return self.book.settle_funding(symbol)

    # -- faults ------------------------------------------------------------------------------
    def inject_rate_limit(self, times: int = 1, reset_ms: int = 1000, path: str | None = None,
                          method: str | None = None, status: int = 200) -> BybitFault:
        """retCode 10006 with ``X-Bapi-Limit-Reset-Timestamp`` ``reset_ms`` ahead; nothing is
        processed. Bybit answers its per-UID API limit this way (HTTP 200)."""
        return self.inject(BybitFault("rate_limit", method, path, times, status=status,
                                      reset_ms=reset_ms))

    def inject_ip_limit(self, times: int = 1, path: str | None = None,
                        method: str | None = None) -> BybitFault:
        """HTTP 403 "access too frequent": Bybit's IP-level limit, before any processing."""
        return self.inject(BybitFault("ip_limit", method, path, times, status=403))

    def inject_status(self, status: int = 503, times: int | None = 1, path: str | None = None,
                      method: str | None = None) -> BybitFault:
        """A bare 5xx (or any status) before processing: the request had no effect."""
        return self.inject(BybitFault("status", method, path, times, status=status))

    def inject_timeout(self, seconds: float, path: str | None = None,
                       method: str | None = None, times: int = 1,
                       after_processing: bool = False) -> BybitFault:
        return self.inject(BybitFault("timeout", method, path, times, seconds=seconds,
                                      after_processing=after_processing))

    def inject_accept_then_fail(self, path: str, method: str = "POST", status: int = 503,
                                times: int = 1) -> BybitFault:
        """Process the request (the order exists), then answer ``status`` with an HTML page."""
        return self.inject(BybitFault("accept_then_fail", method, path, times, status=status))

    def inject_ack_then_reject(self, path: str = "/v5/order/create", times: int = 1,
                               when: Callable[[dict[str, str]], bool] | None = None
                               ) -> BybitFault:
        """Acknowledge a create with its ids (retCode 0), then reject the order, as Bybit's
        asynchronous checks do after the answer: the order exists only as ``Rejected``."""
        return self.inject(BybitFault("ack_then_reject", "POST", path, times, when=when))

    def inject_error(self, code: int, msg: str, path: str | None = None,
                     method: str | None = None, times: int = 1,
                     when: Callable[[dict[str, str]], bool] | None = None,
                     after_processing: bool = False) -> BybitFault:
        """Answer with a Bybit retCode, e.g. 110007, 10016, 170131: before processing (a
        refusal), or with ``after_processing`` once the request took effect (an internal
        error or server timeout hit after the order was placed)."""
        return self.inject(BybitFault("error", method, path, times, code=code, msg=msg,
                                      when=when, after_processing=after_processing))

    # -- request handling ----------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        payload = body.decode()
        fields: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
        if payload:
            try:
                fields.update(json.loads(payload))
            except ValueError:
                return self._envelope(10001, "params error: body is not JSON", None, 200)
        params = {k: text(fields, k) or "" for k in fields}
        host = headers.get(ORIGINAL_HOST_HEADER) or headers.get("Host", "")
        record = BybitRequest(method, parts.path, params, host,
                              headers.get("X-BAPI-API-KEY"), time.time())
        self._record(record)
        reply, code = self._respond(method, parts.path, fields, params, headers, host,
                                    parts.query, payload)
        record.status, record.ret_code = reply.status, code
        return reply

    def _respond(self, method: str, path: str, fields: dict[str, Any], params: dict[str, str],
                 headers: Any, host: str, query: str, payload: str) -> tuple[_Reply, int | None]:
        fault = self._take_fault(method, path, params)
        now = self.book.clock()
        if fault is not None and fault.kind == "rate_limit":
            limit = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0",
                     "X-Bapi-Limit-Reset-Timestamp": str(now + fault.reset_ms)}
            return self._envelope(10006, "Too many visits. Exceeded the API Rate Limit.",
                                  None, fault.status, limit), 10006
        if fault is not None and fault.kind == "ip_limit":
            return _Reply(403, b"access too frequent", {"Content-Type": "text/plain"}), None
        if fault is not None and fault.kind == "status":
            return _Reply(fault.status, b"<html>Server Error</html>",
                          {"Content-Type": "text/html"}), None
        if fault is not None and fault.kind == "timeout" and not fault.after_processing:
            self._stopping.wait(fault.seconds)
            return _Reply(504, b"<html>Gateway Timeout</html>",
                          {"Content-Type": "text/html"}), None
        route = ROUTES.get((method, path))
        if route is None:
            return self._envelope(10017, f"emulator: route not found: {method} {path}", None,
                                  404), 10017
        try:
            if route.signed:
                self._authenticate(headers, host, method, query, payload, now)
            if fault is not None and fault.kind == "error" and not fault.after_processing:
                raise BybitError(fault.code, fault.msg)
            with self._lock:
                result = route.handler(self.book, fields, now)
            if fault is not None and fault.kind == "error":
                raise BybitError(fault.code, fault.msg)
        except BybitError as exc:
            return self._envelope(exc.code, exc.msg, exc.result, exc.status), exc.code
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "accept_then_fail":
            return _Reply(fault.status, b"<html>503 Service Temporarily Unavailable</html>",
                          {"Content-Type": "text/html"}), None
        if fault is not None and fault.kind == "ack_then_reject" and isinstance(result, dict):
            with self._lock:
                order = self.book.orders.get(str(result.get("orderId")))
                if order is not None and order.cum_qty == 0:
                    order.status, order.updated = "Rejected", now
        return self._envelope(0, "OK", result, 200), 0

    def _envelope(self, code: int, msg: str, result: Any, status: int,
                  headers: dict[str, str] | None = None) -> _Reply:
        data = {"retCode": code, "retMsg": msg, "result": {} if result is None else result,
                "retExtInfo": {}, "time": self.book.clock()}
        return _Reply(status, json.dumps(data).encode(),
                      {"Content-Type": "application/json", **(headers or {})})

    def _authenticate(self, headers: Any, host: str, method: str, query: str, payload: str,
                      now: int) -> None:
        key, stamp = headers.get("X-BAPI-API-KEY"), headers.get("X-BAPI-TIMESTAMP")
        sign, window = headers.get("X-BAPI-SIGN"), headers.get("X-BAPI-RECV-WINDOW") or "5000"
        if not key or not stamp or not sign:
            raise BybitError(10003, "API key is invalid.")
        if key != self.host_keys.get(host.split(":")[0], self.api_key):
            raise BybitError(10003, "API key is invalid.")
        signed = payload if method == "POST" else query
        expected = [hmac.new(self._secret, f"{stamp}{key}{window}{body}".encode(),
                             hashlib.sha256).hexdigest() for body in (signed, unquote(signed))]
        if not any(hmac.compare_digest(e, sign) for e in expected):
            raise BybitError(10004, "error sign! origin_string"
                             f"[{stamp}{key}{window}{signed}]")
        if not (now - int(window) <= int(stamp) < now + 1000):
            raise BybitError(10002, "invalid request, please check your server timestamp or "
                             f"recv_window param. req_timestamp[{stamp}],server_timestamp"
                             f"[{now}],recv_window[{window}]")


__all__ = ["BYBIT_HOSTS", "BybitEmulator", "BybitFault", "BybitRequest",
           "default_bybit_instruments"]
