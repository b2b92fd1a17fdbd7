"""Orders through ccxt without ever doubling one: pre-send checks, send, reconcile.

The rules, in order of importance:

* Every order carries the intent's ``client_id``. Nothing that may have reached the venue is
  sent again until a lookup by that id came back empty.
* Refusals the venue would give for size or leverage (below the amount step, below the
  notional floor, above the leverage cap) are raised here without sending anything.
* After a timeout, 5xx, bad response or connection drop the outcome is unknown: look the
  order up (a few times, a venue can show it late) and return it, else ``OutcomeUnknown``.
* A rate-limit answer means "not processed": wait ``Retry-After``, look up, then resend.
* So does a timestamp refused by the venue's clock (Binance -1021): the clock offset is
  measured again (``Caller.resync_clock``), then look up and resend.
* A duplicate-client-id refusal (Binance -4116) means the order exists: return it.
* ``InvalidOrder``, ``InsufficientFunds`` and every other venue refusal -> ``OrderRejected``;
  credentials problems -> ``CredentialsRejected``. None of these is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import ccxt

from bot.domain.models import MarketKind, OrderIntent, OrderResult, OrderStatus, OrderType
from bot.exchange import ccxt_convert as cv
from bot.exchange.port import ExchangeError, OrderRejected, OutcomeUnknown
from bot.exchange.venues import dec

if TYPE_CHECKING:
    from bot.exchange.ccxt_exchange import CcxtExchange

STILL_MATCHING = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})
"""A market order in these states is still being matched: read it again before answering."""

PRICE_TTL_SECONDS = 300.0
"""How old a remembered price may be for the notional-floor check before it is re-read."""


class OrderDesk:
    """The write side of ``CcxtExchange`` (which serialises calls with its lock)."""

    def __init__(self, adapter: CcxtExchange) -> None:
        self._ex = adapter
        self.leverage_set: dict[str, Decimal] = {}
        self._prices: dict[tuple[str, MarketKind], tuple[Decimal, float]] = {}

    def remember_prices(self, kind: MarketKind, prices: Mapping[str, Decimal]) -> None:
        now = time.monotonic()
        for token, price in prices.items():
            self._prices[(token, kind)] = (price, now)

    # -- leverage and margin mode (idempotent settings: safe to retry) --------------------------
    def set_leverage(self, token: str, leverage: Decimal) -> None:
        value = self._ex.check_leverage(leverage)
        exchange, symbol, _ = self._ex.route(token, MarketKind.PERP)
        venue = self._ex.venue

        def call() -> None:
            venue.set_leverage(exchange, symbol, value, self._ex.margin_mode)

        self._ex.caller.read(exchange, f"set_leverage {symbol}",
                             lambda: self._tolerate_no_change(call), write=True)
        self.leverage_set[token] = value

    def set_margin_mode(self, token: str, mode: str) -> None:
        mode = mode.lower()
        if mode not in ("isolated", "cross"):
            raise OrderRejected(f"margin mode must be isolated or cross, got {mode!r}")
        exchange, symbol, _ = self._ex.route(token, MarketKind.PERP)
        venue = self._ex.venue

        def call() -> None:
            venue.set_margin_mode(exchange, symbol, mode)

        self._ex.caller.read(exchange, f"set_margin_mode {symbol}",
                             lambda: self._tolerate_no_change(call), write=True)
        self._ex.margin_mode = mode

    def _tolerate_no_change(self, call: Callable[[], None]) -> None:
        """'Already set' (Binance -4046 MarginModeAlreadySet, Bybit 110043) is success."""
        try:
            call()
        except ccxt.BaseError as exc:
            if not self._ex.venue.is_already_set(exc):
                raise

    # -- placing ---------------------------------------------------------------------------
    def place(self, intent: OrderIntent) -> OrderResult:
        self._check_intent(intent)
        exchange, symbol, market = self._ex.route(intent.token, intent.market)
        size = cv.contract_size(market)
        contracts = self._contracts(exchange, symbol, market, intent.amount / size)
        venue = self._ex.venue
        params = venue.order_params(intent, self._ex.margin_mode)
        order_type, price = "market", None
        if intent.order_type is OrderType.LIMIT:
            order_type = "limit"
            price = exchange.price_to_precision(symbol, str(intent.price))
        elif intent.order_type is OrderType.STOP_MARKET:
            trigger = exchange.price_to_precision(symbol, str(intent.trigger_price))
            params.update(venue.stop_params(intent, trigger))
        attached = {"stopLoss", "takeProfit"} & params.keys()
        if attached and not exchange.has.get("createOrderWithTakeProfitAndStopLoss"):
            # binanceusdm would forward the dict as an unknown query param and place a bare
            # entry with no stop at all (verified on ccxt 4.5.90)
            raise OrderRejected(f"{self._ex.name} cannot attach {sorted(attached)} to an order")
        if not (intent.market is MarketKind.PERP and intent.reduce_only):
            self._check_notional(intent, exchange, symbol, market, contracts * size)
        result = self._send(intent, exchange, symbol, size, order_type, str(contracts), price,
                            params)
        if venue.create_acks_only and result.status is OrderStatus.UNKNOWN:
            result = self._read_back(intent, result)
        return result

    def _read_back(self, intent: OrderIntent, sent: OrderResult) -> OrderResult:
        """The accepted order as the venue now shows it (Bybit and OKX answer a create with
        ids only). A market order still open is read again: a venue may match it a moment
        later. If the order cannot be read, the acknowledgement is returned as it is (status
        UNKNOWN, with what was asked for): the order exists, so nothing may be raised and
        the journal's reconciliation settles it later."""
        policy = self._ex.caller.policy
        trigger = intent.order_type is OrderType.STOP_MARKET
        found: OrderResult | None = None
        for attempt in range(policy.lookup_attempts):
            if attempt:
                self._ex.caller.pause(policy.lookup_delay)
            try:
                found = self.find(intent.client_id, intent.token, intent.market,
                                  trigger) or found
            except ExchangeError:
                break
            if found is not None and not (intent.order_type is OrderType.MARKET
                                          and found.status in STILL_MATCHING):
                return found
        if found is not None:
            return found
        return replace(sent, side=intent.side, order_type=intent.order_type,
                       amount=intent.amount, trigger_price=intent.trigger_price,
                       reduce_only=intent.reduce_only)

    def _check_intent(self, intent: OrderIntent) -> None:
        wire = self._ex.venue.wire_client_id(intent.client_id)
        if not intent.client_id or not self._ex.venue.client_id_pattern.match(wire):
            raise OrderRejected(f"client id {intent.client_id!r} is not valid on "
                                f"{self._ex.name}")
        if not intent.amount.is_finite() or intent.amount <= 0:
            raise OrderRejected(f"amount must be positive, got {intent.amount}")
        if intent.market is MarketKind.PERP and intent.leverage is not None:
            self._ex.check_leverage(intent.leverage)
        if intent.market is MarketKind.SPOT and intent.reduce_only:
            raise OrderRejected("reduce-only applies to perp orders only")
        if intent.order_type is OrderType.LIMIT and (intent.price is None or intent.price <= 0):
            raise OrderRejected("a limit order needs a positive price")
        if intent.order_type is OrderType.STOP_MARKET:
            if intent.market is not MarketKind.PERP or not intent.reduce_only:
                raise OrderRejected("stop-market orders are reduce-only perp orders")
            if intent.trigger_price is None or intent.trigger_price <= 0:
                raise OrderRejected("a stop-market order needs a positive trigger price")

    def _contracts(self, exchange: Any, symbol: str, market: dict[str, Any],
                   raw: Decimal) -> Decimal:
        """Truncated to the venue's step, as ccxt would before sending; too small -> refused."""
        try:
            contracts = Decimal(exchange.amount_to_precision(symbol, str(raw)))
        except ccxt.InvalidOrder as exc:
            raise OrderRejected(self._ex.caller.message(f"{symbol} amount {raw} (not sent)",
                                                        exc)) from exc
        minimum = dec(((market.get("limits") or {}).get("amount") or {}).get("min"))
        if contracts <= 0 or contracts < minimum:
            raise OrderRejected(f"{symbol} amount {contracts} below the minimum {minimum} "
                                f"(not sent)")
        return contracts

    def _check_notional(self, intent: OrderIntent, exchange: Any, symbol: str,
                        market: dict[str, Any], amount: Decimal) -> None:
        """Binance -4164 / spot NOTIONAL, checked here (ccxt does not). Reduce-only perp
        orders are exempt on the venue and skipped by the caller."""
        floor = dec(((market.get("limits") or {}).get("cost") or {}).get("min"))
        if floor <= 0:
            return
        price = intent.price or intent.trigger_price or self._reference_price(
            exchange, symbol, intent.token, intent.market)
        if amount * price < floor:
            raise OrderRejected(f"{symbol} notional {amount * price:.8f} below the venue "
                                f"minimum {floor} (not sent)")

    def _reference_price(self, exchange: Any, symbol: str, token: str,
                         kind: MarketKind) -> Decimal:
        cached = self._prices.get((token, kind))
        if cached is not None and time.monotonic() - cached[1] < PRICE_TTL_SECONDS:
            return cached[0]
        ticker = self._ex.caller.read(exchange, f"fetch_ticker {symbol}",
                                      lambda: exchange.fetch_ticker(symbol))
        price = dec(ticker.get("last") or ticker.get("close"))
        if price <= 0:
            raise OrderRejected(f"no price for {symbol} to check the notional floor")
        self.remember_prices(kind, {token: price})
        return price

    def _send(self, intent: OrderIntent, exchange: Any, symbol: str, size: Decimal,
              order_type: str, amount: str, price: str | None,
              params: dict[str, Any]) -> OrderResult:
        caller, venue = self._ex.caller, self._ex.venue
        side = intent.side.value
        last: BaseException | None = None
        for attempt in range(1, caller.policy.write_throttle_attempts + 1):
            try:
                raw = caller.once(exchange, lambda: exchange.create_order(
                    symbol, order_type, side, amount, price, dict(params)), attempt)
                return self._result(intent, exchange, symbol, size, raw)
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.InvalidNonce) as exc:
                # Refused unprocessed (a 429, or a timestamp outside the venue's window,
                # after which the clock was measured again): check, then resend.
                last = exc
                found = self._settle(intent, exc, patient=False)
                if found is not None:
                    return found
            except ccxt.OperationFailed as exc:  # timeout, 5xx, bad response: unknown
                found = self._settle(intent, exc, patient=True)
                if found is not None:
                    return found
                raise OutcomeUnknown(caller.message(
                    f"{intent.client_id}: sent, outcome unknown, not found by client id",
                    exc)) from exc
            except ccxt.BaseError as exc:
                if venue.is_duplicate(exc):
                    found = self._settle(intent, exc, patient=True)
                    if found is not None:
                        return found
                    raise OutcomeUnknown(caller.message(
                        f"{intent.client_id}: venue reports a duplicate client id the lookup "
                        f"cannot find", exc)) from exc
                raise caller.translate(f"{intent.client_id} refused", exc, write=True) from exc
        raise OutcomeUnknown(caller.message(
            f"{intent.client_id}: refused unprocessed {caller.policy.write_throttle_attempts} "
            f"times, not found by client id", last or RuntimeError("throttled")))

    def _settle(self, intent: OrderIntent, cause: BaseException,
                patient: bool) -> OrderResult | None:
        """Look the order up after a failed send; a lookup failure is itself unknown."""
        policy = self._ex.caller.policy
        tries = policy.lookup_attempts if patient else 1
        for n in range(tries):
            if n:
                self._ex.caller.pause(policy.lookup_delay)
            try:
                found = self.find(intent.client_id, intent.token, intent.market,
                                  intent.order_type is OrderType.STOP_MARKET)
            except ExchangeError as exc:
                raise OutcomeUnknown(self._ex.caller.message(
                    f"{intent.client_id}: send failed ({type(cause).__name__}) and the "
                    f"lookup failed too", exc)) from exc
            if found is not None:
                return found
        return None

    def _result(self, intent: OrderIntent, exchange: Any, symbol: str, size: Decimal,
                raw: dict[str, Any]) -> OrderResult:
        return self._priced(raw, intent.client_id, intent.token, intent.market, exchange,
                            symbol, size)

    def _priced(self, raw: dict[str, Any], client_id: str, token: str, kind: MarketKind,
                exchange: Any, symbol: str, size: Decimal) -> OrderResult:
        """The order as the venue reported it, with fees from the fills when the order
        answer carries none (Binance futures answers and order lookups never do): an order
        recovered by lookup after a lost answer must not be journalled as free."""
        fee = cv.fee_in_quote(raw, token, dec(raw.get("average")) or None)
        if fee is None and dec(raw.get("filled")) > 0 and raw.get("id"):
            fee = self._fee_from_trades(exchange, symbol, str(raw["id"]), token)
        return cv.order_result(raw, client_id=client_id, token=token, kind=kind, size=size,
                               fee=fee)

    def _fee_from_trades(self, exchange: Any, symbol: str, order_id: str,
                         token: str) -> Decimal | None:
        try:
            trades = self._ex.caller.read(exchange, f"fetch_my_trades {symbol}",
                                          lambda: exchange.fetch_my_trades(
                                              symbol, None, None, {"orderId": order_id}))
        except ExchangeError:
            return None  # the order stands; only its fee is unknown (reported as 0)
        fees = [t.get("fee") for t in trades if str(t.get("order")) == order_id]
        return cv.fee_in_quote({"fees": [f for f in fees if f]}, token,
                               dec(trades[0].get("price")) if trades else None)

    # -- reading orders ---------------------------------------------------------------------
    def find(self, client_id: str, token: str, kind: MarketKind,
             trigger: bool) -> OrderResult | None:
        """Any order with this client id, in any state; stops only with ``trigger=True``.
        A fired stop is reported TRIGGERED with the fill of the order it became."""
        try:
            exchange, symbol, market = self._ex.route(token, kind)
        except OrderRejected:
            return None
        venue, caller = self._ex.venue, self._ex.caller
        wire = venue.wire_client_id(client_id)
        raw = caller.read(exchange, f"find order {client_id}",
                          lambda: venue.find_order(exchange, symbol, wire, trigger))
        if raw is None:
            return None
        size = cv.contract_size(market)
        if trigger:
            result = cv.order_result(raw, client_id=client_id, token=token, kind=kind,
                                     size=size)
        else:
            result = self._priced(raw, client_id, token, kind, exchange, symbol, size)
        if trigger and result.status is OrderStatus.TRIGGERED:
            child = caller.read(exchange, f"stop child {client_id}",
                                lambda: venue.triggered_child(exchange, raw, symbol))
            if child is not None:
                child_intent = OrderIntent(client_id, token, kind, result.side, result.amount)
                result = cv.with_child_fill(
                    result, self._result(child_intent, exchange, symbol, size, child))
        return result

    def open_orders(self, trigger: bool) -> list[OrderResult]:
        out: list[OrderResult] = []
        kinds = [MarketKind.PERP] if trigger else [MarketKind.SPOT, MarketKind.PERP]
        for kind in kinds:
            exchange = self._ex.instance(kind)
            if exchange is None or not self._ex.symbols(kind):
                continue
            raws = self._read_open(exchange, self._ex.symbols(kind), trigger)
            for raw in raws:
                token = self._ex.token_of(str(raw.get("symbol")), kind)
                if token is None:
                    continue
                size = cv.contract_size(exchange.markets[raw["symbol"]])
                out.append(cv.order_result(raw, client_id=str(raw.get("clientOrderId") or ""),
                                           token=token, kind=kind, size=size))
        return out

    def _read_open(self, exchange: Any, symbols: list[str],
                   trigger: bool) -> list[dict[str, Any]]:
        venue = self._ex.venue

        def call() -> list[dict[str, Any]]:
            return venue.open_orders(exchange, symbols, trigger)

        return self._ex.caller.read(exchange, "fetch_open_orders", call)

    # -- cancelling -------------------------------------------------------------------------
    def cancel(self, result: OrderResult) -> None:
        """Cancel is safe to resend (a second cancel can only find nothing), so transient
        failures are retried; "unknown order" after such a failure is checked, not trusted."""
        exchange, symbol, _ = self._ex.route(result.token, result.market)
        caller = self._ex.caller
        trigger = result.order_type is OrderType.STOP_MARKET
        params = self._ex.venue.cancel_params(trigger)
        failed: BaseException | None = None
        for attempt in range(1, caller.policy.read_attempts + 1):
            try:
                caller.once(exchange, lambda: exchange.cancel_order(
                    result.exchange_id, symbol, dict(params)), attempt)
                return
            except ccxt.OrderNotFound as exc:
                if failed is not None:
                    now = self.find(result.client_id, result.token, result.market, trigger)
                    if now is not None and now.status is OrderStatus.CANCELED:
                        return
                raise OrderRejected(caller.message(
                    f"cancel {result.client_id}: unknown or not open", exc)) from exc
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                failed = exc
            except ccxt.OperationFailed as exc:
                failed = exc
                caller.pause(caller.policy.delay(attempt, exc))
            except ccxt.BaseError as exc:
                raise caller.translate(f"cancel {result.client_id}", exc, write=True) from exc
        raise OutcomeUnknown(caller.message(f"cancel {result.client_id}: no answer",
                                            failed or RuntimeError("no attempt")))
