"""Bybit v5 unified trading account: one wallet, conditional stops with ``triggerDirection``.

Exercised end to end against the local emulator (``tests/exchange_emulator/bybit_*``): what
ccxt 4.5 does with Bybit by default that does not fit this bot, and is changed here:

* ``load_markets`` would list every category (spot, linear, inverse and six option chains:
  eleven requests per ccxt instance); each instance now loads its own category only.
* ``create_order`` answers with ``orderId``/``orderLinkId`` only, so the adapter reads the
  order back (``create_acks_only``).
* ``fetch_positions`` refuses more than one symbol; positions are read per settle coin.
* On a unified account ``order/realtime`` returns stops and plain orders together unless
  ``orderFilter`` says which; ``fetch_closed_orders`` only sees *filled* orders (and only the
  newest page of them), so lookups go by ``orderLinkId``: realtime (open, then recently
  closed), then history.
* A 10006 rate-limit answer carries ``X-Bapi-Limit-Reset-Timestamp``, not ``Retry-After``.
* retCodes 10000/5004 (server timeout) and 10016 (internal error) map to ``ExchangeError``,
  i.e. "refused", although the order may exist; they are remapped to network errors.
"""

from __future__ import annotations

import time
from typing import Any

import ccxt

from bot.domain.models import QUOTE, MarketKind, OrderIntent
from bot.exchange.venues.base import Mode, Venue

#: ``order/realtime`` and ``order/history`` return at most 50 orders per page
PAGE = 50
#: retCodes that mean "the server did not finish answering": 10000 "Server Timeout",
#: 5004 "Server Timeout", 10016 "Internal error / service restarting"
UNKNOWN_OUTCOME_CODES: dict[str, type[Exception]] = {
    "10000": ccxt.RequestTimeout,
    "5004": ccxt.RequestTimeout,
    "10016": ccxt.ExchangeNotAvailable,
}


