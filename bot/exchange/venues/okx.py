"""OKX v5: demo is the live host plus a header, swaps trade in contracts, stops are algo orders.

Exercised end to end against the local OKX emulator (``tests/exchange_emulator/okx_*``,
``tests/test_ccxt_okx.py``) through unmodified ccxt 4.5.x.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import ccxt

from bot.domain.models import QUOTE, MarketKind, OrderIntent
from bot.exchange.venues.base import Mode, Venue, dec, leverage_arg

#: ``ordType`` values of OKX algo orders (``trade/order-algo``); everything else is a
#: regular order (``trade/order``)
ALGO_TYPES = frozenset({"conditional", "oco", "trigger", "move_order_stop", "iceberg", "twap",
                        "chase"})
#: what our stops are: ``ordType=conditional`` with ``slTriggerPx``
STOP_TYPE = "conditional"
# clOrdId/algoClOrdId take letters and digits only; our ids use '-' and '_'. They are
# escaped with 'Z' (a prefix-free code, so the venue's copy decodes back to our id).
_ESCAPE = {"-": "Zd", "_": "Zu", "Z": "ZZ"}
_UNESCAPE = {v[1]: k for k, v in _ESCAPE.items()}


def client_id_from_wire(wire: str) -> str:
    """Inverse of ``Okx.wire_client_id``; an id we did not encode comes back unchanged."""
    out, i = [], 0
    while i < len(wire):
        ch = wire[i]
        if ch == "Z":
            original = _UNESCAPE.get(wire[i + 1:i + 2])
            if original is None:
                return wire
            out.append(original)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Okx(Venue):
    """OKX: demo trading is the live host plus ``x-simulated-trading: 1`` (set_sandbox_mode),
    with API keys created in demo mode. One trading account (``unified_wallet``) in net
    position mode. Swap amounts are contracts (``contractSize``, e.g. 0.1 ETH)."""

    name = "okx"
    _net_mode_checked = False
    spot_class = "okx"
    perp_class = "okx"
    # 51016: regular orders; 51065: algo orders (algoClOrdId), which ccxt maps to nothing
    duplicate_markers = ("51016", "Duplicated clOrdId", "51065", "algoClOrdId already exists")
    # 59107 ("pending orders, modify the leverage after canceling them") is a refusal, not
    # "already set": the leverage did not change. OKX answers an unchanged value with code 0.
    already_set_markers = ()
    client_id_pattern = re.compile(r"^[A-Za-z0-9]{1,32}$")
    # trade/order, batch-orders and order-algo answer with ids and sCode only (no state, no
    # fill): without the read-back a filled market order would be reported UNKNOWN, empty
    create_acks_only = True

    def options(self, kind: MarketKind) -> dict[str, Any]:
        """Only the instrument type this instance trades: ccxt's default also loads futures
        and two option chains (five requests per instance instead of one)."""
        opts = super().options(kind)
        opts["fetchMarkets"] = {"types": ["spot" if kind is MarketKind.SPOT else "swap"]}
        # ccxt measures OKX's clock only with this on (at each markets load, and when the
        # adapter re-measures after a 50102 "timestamp expired"): without it a machine clock
        # that drifts fails every signed call until a restart, as on Binance and Bybit.
        opts["adjustForTimeDifference"] = True
        return opts

    def enter_mode(self, exchange: Any, mode: Mode, kind: MarketKind) -> None:
        if mode in ("testnet", "demo"):
            exchange.set_sandbox_mode(True)

    def wire_client_id(self, client_id: str) -> str:
        """Letters and digits only (<= 32), reversibly: '-' -> 'Zd', '_' -> 'Zu', 'Z' ->
        'ZZ'. Any other character, or more than 32 after escaping, is left for
        ``client_id_pattern`` to refuse before sending (dropping characters or truncating
        could give two of our orders one venue id)."""
        out = []
        for ch in client_id:
            if ch in _ESCAPE:
                out.append(_ESCAPE[ch])
            elif ch.isascii() and ch.isalnum():
                out.append(ch)
            else:
                return client_id
        return "".join(out)

    def order_params(self, intent: OrderIntent, margin_mode: str) -> dict[str, Any]:
        params = super().order_params(intent, margin_mode)
        if intent.market is MarketKind.PERP:
            params["marginMode"] = margin_mode  # -> tdMode
        return params

    def stop_params(self, intent: OrderIntent, trigger: str) -> dict[str, Any]:
        """-> ``POST /api/v5/trade/order-algo`` with ``ordType=conditional``,
        ``slTriggerPx=trigger``, ``slOrdPx=-1`` (market). The algo's client id is
        ``algoClOrdId`` (ccxt only sets ``clOrdId`` from ``clientOrderId``); the mark price
        triggers, so one wick of the last traded price cannot fire the stop."""
        return {"stopLossPrice": trigger, "reduceOnly": True, "slTriggerPxType": "mark",
                "algoClOrdId": self.wire_client_id(intent.client_id)}

    def find_order(self, exchange: Any, symbol: str, wire_id: str,
                   trigger: bool) -> dict[str, Any] | None:
        """One lookup by client id, any state: ``GET trade/order?clOrdId=`` or ``GET
        trade/order-algo?algoClOrdId=``. (Searching the open/closed lists would miss
        cancelled orders and, since ccxt asks for ``ordType=trigger``, every stop.)"""
        params: dict[str, Any] = {"clientOrderId": wire_id}
        if trigger:
            params["trigger"] = True
        try:
            raw = dict(exchange.fetch_order(None, symbol, params))
        except ccxt.OrderNotFound:
            return None
        if is_algo(raw) != trigger:
            return None
        return unified(raw)

    def open_orders(self, exchange: Any, symbols: list[str],
                    trigger: bool) -> list[dict[str, Any]]:
        """One request for all symbols. Stops are asked for as ``ordType=conditional``:
        ccxt's default for ``trigger=True`` is ``ordType=trigger``, which lists none."""
        wanted = set(symbols)
        inst_type = "SWAP" if any(":" in s for s in symbols) else "SPOT"
        params: dict[str, Any] = {"instType": inst_type}
        if trigger:
            params.update({"trigger": True, "ordType": STOP_TYPE})
        return [unified(dict(o)) for o in exchange.fetch_open_orders(None, None, None, params)
                if o.get("symbol") in wanted]

    def triggered_child(self, exchange: Any, raw: dict[str, Any],
                        symbol: str) -> dict[str, Any] | None:
        """The market order a fired stop placed (``ordIdList``, or the older ``ordId``)."""
        info = raw.get("info") or {}
        children = [str(i) for i in info.get("ordIdList") or [] if i] or (
            [str(info["ordId"])] if info.get("ordId") else [])
        if not children:
            return None
        return unified(dict(exchange.fetch_order(children[-1], symbol)))

    def set_margin_mode(self, exchange: Any, symbol: str, mode: str) -> None:
        """OKX has no per-symbol margin-mode switch: the mode travels with every order
        (``tdMode``) and with ``set_leverage``; only the position mode is checked."""
        self._require_net_mode(exchange)

    def _require_net_mode(self, exchange: Any) -> None:
        """The adapter sends one-way (net) orders, which an account in long/short mode
        refuses (51000). Checked once, before the first leverage or margin call of a perp
        entry, so a refusal changes nothing; the account setting is the user's to change."""
        if self._net_mode_checked:
            return
        config = exchange.private_get_account_config()
        data = (config.get("data") or [{}])[0] if isinstance(config, dict) else {}
        pos_mode = str(data.get("posMode") or "")
        if pos_mode != "net_mode":
            raise ccxt.BadRequest(
                f"okx: the account is in position mode {pos_mode or 'unknown'!r}; sectorbot "
                "trades one-way: switch the account to net mode (Trade settings -> Position "
                "mode -> One-way) with no open swap positions or orders")
        self._net_mode_checked = True

    def withdrawals_enabled(self, exchange: Any, mode: Mode) -> bool | None:
        """``GET /api/v5/account/config``: ``perm`` lists ``withdraw`` when the key may."""
        config = exchange.private_get_account_config()
        data = (config.get("data") or [{}])[0] if isinstance(config, dict) else {}
        perm = data.get("perm") if isinstance(data, dict) else None
        if not isinstance(perm, str):
            return None
        return "withdraw" in perm.split(",")

    def key_environment_hint(self, mode: Mode, text: str) -> str | None:
        """50101 "APIKey does not match current environment": a demo-trading key on the
        live service or a live key in demo mode. OKX says so outright."""
        if "50101" not in text:
            return None
        if mode == "live":
            return ("okx says this API key is not a live key (50101: it was created for demo "
                    "trading); mode is live: use a key created under your live account, or set "
                    "mode = \"demo\" to trade with this one")
        return (f"okx says this API key is not a demo-trading key (50101: it is a live key); "
                f"mode is {mode}: create a key under Demo Trading (Trade -> Demo trading -> "
                "API) and use that, or set mode = \"live\" (with --i-understand-live-trading) "
                "to trade with this one")

    def set_leverage(self, exchange: Any, symbol: str, leverage: Decimal, mode: str) -> None:
        self._require_net_mode(exchange)
        exchange.set_leverage(leverage_arg(leverage), symbol, {"marginMode": mode})

    def fetch_positions(self, exchange: Any, symbols: list[str]) -> list[dict[str, Any]]:
        """All swap positions in one request, filtered here: ``account/positions`` takes at
        most 10 comma-separated ``instId`` values."""
        wanted = set(symbols)
        return [dict(p) for p in exchange.fetch_positions(None, {"instType": "SWAP"})
                if p.get("symbol") in wanted]

    def perp_wallet(self, balance: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """ccxt's USDT ``total`` is OKX's ``eq``, which includes unrealised PnL; the port
        wants the cash balance (isolated margin included, PnL not)."""
        for data in (balance.get("info") or {}).get("data") or []:
            for entry in data.get("details") or []:
                if entry.get("ccy") == QUOTE:
                    return dec(entry.get("availBal")), dec(entry.get("cashBal"))
        return super().perp_wallet(balance)


def is_algo(raw: dict[str, Any]) -> bool:
    return str((raw.get("info") or {}).get("ordType") or "") in ALGO_TYPES


def unified(raw: dict[str, Any]) -> dict[str, Any]:
    """A ccxt order as the adapter reads it.

    * Algo orders: the client id is ``algoClOrdId`` and a conditional stop's trigger is
      ``slTriggerPx`` (ccxt leaves ``triggerPrice`` empty: it reads ``triggerPx`` only).
    * Regular orders: OKX sends ``algoId``/``algoClOrdId`` on them too (empty, or the stop
      that placed them), which would make them look like stops; they are dropped.
    * The client id is decoded back to ours (see ``Okx.wire_client_id``).
    """
    info = dict(raw.get("info") or {})
    if is_algo(raw):
        cid = info.get("algoClOrdId") or raw.get("clientOrderId")
        if raw.get("triggerPrice") is None:
            raw["triggerPrice"] = raw.get("stopLossPrice") or raw.get("takeProfitPrice")
    else:
        info.pop("algoId", None)
        info.pop("algoClOrdId", None)
        cid = raw.get("clientOrderId")
    raw["info"] = info
    raw["clientOrderId"] = client_id_from_wire(str(cid)) if cid else None
    return raw
