"""Bybit v5 unified account: one wallet, conditional stops with ``triggerDirection``."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MarketKind, OrderIntent
from bot.exchange.venues.base import Mode, Venue


class Bybit(Venue):
    """Bybit v5 unified account. Testnet and demo are different environments with
    different API keys (a demo key on testnet gives 10003 'API key is invalid')."""

    name = "bybit"
    spot_class = "bybit"
    perp_class = "bybit"
    duplicate_markers = ("110072", "110030", "170141", "OrderLinkedID is duplicate")
    already_set_markers = ("110043", "110026", "110025")

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        if mode == "testnet":
            exchange.set_sandbox_mode(True)
        elif mode == "demo":
            exchange.enable_demo_trading(True)

    def stop_params(self, intent: OrderIntent, trigger: str) -> dict[str, Any]:
        """A conditional order needs ``triggerDirection``; ccxt derives it from
        ``stopLossPrice`` and the side, and a bare ``triggerPrice`` would be refused."""
        return {"stopLossPrice": trigger, "reduceOnly": True, "triggerBy": "MarkPrice"}

    def funding_intervals(self, exchange: Any, symbols: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for symbol in symbols:
            minutes = ((exchange.markets or {}).get(symbol, {}).get("info") or {}).get(
                "fundingInterval")
            if minutes:
                out[symbol] = float(minutes) / 60
        return out

    def set_margin_mode(self, exchange: Any, symbol: str, mode: str) -> None:
        """On a unified account the margin mode is account-wide (ccxt ignores the symbol)."""
        exchange.set_margin_mode(mode, symbol)
