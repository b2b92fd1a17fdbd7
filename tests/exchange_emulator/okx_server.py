"""A local OKX v5 REST server for offline tests (one unified trading account, net mode).

Unmodified ccxt talks to it through ``route_to(exchange, emu, hosts=OKX_HOSTS)``: requests are
signed, sent over real HTTP and parsed exactly as in production. The server checks
OK-ACCESS-KEY / -SIGN (base64 HMAC-SHA256 of timestamp + method + request path + body) /
-TIMESTAMP / -PASSPHRASE, and, like OKX, refuses a demo key without the
``x-simulated-trading: 1`` header (and a live key with it). It keeps the account in an
``OkxBook`` and records every request. Faults are injected from Python with ``inject_*``;
``Fault`` is the Binance emulator's, with OKX's error codes (strings) as ints.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.exchange_emulator.http_base import EmulatorServer, Reply, json_reply
from tests.exchange_emulator.okx_book import OkxBook
from tests.exchange_emulator.okx_routes import OKX_ROUTES, ItemsFailed
from tests.exchange_emulator.okx_types import OkxError, OkxInstrument
from tests.exchange_emulator.server import ORIGINAL_HOST_HEADER, Fault

OKX_HOSTS = frozenset({"www.okx.com", "aws.okx.com"})
TIMESTAMP_WINDOW_MS = 30_000
SIMULATED = "x-simulated-trading"


def default_okx_instruments() -> list[OkxInstrument]:
    """OKX-like steps. Swap contract values differ (BTC 0.01, ETH 0.1, SOL 1, DOGE 1000) so
    contract conversion matters; SOL settles funding every 4h, DOGE hourly, the rest 8h.
    LUNA is listed but suspended."""
    d = Decimal
    return [
        OkxInstrument("BTC", d(60000), d("0.1"), d("0.00000001"), d("0.00001"), d("0.01")),
        OkxInstrument("ETH", d(3000), d("0.01"), d("0.000001"), d("0.0001"), d("0.1")),
        OkxInstrument("SOL", d(150), d("0.01"), d("0.000001"), d("0.01"), d(1),
                      funding_hours=4),
        OkxInstrument("LINK", d(15), d("0.001"), d("0.0001"), d("0.1"), d(1), d("0.1"),
                      d("0.1")),
        OkxInstrument("DOGE", d("0.1"), d("0.00001"), d("0.0001"), d(10), d(1000),
                      funding_hours=1, funding_rate=d("0.00005")),
        OkxInstrument("AAVE", d(100), d("0.01"), d("0.0001"), d("0.01"), d("0.1"),
                      swap=False),
        OkxInstrument("LUNA", d("0.5"), d("0.0001"), d("0.01"), d(1), d(1), state="suspend"),
    ]


@dataclass
class OkxRecorded:
    """One request as the server saw it. ``params``: query plus body (the first item of a
    batch body), as strings; ``body``: the parsed JSON body."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    host: str
    api_key: str | None
    simulated: str | None
    at: float
    status: int = 0
    code: str = ""


_Reply = Reply
_json = json_reply


def _html(status: int, body: str | None) -> _Reply:
    return _Reply(status, (body or f"<html>{status} Service Unavailable</html>").encode(),
                  {"Content-Type": "text/html"})