class Bybit(Venue):
    """Bybit v5 unified account. Testnet and demo are different environments with
    different API keys (a demo key on testnet gives 10003 'API key is invalid')."""

    name = "bybit"
    spot_class = "bybit"
    perp_class = "bybit"
    duplicate_markers = ("110072", "110030", "170141", "OrderLinkedID is duplicate")
    already_set_markers = ("110043", "110026", "110025")
    create_acks_only = True

    def options(self, kind: MarketKind) -> dict[str, Any]:
        opts = super().options(kind)
        opts.update({
            "fetchMarkets": {"types": ["spot" if kind is MarketKind.SPOT else "linear"]},
            # the adapter assumes a unified account (one wallet; account-wide margin mode);
            # saying so spares ccxt's detection (user/query-api + account/info, which demo
            # trading does not serve either)
            "enableUnifiedAccount": True,
            "enableUnifiedMargin": False,
            # a skewed clock gives 10002 (InvalidNonce) on every signed call, orders included
            "adjustForTimeDifference": True,
        })
        return opts

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        if mode == "testnet":
            exchange.set_sandbox_mode(True)
        elif mode == "demo":
            exchange.enable_demo_trading(True)
        # currencies are never used; without this every markets load on testnet/live sends
        # a private asset/coin/query-info call (demo trading skips it already)
        exchange.has = {**exchange.has, "fetchCurrencies": False}
        # Bybit's server-side timeouts and internal errors say nothing about whether an order
        # was placed, yet ccxt maps them to plain ExchangeError (10000 is not even listed),
        # which the adapter must read as a definite refusal. As network-class errors they make
        # an order's outcome unknown (looked up by client id) and a read retryable.
        exchange.exceptions["exact"].update(UNKNOWN_OUTCOME_CODES)

    def cancel_params(self, trigger: bool) -> dict[str, Any]:
        """ccxt honours ``trigger`` on Bybit spot only; on linear it forwards it into the
        request body as an unknown field. Stops here are perp-only, and v5 cancels a
        conditional order by its id alone."""
        return {}

    def stop_params(self, intent: OrderIntent, trigger: str) -> dict[str, Any]:
        """A conditional order needs ``triggerDirection``; ccxt derives it from
        ``stopLossPrice`` and the side (a long's sell stop: 2, falling), and a bare
        ``triggerPrice`` would be refused."""
        return {"stopLossPrice": trigger, "reduceOnly": True, "triggerBy": "MarkPrice"}

    def find_order(self, exchange: Any, symbol: str, wire_id: str,
                   trigger: bool) -> dict[str, Any] | None:
        """By ``orderLinkId``: ``order/realtime`` for open orders, then for the recent closed
        ones (``openOnly=1``, real time), then ``order/history`` (which may lag, but still
        has orders realtime forgot after a Bybit restart). Closed means any final state:
        filled, cancelled, rejected, deactivated. ``orderFilter`` keeps stops and plain
        orders apart, as the port asks."""
        params = {"orderLinkId": wire_id, "orderFilter": "StopOrder" if trigger else "Order"}
        for method, extra in (("fetch_open_orders", {}),
                              ("fetch_open_orders", {"openOnly": 1}),
                              ("fetch_canceled_and_closed_orders", {})):
            for order in getattr(exchange, method)(symbol, None, None, {**params, **extra}):
                if order.get("clientOrderId") == wire_id:
                    return dict(order)
        return None

    def open_orders(self, exchange: Any, symbols: list[str],
                    trigger: bool) -> list[dict[str, Any]]:
        """One call per market type (linear goes by ``settleCoin``), following the cursor
        while pages come back full."""
        wanted = set(symbols)
        params: dict[str, Any] = {"orderFilter": "StopOrder" if trigger else "Order",
                                  "limit": PAGE}
        out: list[dict[str, Any]] = []
        while True:
            page = exchange.fetch_open_orders(None, None, None, dict(params))
            out += page
            # ccxt puts the cursor on the first raw entry, then sorts the orders by time
            cursor = next((c for o in page
                           if (c := (o.get("info") or {}).get("nextPageCursor"))), None)
            if len(page) < PAGE or not cursor:
                break
            params["cursor"] = cursor
        return [o for o in out if o.get("symbol") in wanted]

    def fetch_positions(self, exchange: Any, symbols: list[str]) -> list[dict[str, Any]]:
        """ccxt refuses more than one symbol here: every USDT position comes in one call."""
        return list(exchange.fetch_positions(None, {"settleCoin": QUOTE}))

    def funding_intervals(self, exchange: Any, symbols: list[str]) -> dict[str, float]:
        """``fundingInterval`` of the linear instrument info, in minutes."""
        out: dict[str, float] = {}
        for symbol in symbols:
            minutes = ((exchange.markets or {}).get(symbol, {}).get("info") or {}).get(
                "fundingInterval")
            if minutes:
                out[symbol] = float(minutes) / 60
        return out

    def set_margin_mode(self, exchange: Any, symbol: str, mode: str) -> None:
        """On a unified account the margin mode is account-wide (ccxt ignores the symbol and
        sends ``account/set-margin-mode``)."""
        exchange.set_margin_mode(mode, symbol)

    def key_environment_hint(self, mode: Mode, text: str) -> str | None:
        """10003 "API key is invalid" is also Bybit's answer to a key of another
        environment: testnet, demo and live each know only their own keys."""
        if "10003" not in text:
            return None
        where = {"testnet": "testnet.bybit.com", "demo": "the Demo Trading account on bybit.com",
                 "live": "bybit.com (API Management)"}[mode]
        return (f"bybit refused the key in {mode} mode; {mode} needs a key created on {where}: "
                "a key from another environment, a deleted or expired key all get this "
                "answer; fix the key or mode and start again")

    def retry_after(self, headers: Any) -> float | None:
        """``X-Bapi-Limit-Reset-Timestamp``: when the per-key limit resets, in epoch ms."""
        reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
        try:
            return max(0.0, int(reset) / 1000 - time.time()) if reset else None
        except (TypeError, ValueError):
            return None
