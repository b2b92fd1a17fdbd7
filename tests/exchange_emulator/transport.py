"""Point an unmodified sync ccxt exchange at the emulator without touching its URLs.

ccxt picks Binance's error table (spot / linear / inverse) from the *URL prefix*
(``binance.get_exceptions_by_url``), so rewriting ``exchange.urls`` to ``http://127.0.0.1``
silently changes how errors map (-4116 would become ``ExchangeError`` instead of
``InvalidOrder``). Instead the URLs stay real (``https://fapi.binance.com``,
``https://demo-fapi.binance.com``...) and a ``requests`` transport adapter mounted on
``exchange.session`` rewrites scheme and host just before the bytes leave. The original host
travels in a header so tests can assert which environment (live or demo) was addressed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError

from tests.exchange_emulator.server import ORIGINAL_HOST_HEADER, BinanceEmulator

BINANCE_HOSTS = frozenset({
    "api.binance.com", "fapi.binance.com", "demo-api.binance.com", "demo-fapi.binance.com",
    "testnet.binance.vision",
})


class RerouteAdapter(HTTPAdapter):
    """Sends every request for ``hosts`` to ``target`` (``http://127.0.0.1:port``).

    A request for any other host is refused instead of reaching the network, so a test can
    never talk to a real venue by accident. Proxies are dropped for the same reason.
    """

    def __init__(self, target: str, hosts: Collection[str] = BINANCE_HOSTS) -> None:
        super().__init__()
        self._target = urlsplit(target)
        self._hosts = frozenset(hosts)

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(request.url or "")
        if parts.hostname not in self._hosts:
            raise RequestsConnectionError(f"emulator transport refuses host {parts.hostname!r}",
                                          request=request)
        request.url = urlunsplit((self._target.scheme, self._target.netloc, parts.path,
                                  parts.query, parts.fragment))
        request.headers[ORIGINAL_HOST_HEADER] = parts.netloc
        kwargs["proxies"] = {}
        return super().send(request, *args, **kwargs)


def route_to(exchange: Any, emulator: BinanceEmulator,
             hosts: Collection[str] = BINANCE_HOSTS) -> Any:
    """Mount the reroute on ``exchange.session`` for both schemes; returns the exchange."""
    adapter = RerouteAdapter(emulator.base_url, hosts)
    exchange.session.mount("https://", adapter)
    exchange.session.mount("http://", adapter)
    return exchange