class OkxEmulator(EmulatorServer[Fault, OkxRecorded]):
    """The venue. Use as a context manager or call ``start``/``stop``. ``demo=True`` holds
    demo-trading keys (every signed request needs ``x-simulated-trading: 1``)."""

    thread_name = "okx-emulator"

    def __init__(self, api_key: str = "okx-key", api_secret: str = "okx-secret",
                 passphrase: str = "okx-pass", instruments: Iterable[OkxInstrument] | None = None,
                 balances: dict[str, Decimal] | None = None, demo: bool = True,
                 duplicate_scope: str = "open") -> None:
        super().__init__()
        self.api_key, self._secret, self._passphrase = api_key, api_secret.encode(), passphrase
        self.demo = demo
        self.book = OkxBook(list(instruments or default_okx_instruments()),
                            balances or {"USDT": Decimal(10000)}, duplicate_scope)

    # -- market and account control ------------------------------------------------------------
    def set_price(self, token: str, price: Decimal | str | float) -> list[str]:
        """Move a market (``"SOL"``); returns the ids of the algo orders it triggered."""
        with self._lock:
            return [a.algo_id for a in self.book.set_price(token, Decimal(str(price)))]

    def settle_funding(self, token: str) -> Decimal:
        with self._lock:
            return self.book.settle_funding(token)

    # -- faults ------------------------------------------------------------------------------
    def inject_rate_limit(self, times: int = 1, path: str | None = None,
                          method: str | None = None) -> Fault:
        """HTTP 429 with OKX's 50011 body (no Retry-After); nothing is processed."""
        return self.inject(Fault("rate_limit", method, path, times))

    def inject_status(self, status: int = 500, times: int | None = 1, path: str | None = None,
                      method: str | None = None, body: str | None = None) -> Fault:
        """A bare 5xx before processing: the request had no effect."""
        return self.inject(Fault("status", method, path, times, status=status, body=body))

    def inject_timeout(self, seconds: float, path: str | None = None, method: str | None = None,
                       times: int = 1, after_processing: bool = False) -> Fault:
        return self.inject(Fault("timeout", method, path, times, seconds=seconds,
                                 after_processing=after_processing))

    def inject_accept_then_fail(self, path: str, method: str = "POST", status: int = 503,
                                times: int = 1, body: str | None = None) -> Fault:
        """Process the request (the order exists) and then answer ``status``."""
        return self.inject(Fault("accept_then_fail", method, path, times, status=status,
                                 body=body))

    def inject_error(self, code: str, msg: str, path: str | None = None,
                     method: str | None = None, status: int = 200, times: int = 1) -> Fault:
        """Refuse the whole request with an OKX code, e.g. "50013" (system busy)."""
        return self.inject(Fault("error", method, path, times, status=status, code=int(code),
                                 msg=msg))

    def normalise_path(self, path: str) -> str:
        """``account/config`` reads as ``/api/v5/account/config``."""
        return path if path.startswith("/") else "/api/v5/" + path

    # -- request handling ----------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, raw_body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        text = raw_body.decode()
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        params = dict(query)
        first = body[0] if isinstance(body, list) and body else body
        if isinstance(first, dict):
            params.update({k: v if isinstance(v, str) else json.dumps(v)
                           for k, v in first.items()})
        record = OkxRecorded(method, parts.path, params, body,
                             headers.get(ORIGINAL_HOST_HEADER) or headers.get("Host", ""),
                             headers.get("OK-ACCESS-KEY"), headers.get(SIMULATED), time.time())
        self._record(record)
        reply = self._respond(method, parts.path, raw_path, query, body, text, headers, params)
        record.status = reply.status
        if reply.headers.get("Content-Type") == "application/json":
            record.code = str(json.loads(reply.body).get("code", ""))
        return reply

    def _respond(self, method: str, path: str, raw_path: str, query: dict[str, str],
                 body: Any, text: str, headers: Any, params: dict[str, str]) -> _Reply:
        fault = self._take_fault(method, path, params)
        if fault is not None and fault.kind == "latency":
            self._stopping.wait(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "rate_limit":
            return _json(429, {"code": "50011", "msg": "Too Many Requests", "data": []})
        if fault is not None and fault.kind == "status":
            return _html(fault.status, fault.body)
        if fault is not None and fault.kind == "timeout" and not fault.after_processing:
            self._stopping.wait(fault.seconds)
            return _html(504, "<html>Gateway Timeout</html>")
        route = OKX_ROUTES.get((method, path))
        if route is None:
            return _json(404, {"code": "50000", "msg": f"emulator: no route {method} {path}",
                               "data": []})
        try:
            if route.signed:
                self._authenticate(method, raw_path, text, headers)
            if fault is not None and fault.kind == "error":
                raise OkxError(str(fault.code), fault.msg, fault.status)
            with self._lock:
                data = route.handler(self.book, query, body, self.book.clock())
        except OkxError as exc:
            return _json(exc.status, {"code": exc.code, "msg": exc.msg, "data": []})
        except ItemsFailed as failed:
            return _json(200, {"code": "1", "msg": "All operations failed",
                               "data": failed.items})
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "accept_then_fail":
            return _html(fault.status, fault.body)
        partial = any(isinstance(i, dict) and i.get("sCode", "0") != "0" for i in data)
        return _json(200, {"code": "2" if partial else "0",
                           "msg": "Bulk operation partially succeeded" if partial else "",
                           "data": data})

    def _authenticate(self, method: str, raw_path: str, text: str, headers: Any) -> None:
        key, sign = headers.get("OK-ACCESS-KEY"), headers.get("OK-ACCESS-SIGN")
        stamp, phrase = headers.get("OK-ACCESS-TIMESTAMP"), headers.get("OK-ACCESS-PASSPHRASE")
        if not key:
            raise OkxError("50103", "Request header OK-ACCESS-KEY can not be empty.", 401)
        if not sign:
            raise OkxError("50106", "Request header OK-ACCESS-SIGN can not be empty.", 401)
        if not stamp:
            raise OkxError("50107", "Request header OK-ACCESS-TIMESTAMP can not be empty.", 401)
        if not phrase:
            raise OkxError("50104", "Request header OK-ACCESS-PASSPHRASE can not be empty.",
                           401)
        if key != self.api_key:
            raise OkxError("50111", "Invalid OK-ACCESS-KEY.", 401)
        if (headers.get(SIMULATED) == "1") != self.demo:
            raise OkxError("50101", "APIKey does not match current environment.", 401)
        if not hmac.compare_digest(phrase, self._passphrase):
            raise OkxError("50105", "Request header OK-ACCESS-PASSPHRASE incorrect.", 401)
        try:
            sent = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            raise OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401) from None
        if abs(self.book.clock() - sent) > TIMESTAMP_WINDOW_MS:
            raise OkxError("50102", "Timestamp request expired.", 401)
        prehash = f"{stamp}{method}{raw_path}{text}".encode()
        expected = base64.b64encode(hmac.new(self._secret, prehash, hashlib.sha256).digest())
        if not hmac.compare_digest(expected.decode(), sign):
            raise OkxError("50113", "Invalid Sign.", 401)


__all__ = ["OKX_HOSTS", "Fault", "OkxEmulator", "OkxRecorded", "default_okx_instruments"]
