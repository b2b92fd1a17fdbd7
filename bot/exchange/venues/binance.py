"""Binance spot and USD-M perps: separate wallets, the Algo API for stops, demo trading.

Exercised end to end against the local emulator (``tests/exchange_emulator``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import ccxt

from bot.domain.models import QUOTE, MarketKind, OrderIntent
from bot.exchange.venues.base import Mode, Venue, dec, hours_from_text


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
            # ccxt's demo hosts lack ``futures/data`` (open-interest statistics): asked of
            # the demo futures host like the rest (a demo daemon talks to demo hosts only).
            exchange.urls["api"].setdefault("fapiData", exchange.urls["api"][
                "fapiPublic"].replace("/fapi/v1", "/futures/data"))
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

    def transfer(self, exchange: Any, amount: str, to_futures: bool) -> str:
        """Universal transfer (``POST /sapi/v1/asset/transfer``) through ccxt's implicit API:
        the unified ``transfer`` needs the currency list, a signed sapi call the adapter
        turns off. Binance's demo and testnet hosts have no sapi at all, so this works live
        only (ccxt refuses it before any request otherwise)."""
        raw = exchange.sapiPostAssetTransfer({
            "type": "MAIN_UMFUTURE" if to_futures else "UMFUTURE_MAIN",
            "asset": QUOTE, "amount": amount})
        return str(raw.get("tranId") or "")

    def find_transfer(self, exchange: Any, amount: Decimal, to_futures: bool,
                      since_ms: int) -> str | None:
        raw = exchange.sapiGetAssetTransfer({
            "type": "MAIN_UMFUTURE" if to_futures else "UMFUTURE_MAIN",
            "startTime": since_ms, "size": 100})
        for row in raw.get("rows") or []:
            if row.get("asset") == QUOTE and dec(row.get("amount")) == amount:
                return str(row.get("tranId") or "")
        return None

    def withdrawals_enabled(self, exchange: Any, mode: Mode) -> bool | None:
        """``GET /sapi/v1/account/apiRestrictions`` (``enableWithdrawals``). The demo and
        testnet hosts have no sapi: not asked there (None)."""
        if mode != "live":
            return None
        raw = exchange.sapi_get_account_apirestrictions()
        value = raw.get("enableWithdrawals") if isinstance(raw, dict) else None
        return value if isinstance(value, bool) else None

    def key_environment_hint(self, mode: Mode, text: str) -> str | None:
        """-2015 ("Invalid API-key, IP, or permissions") and -2014 ("API-key format
        invalid") are also Binance's answer to a key of another environment: the demo,
        testnet and live hosts each know only their own keys."""
        if "-2015" not in text and "-2014" not in text:
            return None
        where = {"demo": "demo.binance.com (Demo Trading)",
                 "testnet": "testnet.binance.vision",
                 "live": "binance.com (API Management)"}[mode]
        return (f"binance refused the key in {mode} mode; {mode} needs a key created on "
                f"{where}: a key from another environment, an IP not on the key's whitelist "
                "or missing permissions all get this answer; fix the key or mode and start "
                "again")

    def perp_wallet(self, balance: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """ccxt's USDT ``total`` is Binance's marginBalance, which includes unrealised PnL;
        the port wants the wallet (the core adds PnL from positions itself)."""
        for asset in (balance.get("info") or {}).get("assets", []):
            if asset.get("asset") == QUOTE:
                return dec(asset.get("availableBalance")), dec(asset.get("walletBalance"))
        return super().perp_wallet(balance)
