"""The venue seam: what differs between exchanges behind ccxt, with neutral defaults.

Each ``Venue`` holds the few decisions ccxt's unified API leaves to the caller (see
``docs/exchanges.md``). Methods here make raw ccxt calls and return raw ccxt structures;
retries and error translation stay in ``ccxt_calls``/``ccxt_exchange``. One module per venue
subclass sits beside this one.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import ccxt

from bot.domain.models import QUOTE, MarketKind, OrderIntent

Mode = str  # "testnet" | "demo" | "live"
MODES = ("testnet", "demo", "live")


def hours_from_text(text: object) -> float | None:
    """ccxt's funding ``interval`` strings ('8h', '4h', '60m') as hours."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mhd])", str(text or "").strip())
    if match is None:
        return None
    value = float(match.group(1))
    return {"m": value / 60, "h": value, "d": value * 24}[match.group(2)]


class Venue:
    """Binance-agnostic defaults; subclasses override what their venue does differently."""

    name = "generic"
    spot_class = ""
    perp_class = ""
    #: spot and perps share one wallet (unified account): fetch the balance once
    unified_wallet = True
    #: leverage must be a whole number
    whole_leverage = False
    #: funding interval to assume when the venue does not say (None: never assume)
    default_funding_hours: float | None = None
    #: substrings of an error message that mean "this client id already exists"
    duplicate_markers: tuple[str, ...] = ()
    #: substrings that mean "nothing to change" for margin mode / leverage
    already_set_markers: tuple[str, ...] = ()
    client_id_pattern = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
    #: the create-order answer carries ids only (Bybit v5): read the order back by client id
    create_acks_only = False

    def options(self, kind: MarketKind) -> dict[str, Any]:
        """ccxt ``options``. ``maxRetriesOnFailure=0``: ccxt's own retry would resend an
        order with the same id blindly; the adapter decides about retries itself."""
        return {"defaultType": "spot" if kind is MarketKind.SPOT else "swap",
                "maxRetriesOnFailure": 0}

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        raise NotImplementedError

    def transfer(self, exchange: Any, amount: str, to_futures: bool) -> str:
        """Move USDT between the spot and futures wallets; returns the venue's id. Only
        venues with separate wallets implement it."""
        raise ccxt.NotSupported(f"{self.name}: one wallet serves spot and perps")

    def find_transfer(self, exchange: Any, amount: Decimal, to_futures: bool,
                      since_ms: int) -> str | None:
        """The id of a transfer of ``amount`` in that direction made since ``since_ms``."""
        raise ccxt.NotSupported(f"{self.name}: one wallet serves spot and perps")

    def wire_client_id(self, client_id: str) -> str:
        return client_id

    def order_params(self, intent: OrderIntent, margin_mode: str) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": self.wire_client_id(intent.client_id)}
        if intent.market is MarketKind.PERP and intent.reduce_only:
            params["reduceOnly"] = True
        return params

    def stop_params(self, intent: OrderIntent, trigger: str) -> dict[str, Any]:
        """Params turning a market order into a reduce-only stop-market at ``trigger``."""
        return {"stopLossPrice": trigger, "reduceOnly": True}

    def find_order(self, exchange: Any, symbol: str, wire_id: str,
                   trigger: bool) -> dict[str, Any] | None:
        """Search open then closed orders (venues without a by-client-id query)."""
        params = {"trigger": True} if trigger else {}
        for method in ("fetch_open_orders", "fetch_closed_orders"):
            for order in getattr(exchange, method)(symbol, None, None, dict(params)):
                if order.get("clientOrderId") == wire_id:
                    return dict(order)
        return None

    def open_orders(self, exchange: Any, symbols: list[str],
                    trigger: bool) -> list[dict[str, Any]]:
        params = {"trigger": True} if trigger else {}
        out: list[dict[str, Any]] = []
        for symbol in symbols:
            out += exchange.fetch_open_orders(symbol, None, None, dict(params))
        return out

    def triggered_child(self, exchange: Any, raw: dict[str, Any],
                        symbol: str) -> dict[str, Any] | None:
        """The market order a fired stop became, when the venue keeps them apart."""
        return None

    def funding_intervals(self, exchange: Any, symbols: list[str]) -> dict[str, float]:
        """Known funding intervals in hours per symbol (from market data)."""
        return {}

    def cancel_params(self, trigger: bool) -> dict[str, Any]:
        """ccxt params for cancelling an order; ``trigger``: it is a stop (conditional)."""
        return {"trigger": True} if trigger else {}

    def fetch_positions(self, exchange: Any, symbols: list[str]) -> list[dict[str, Any]]:
        """Raw ccxt positions; entries for other symbols may be included (callers filter)."""
        return list(exchange.fetch_positions(symbols))

    def retry_after(self, headers: Any) -> float | None:
        """Seconds until a rate limit lifts, from a venue-specific header of the refused
        response; None: no such header (the standard ``Retry-After`` is read anyway)."""
        return None

    def set_margin_mode(self, exchange: Any, symbol: str, mode: str) -> None:
        exchange.set_margin_mode(mode, symbol)

    def set_leverage(self, exchange: Any, symbol: str, leverage: Decimal, mode: str) -> None:
        exchange.set_leverage(leverage_arg(leverage), symbol)

    def perp_wallet(self, balance: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """(free, total) quote in the perp wallet, total *excluding* unrealised PnL."""
        entry = balance.get(QUOTE) or {}
        return dec(entry.get("free")), dec(entry.get("total"))

    def withdrawals_enabled(self, exchange: Any, mode: Mode) -> bool | None:
        """Whether the API key may withdraw funds, where the venue tells (one raw ccxt call);
        None: this venue or host does not say. The daemon never withdraws; a trading key
        with that permission only widens what a stolen key can do, so start-up warns."""
        return None

    def key_environment_hint(self, mode: Mode, text: str) -> str | None:
        """What to do when the venue refused the key with ``text`` (its error, scrubbed) in
        ``mode``, if the answer can mean a key made for another environment (testnet, demo,
        live); None: nothing to add."""
        return None

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, ccxt.DuplicateOrderId) or any(
            m in str(exc) for m in self.duplicate_markers)

    def is_already_set(self, exc: BaseException) -> bool:
        return isinstance(exc, ccxt.NoChange) or any(
            m in str(exc) for m in self.already_set_markers)


def dec(value: object) -> Decimal:
    """ccxt numbers (floats, strings, None) as Decimal through ``str``; None -> 0. Trailing
    zeros are dropped (``10.0`` -> ``10``) so amounts read the way the venue printed them."""
    if value is None or value == "":
        return Decimal(0)
    out = Decimal(str(value))
    if not out.is_finite():
        return out
    if out == out.to_integral_value() and out.adjusted() < 20:
        return out.quantize(Decimal(1))
    return out.normalize()


def leverage_arg(leverage: Decimal) -> int | float:
    """ccxt forwards the number as typed: Binance refuses ``3.0`` where it wants ``3``."""
    return int(leverage) if leverage == leverage.to_integral_value() else float(leverage)
