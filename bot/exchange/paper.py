"""The in-process paper exchange: the daemon's default venue when it trades replayed history.

It speaks ``ExchangePort`` so the service layer cannot tell it from ccxt, and it copies the
Binance USD-M rules the live venue will enforce (duplicate client ids, reduce-only, notional
floors, amount steps, stops that only ``trigger=True`` lookups see) so paper runs surface the
same mistakes a live run would. Market data is pushed in by the replay driver through
``update_market``, which also plays the venue's own moves (funding, stops, liquidations) and
returns them as ``PaperEvent`` values; the exchange itself never logs or touches files.

The money rules live in ``paper_ledger.py``; this module adds orders, marks and the clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from bot.domain.models import (
    QUOTE,
    FundingRate,
    MarketInfo,
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    PerpPosition,
    Side,
)
from bot.exchange.paper_ledger import Ledger
from bot.exchange.paper_orders import OrderBook, is_stop
from bot.exchange.paper_triggers import trigger_stops
from bot.exchange.paper_types import (
    FALLBACK_STEP,
    STATE_VERSION,
    PaperConfig,
    PaperEvent,
    dec,
    derive_steps,
    funding_from_json,
    funding_to_json,
    opt_iso,
    opt_time,
)
from bot.exchange.port import Balances, ExchangeUnavailable, OrderRejected

__all__ = ["PaperConfig", "PaperEvent", "PaperExchange"]

_ZERO = Decimal(0)
_MICROSECOND = timedelta(microseconds=1)
_MICROS_PER_HOUR = Decimal(3_600_000_000)


class PaperExchange:
    """A simulated Binance-like venue: USDT spot plus isolated one-way USDT-M perps.

    ``tokens`` are the spot markets and ``perp_tokens`` the perpetual markets (a token may be
    in either or both). Only market and stop-market orders exist, and market orders fill at
    once, so ``fetch_open_orders()`` is always empty and the stops live behind ``trigger=True``.
    """

    name: str = "paper"

    def __init__(
        self, config: PaperConfig, tokens: Iterable[str], perp_tokens: Iterable[str]
    ) -> None:
        self._config = config
        self._spot_tokens = _token_set(tokens)
        self._perp_tokens = _token_set(perp_tokens)
        self._clock: datetime | None = None
        self._ledger = Ledger(config, config.starting_cash)
        self._marks: dict[str, Decimal] = {}
        self._funding: dict[str, FundingRate] = {}
        self._steps: dict[str, tuple[Decimal, Decimal]] = {}
        self._orders = OrderBook()

    # ----------------------------------------------------------------------------------------
    # Replay driver side
    # ----------------------------------------------------------------------------------------

    def update_market(
        self,
        now: datetime,
        prices: Mapping[str, Decimal],
        funding: Mapping[str, FundingRate],
        ranges: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        settlements: Mapping[str, Sequence[tuple[datetime, FundingRate]]] | None = None,
    ) -> list[PaperEvent]:
        """Advance the clock to ``now``, set marks, then settle funding, stops, liquidations.

        ``ranges`` holds each token's (low, high) over the period since the last update, so a
        stop or liquidation price touched intraday fires even if the close came back (the
        range is widened to include the mark; without one the mark alone is checked). Prices
        for tokens outside the universe are ignored; a token without a new price keeps its
        mark and its range is ignored. Funding is charged at the rates of this call only: a
        token left out of ``funding`` pays nothing for the period (the driver leaves out
        stale rates), and ``fetch_funding_rates`` shows the same rates. ``settlements``
        (replayed history) charges each token's settlements of the period one by one, at the
        rate each really had, instead of the latest rate over the whole period. Everything is
        validated before the first change, so a bad call leaves the exchange untouched.
        """
        if now.tzinfo is None:
            raise ValueError("update_market needs a timezone-aware time")
        if self._clock is not None and now < self._clock:
            raise ValueError(f"time went backwards: {now} < {self._clock}")
        known = self._spot_tokens | self._perp_tokens
        new_marks = {t: p for t, p in prices.items() if t in known}
        for token, price in new_marks.items():
            if not price.is_finite() or price <= 0:
                raise ValueError(f"price for {token} must be positive, got {price}")
        for token, rate in funding.items():
            if not math.isfinite(rate.hourly_rate):
                raise ValueError(f"funding rate for {token} must be finite")
        for token, due in (settlements or {}).items():
            for _when, rate in due:
                if not (math.isfinite(rate.hourly_rate) and math.isfinite(rate.interval_hours)
                        and rate.interval_hours > 0):
                    raise ValueError(f"funding settlement for {token} must be finite "
                                     f"with a positive interval")
        marks = {**self._marks, **new_marks}
        bands: dict[str, tuple[Decimal, Decimal]] = {}
        for token, mark in marks.items():
            fresh = token in new_marks and ranges is not None and token in ranges
            low, high = ranges[token] if fresh and ranges is not None else (mark, mark)
            if not (low.is_finite() and high.is_finite()) or low > high:
                raise ValueError(f"bad range for {token}: ({low}, {high})")
            bands[token] = (min(low, mark), max(high, mark))

        previous, self._clock = self._clock, now
        self._marks = marks
        for token, price in new_marks.items():
            self._steps.setdefault(token, derive_steps(price))
        self._funding = {t: r for t, r in funding.items() if t in self._perp_tokens}

        events: list[PaperEvent] = []
        if previous is not None and now > previous:
            if settlements is not None:
                for token in sorted(settlements):
                    if token not in self._perp_tokens:
                        continue
                    paid = [event for _when, rate in settlements[token]
                            for event in self._ledger.settle_funding(
                                self._marks, {token: rate}, Decimal(repr(rate.interval_hours)))]
                    if paid:  # one event per token and period, as before, summed exactly
                        first = paid[0]
                        events.append(dataclasses.replace(
                            first, cash_delta=sum((e.cash_delta for e in paid), Decimal(0)),
                            detail=f"{len(paid)} settlement(s): "
                                   + "; ".join(e.detail for e in paid)))
            else:
                hours = Decimal((now - previous) // _MICROSECOND) / _MICROS_PER_HOUR
                events += self._ledger.settle_funding(self._marks, self._funding, hours)
        events += self._trigger_stops(bands)
        for token in self._ledger.crossed_liquidations(bands):
            low, high = bands[token]
            price = self._ledger.liquidation_price(token)
            events.append(self._liquidate(token, price, f"range=({low}, {high})"))
        return events

    def _trigger_stops(self, bands: Mapping[str, tuple[Decimal, Decimal]]) -> list[PaperEvent]:
        return trigger_stops(self._orders, self._ledger, self._marks, bands,
                             self._config.slippage, self.now(), self._liquidate)

    def _liquidate(self, token: str, price: Decimal, detail: str) -> PaperEvent:
        self._orders.cancel_stops(token)
        return self._ledger.liquidate(token, price, detail)

    # ----------------------------------------------------------------------------------------
    # ExchangePort: reads
    # ----------------------------------------------------------------------------------------

    def load_markets(self, reload: bool = False) -> Mapping[tuple[str, MarketKind], MarketInfo]:
        """Steps come from each token's first mark (see ``derive_steps``); 1e-8 before it."""
        markets: dict[tuple[str, MarketKind], MarketInfo] = {}
        for kind, tokens in ((MarketKind.SPOT, self._spot_tokens),
                             (MarketKind.PERP, self._perp_tokens)):
            for token in sorted(tokens):
                amount_step, price_step = self._steps.get(token, (FALLBACK_STEP, FALLBACK_STEP))
                markets[(token, kind)] = MarketInfo(
                    token=token,
                    market=kind,
                    amount_step=amount_step,
                    price_step=price_step,
                    min_amount=amount_step,
                    min_notional=self._config.min_notional(kind),
                    max_leverage=self._config.max_leverage_hard if kind is MarketKind.PERP
                    else None,
                )
        return markets

    def fetch_balances(self) -> Balances:
        free: dict[str, Decimal] = {QUOTE: self._ledger.free()}
        total: dict[str, Decimal] = {QUOTE: self._ledger.cash}
        for token in sorted(self._ledger.spot):
            free[token] = total[token] = self._ledger.spot[token]
        return Balances(free=free, total=total)

    def fetch_positions(self) -> list[PerpPosition]:
        out = []
        for token in sorted(self._ledger.positions):
            pos = self._ledger.positions[token]
            liquidation = self._ledger.liquidation_price(token)
            out.append(PerpPosition(
                token=token,
                amount=pos.amount,
                entry_price=pos.entry_price,
                leverage=pos.leverage,
                mark_price=self._marks[token],
                liquidation_price=liquidation if liquidation > 0 else None,
                stop_price=self._orders.live_stop(token, long=pos.amount > 0),
                opened_at=pos.opened_at,
            ))
        return out

    def transfer_quote(self, amount: Decimal, to: MarketKind) -> str:
        raise OrderRejected("the paper exchange has one wallet: nothing to transfer")

    def find_transfer(self, amount: Decimal, to: MarketKind, since: datetime) -> str | None:
        return None

    def fetch_prices(self, tokens: Iterable[str], market: MarketKind) -> dict[str, Decimal]:
        """Marks of the listed tokens that have one; spot and perp share the mark."""
        listed = self._spot_tokens if market is MarketKind.SPOT else self._perp_tokens
        return {t: self._marks[t] for t in tokens if t in listed and t in self._marks}

    def fetch_funding_rates(self, tokens: Iterable[str]) -> dict[str, FundingRate]:
        return {t: self._funding[t] for t in tokens if t in self._funding}

    def fetch_order_by_client_id(
        self, client_id: str, token: str, market: MarketKind, trigger: bool = False
    ) -> OrderResult | None:
        """An accepted order in any state: every open one, and the most recently finished
        (``KEEP_FINISHED``; a venue, too, forgets old orders). Like Binance, stops (algo
        orders) are only found with ``trigger=True`` and plain orders only without it."""
        order = self._orders.get(client_id)
        if order is None or order.token != token or order.market is not market:
            return None
        return order if is_stop(order) == trigger else None

    def fetch_open_orders(self, trigger: bool = False) -> list[OrderResult]:
        return self._orders.open_orders(trigger)

    def now(self) -> datetime:
        if self._clock is None:
            raise ExchangeUnavailable("paper exchange has no market data yet")
        return self._clock

    # ----------------------------------------------------------------------------------------
    # ExchangePort: writes
    # ----------------------------------------------------------------------------------------

    def set_leverage(self, token: str, leverage: Decimal) -> None:
        """Refused above the hard cap before any change; an open position is re-margined
        (see ``Ledger.set_leverage``), which may also be refused."""
        self._require_market(token, MarketKind.PERP)
        leverage = dec(leverage)
        cap = self._config.max_leverage_hard
        if not leverage.is_finite() or leverage < 1 or leverage > cap:
            raise OrderRejected(f"leverage {leverage} for {token} outside [1, {cap}]")
        self._ledger.set_leverage(token, leverage, self._marks.get(token))

    def set_margin_mode(self, token: str, mode: str) -> None:
        """Only isolated margin is simulated; asking for anything else is refused."""
        self._require_market(token, MarketKind.PERP)
        if mode.lower() != "isolated":
            raise OrderRejected(f"paper exchange supports isolated margin only, not {mode!r}")

    def place_order(self, intent: OrderIntent) -> OrderResult:
        """Fill a market order now, or rest a stop; refusals raise and change nothing.

        Amounts are truncated down to the amount step (what ccxt's ``amount_to_precision``
        does before sending); a result of zero is refused. ``intent.leverage`` is ignored:
        the venue uses its ``set_leverage`` setting, as Binance does. Rejected orders leave
        no record, so their client ids stay free, as on the venue.
        """
        if not intent.client_id:
            raise OrderRejected("a client order id is required")
        if intent.client_id in self._orders:
            raise OrderRejected(f"duplicate client order id {intent.client_id!r} (Binance -4116)")
        self._require_market(intent.token, intent.market)
        if intent.order_type is OrderType.LIMIT:
            raise OrderRejected("paper exchange fills market and stop-market orders only")
        mark = self._marks.get(intent.token)
        if mark is None:
            raise OrderRejected(f"no price for {intent.token} yet")
        amount = self._to_step(intent.token, intent.amount)
        if intent.order_type is OrderType.STOP_MARKET:
            return self._place_stop(intent, amount, mark)
        if intent.market is MarketKind.SPOT:
            return self._spot_market(intent, amount, mark)
        return self._perp_market(intent, amount, mark)

    def cancel_order(self, result: OrderResult) -> None:
        """Cancel an open stop; anything else is Binance's -2011 "Unknown order sent"."""
        order = self._orders.get(result.client_id)
        if order is None or order.status is not OrderStatus.OPEN:
            raise OrderRejected(f"unknown or not open order {result.client_id!r} (Binance -2011)")
        self._orders.update(order, status=OrderStatus.CANCELED)

    # ----------------------------------------------------------------------------------------
    # Order mechanics
    # ----------------------------------------------------------------------------------------

    def _spot_market(self, intent: OrderIntent, amount: Decimal, mark: Decimal) -> OrderResult:
        if intent.reduce_only:
            raise OrderRejected("reduce-only applies to perp orders only")
        self._check_min_notional(amount, mark, MarketKind.SPOT)
        slip = self._config.slippage
        price = mark * (1 + slip) if intent.side is Side.BUY else mark * (1 - slip)
        filled, status = self._book_depth(intent.token, amount, mark)
        fee = self._ledger.spot_fill(intent.token, intent.side, filled, price)
        return self._orders.record(intent, amount, status, (filled, price, fee), None,
                                   self._clock)

    def _perp_market(self, intent: OrderIntent, amount: Decimal, mark: Decimal) -> OrderResult:
        buy = intent.side is Side.BUY
        pos = self._ledger.positions.get(intent.token)
        if intent.reduce_only:
            if pos is None or (pos.amount > 0) == buy:
                raise OrderRejected("reduce-only order would open or increase a position "
                                    "(Binance -2022)")
            if amount > abs(pos.amount):
                raise OrderRejected("reduce-only order would flip the position (Binance -2022)")
        else:  # Binance waives the notional floor for reduce-only orders only
            self._check_min_notional(amount, mark, MarketKind.PERP)
        slip = self._config.slippage
        price = mark * (1 + slip) if buy else mark * (1 - slip)
        filled, status = self._book_depth(intent.token, amount, mark)
        plan = self._ledger.plan_perp(intent.token, filled if buy else -filled, price)
        if plan.free_after < 0:
            raise OrderRejected(f"margin is insufficient: free {QUOTE} would be "
                                f"{plan.free_after} (Binance -2019)")
        if self._ledger.apply_perp(intent.token, plan, self.now()):
            self._orders.cancel_stops(intent.token)
        return self._orders.record(intent, amount, status, (filled, price, plan.fee), None,
                                   self._clock)

    def _book_depth(self, token: str, amount: Decimal, mark: Decimal) -> tuple[Decimal,
                                                                              OrderStatus]:
        """What a market order of ``amount`` fills on a book ``depth_notional`` deep: all of
        it (FILLED), or the part the book holds with the rest expired (EXPIRED)."""
        depth = self._config.depth_notional
        if depth <= 0 or amount * mark <= depth:
            return amount, OrderStatus.FILLED
        filled = self._to_step(token, depth / mark)
        if filled <= 0:
            raise OrderRejected(f"no liquidity for {token}: the book holds {depth} {QUOTE}")
        return filled, OrderStatus.EXPIRED

    def _place_stop(self, intent: OrderIntent, amount: Decimal, mark: Decimal) -> OrderResult:
        """Rest a reduce-only stop-market order against the current position.

        Like a Binance algo stop it needs a position to protect, must close it (sell below a
        long, buy above a short) and may not be already crossed (-2021). The trigger is
        rounded to the tick; an amount above the position is cut to it at trigger time.
        """
        if intent.market is not MarketKind.PERP:
            raise OrderRejected("stop-market orders exist on perps only")
        trigger = intent.trigger_price
        if trigger is None or not trigger.is_finite() or trigger <= 0:
            raise OrderRejected("a stop-market order needs a positive trigger price")
        tick = self._steps[intent.token][1]
        trigger = (trigger / tick).to_integral_value(ROUND_HALF_EVEN) * tick
        pos = self._ledger.positions.get(intent.token)
        if pos is None:
            raise OrderRejected(f"no {intent.token} position for a stop to protect")
        sell = intent.side is Side.SELL
        if sell != (pos.amount > 0):
            raise OrderRejected("a stop must close the position: sell for a long, buy for a "
                                "short (reduce-only)")
        if trigger <= 0 or (trigger >= mark if sell else trigger <= mark):
            raise OrderRejected(f"stop at {trigger} would immediately trigger at mark {mark} "
                                "(Binance -2021)")
        return self._orders.record(intent, amount, OrderStatus.OPEN, (_ZERO, None, _ZERO),
                                   trigger, self._clock)

    # ----------------------------------------------------------------------------------------
    # Helpers
    # ----------------------------------------------------------------------------------------

    def _require_market(self, token: str, market: MarketKind) -> None:
        listed = self._spot_tokens if market is MarketKind.SPOT else self._perp_tokens
        if token not in listed:
            raise OrderRejected(f"unknown market {token} {market.value}")

    def _to_step(self, token: str, amount: Decimal) -> Decimal:
        if not amount.is_finite() or amount <= 0:
            raise OrderRejected(f"amount must be positive, got {amount}")
        step = self._steps[token][0]
        stepped = (amount // step) * step
        if stepped <= 0:
            raise OrderRejected(f"amount {amount} is below the amount step {step}")
        return stepped

    def _check_min_notional(self, amount: Decimal, mark: Decimal, market: MarketKind) -> None:
        floor = self._config.min_notional(market)
        if amount * mark < floor:
            raise OrderRejected(f"notional {amount * mark} below the minimum {floor} "
                                "(Binance -4164)")

    # ----------------------------------------------------------------------------------------
    # Persistence
    # ----------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data (Decimals as strings)."""
        return {
            "version": STATE_VERSION,
            "spot_tokens": sorted(self._spot_tokens),
            "perp_tokens": sorted(self._perp_tokens),
            "clock": opt_iso(self._clock),
            "ledger": self._ledger.to_json(),
            "marks": {t: str(self._marks[t]) for t in sorted(self._marks)},
            "funding": {t: funding_to_json(self._funding[t]) for t in sorted(self._funding)},
            "steps": {t: [str(a), str(p)] for t, (a, p) in sorted(self._steps.items())},
            "orders": self._orders.to_json(),
        }

    @classmethod
    def from_state(cls, config: PaperConfig, state: Mapping[str, Any]) -> PaperExchange:
        """Rebuild from ``to_state`` output; ``config`` supplies the rules, not the balances."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported paper state version {state.get('version')!r}")
        ex = cls(config, state["spot_tokens"], state["perp_tokens"])
        ex._clock = opt_time(state["clock"])
        ex._ledger = Ledger.from_json(config, state["ledger"])
        ex._marks = {t: dec(v) for t, v in state["marks"].items()}
        ex._funding = {t: funding_from_json(v) for t, v in state["funding"].items()}
        ex._steps = {t: (dec(a), dec(p)) for t, (a, p) in state["steps"].items()}
        ex._orders = OrderBook.from_json(state["orders"])
        return ex


def _token_set(tokens: Iterable[str]) -> frozenset[str]:
    out = frozenset(tokens)
    if QUOTE in out or any(not t for t in out):
        raise ValueError(f"tokens must be non-empty base symbols other than {QUOTE}")
    return out
