"""OKX v5: demo is the live host plus a header, swaps trade in contracts."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from bot.domain.models import MarketKind, OrderIntent
from bot.exchange.venues.base import Mode, Venue, leverage_arg


class Okx(Venue):
    """OKX: demo trading is the live host plus ``x-simulated-trading: 1`` (set_sandbox_mode),
    with API keys created in demo mode. Swap amounts are contracts (``contractSize``)."""

    name = "okx"
    spot_class = "okx"
    perp_class = "okx"
    duplicate_markers = ("51016", "Duplicated clOrdId")
    already_set_markers = ("59107",)
    client_id_pattern = re.compile(r"^[A-Za-z0-9]{1,32}$")

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        if mode in ("testnet", "demo"):
            exchange.set_sandbox_mode(True)

    def wire_client_id(self, client_id: str) -> str:
        """clOrdId allows letters and digits only (<= 32): drop everything else."""
        return re.sub(r"[^A-Za-z0-9]", "", client_id)[:32]

    def order_params(self, intent: OrderIntent, margin_mode: str) -> dict[str, Any]:
        params = super().order_params(intent, margin_mode)
        if intent.market is MarketKind.PERP:
            params["marginMode"] = margin_mode  # -> tdMode
        return params

    def stop_params(self, intent: OrderIntent, trigger: str) -> dict[str, Any]:
        """-> ``POST /api/v5/trade/order-algo`` with ``ordType=conditional``."""
        return {"stopLossPrice": trigger, "reduceOnly": True}

    def set_margin_mode(self, exchange: Any, symbol: str, mode: str) -> None:
        """OKX has no per-symbol margin-mode switch: the mode travels with every order
        (``tdMode``) and with ``set_leverage``."""

    def set_leverage(self, exchange: Any, symbol: str, leverage: Decimal, mode: str) -> None:
        exchange.set_leverage(leverage_arg(leverage), symbol, {"marginMode": mode})
