"""What differs between venues behind ccxt: paper modes, stop orders, lookups, funding, ids.

Each ``Venue`` holds the few decisions ccxt's unified API leaves to the caller (see
``docs/exchanges.md``). Methods here make raw ccxt calls and return raw ccxt structures;
retries and error translation stay in ``ccxt_calls``/``ccxt_exchange``. Binance is exercised
end to end against the local emulator; Bybit and OKX follow ccxt 4.5.90's documented params
and are checked only by request-building tests (no venue round-trip yet).
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

    def options(self, kind: MarketKind) -> dict[str, Any]:
        """ccxt ``options``. ``maxRetriesOnFailure=0``: ccxt's own retry would resend an
        order with the same id blindly; the adapter decides about retries itself."""
        return {"defaultType": "spot" if kind is MarketKind.SPOT else "swap",
                "maxRetriesOnFailure": 0}

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        raise NotImplementedError

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

    def set_margin_mode(self, exchange: Any, symbol: str, mode: str) -> None:
        exchange.set_margin_mode(mode, symbol)

    def set_leverage(self, exchange: Any, symbol: str, leverage: Decimal, mode: str) -> None:
        exchange.set_leverage(leverage_arg(leverage), symbol)

    def perp_wallet(self, balance: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """(free, total) quote in the perp wallet, total *excluding* unrealised PnL."""
        entry = balance.get(QUOTE) or {}
        return dec(entry.get("free")), dec(entry.get("total"))

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, ccxt.DuplicateOrderId) or any(
            m in str(exc) for m in self.duplicate_markers)

    def is_already_set(self, exc: BaseException) -> bool:
        return isinstance(exc, ccxt.NoChange) or any(
            m in str(exc) for m in self.already_set_markers)


class Binance(Venue):
    """Binance spot (``binance``) and USD-M perps (``binanceusdm``): separate wallets."""

    name = "binance"
    spot_class = "binance"
    perp_class = "binanceusdm"
    unified_wallet = False
    whole_leverage = True
    # fundingInfo lists only symbols whose interval was changed; the rest settle every 8h.
    default_funding_hours = 8.0
    # -4116 (USD-M) and -2010 "Duplicate order sent." (spot) are documented; -20132 is the
    # algo-order code in Binance's portfolio-margin table, kept in case USD-M algo uses it.
    duplicate_markers = ("-4116", "Duplicate order sent", "-20132", "algo id is duplicated")
    already_set_markers = ("-4046", "No need to change")
    client_id_pattern = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

    def options(self, kind: MarketKind) -> dict[str, Any]:
        opts = super().options(kind)
        opts.update({
            # fetchCurrencies/fetchMargins are signed sapi calls demo and testnet lack
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchMarkets": {"types": ["spot" if kind is MarketKind.SPOT else "linear"]},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            # a skewed clock gives -1021 (InvalidNonce): an order refused for a fixable reason
            "adjustForTimeDifference": True,
        })
        return opts

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        if mode == "demo":
            exchange.enable_demo_trading(True)
        elif mode == "testnet":
            if kind is MarketKind.PERP:
                raise ValueError("binance: the USD-M futures testnet no longer takes private "
                                 "calls through ccxt; use mode='demo' with keys from "
                                 "demo.binance.com")
            exchange.set_sandbox_mode(True)

    def stop_params(self, intent: OrderIntent, trigger: str) -> dict[str, Any]:
        """Routed by ccxt to ``POST /fapi/v1/algoOrder`` (Binance moved conditional orders
        to the Algo API on 2025-12-09). Mark price triggers, so one wick of the last traded
        price cannot fire the stop."""
        return {"triggerPrice": trigger, "reduceOnly": True, "workingType": "MARK_PRICE"}

    def find_order(self, exchange: Any, symbol: str, wire_id: str,
                   trigger: bool) -> dict[str, Any] | None:
        params: dict[str, Any] = {"clientOrderId": wire_id}
        if trigger:
            params["trigger"] = True  # GET /fapi/v1/algoOrder?clientAlgoId=
        try:
            return dict(exchange.fetch_order(None, symbol, params))
        except ccxt.OrderNotFound:
            return None

    def open_orders(self, exchange: Any, symbols: list[str],
                    trigger: bool) -> list[dict[str, Any]]:
        """One unfiltered call (weight 40) instead of one per symbol."""
        params = {"trigger": True} if trigger else {}
        wanted = set(symbols)
        return [o for o in exchange.fetch_open_orders(None, None, None, params)
                if o.get("symbol") in wanted]

    def triggered_child(self, exchange: Any, raw: dict[str, Any],
                        symbol: str) -> dict[str, Any] | None:
        child = str((raw.get("info") or {}).get("actualOrderId") or "")
        return dict(exchange.fetch_order(child, symbol)) if child else None

    def funding_intervals(self, exchange: Any, symbols: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for symbol, entry in exchange.fetch_funding_intervals().items():
            hours = hours_from_text(entry.get("interval"))
            if hours:
                out[symbol] = hours
        return out

    def perp_wallet(self, balance: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """ccxt's USDT ``total`` is Binance's marginBalance, which includes unrealised PnL;
        the port wants the wallet (the core adds PnL from positions itself)."""
        for asset in (balance.get("info") or {}).get("assets", []):
            if asset.get("asset") == QUOTE:
                return dec(asset.get("availableBalance")), dec(asset.get("walletBalance"))
        return super().perp_wallet(balance)


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


VENUES: dict[str, type[Venue]] = {"binance": Binance, "bybit": Bybit, "okx": Okx}


def venue_for(name: str) -> Venue:
    try:
        return VENUES[name]()
    except KeyError:
        raise ValueError(f"unsupported venue {name!r}; choose one of {sorted(VENUES)}") from None


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
