"""The risk watch: runs more often than the rotation cycle and defends open positions.

Four protective steps, each guarded on its own so that one failed read (a funding endpoint
down, a lookup that timed out) never skips the others: the stop watchdog first (any
leveraged position without a live stop gets one, or is closed when it is past its stop level
or the venue keeps refusing its stop), then the kill switch (drawdown from the high-water
mark, or repeated job failures), funding exits with hysteresis, and the liquidation buffer.
The watchdog also learns what the venue did on its own since the last tick: a journalled
stop no longer open is looked up and settled (``stoploss.triggered`` the first time it shows
fired), and, on a venue, a held perp gone with no journalled order explaining it is logged
``position.liquidated``. A failed step is logged ``risk.step_failed`` and returned, so the
daemon counts it towards the repeated-failures kill switch. Decisions are the pure rules
of :mod:`bot.domain.risk`; this module only reads the venue, acts through the executor and
remembers state in the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain.flows import Reading, external_flow, rebased_high_water
from bot.domain.models import (
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    PerpPosition,
    Portfolio,
    Side,
)
from bot.domain.risk import (
    excessive_funding,
    kill_switch_reason,
    near_liquidation,
    positions_missing_stops,
    stop_crossed,
    stop_price_for,
)
from bot.domain.risk_limits import RiskLimits
from bot.exchange.port import ExchangeError, ExchangePort
from bot.service.executor import STOP_DISTANCES_KEY, ExecutionReport, Executor
from bot.service.reconcile import UNSETTLED, journal_answer
from bot.store.journal import JournalConflict
from bot.store.repo import StateStore
from bot.store.schema import KillSwitchRow, OrderRow

HIGH_WATER_KEY = "risk.high_water"
DRAWDOWN_TRIP = "drawdown"
"""How a drawdown trip's reason starts (``bot.domain.risk.kill_switch_reason``)."""
LAST_READING_KEY = "risk.last_reading"
"""The account as the previous kill-switch check saw it (to tell flows from P&L)."""
EXTERNAL_FLOW_THRESHOLD = 0.03
"""A change in equity the market does not explain and larger than this share of equity is a
deposit or withdrawal, not a gain or loss."""
FUNDING_BLOCK_KEY = "risk.funding_blocked"
MAX_CONSECUTIVE_FAILURES = 5
FUNDING_REARM_RATIO = 0.5
"""Hysteresis: a token closed for excessive funding may be re-entered only once its funding
is back below this share of the exit threshold."""
MAX_CLOSE_ROUNDS = 5
"""Reduce-only orders one risk exit may send for one position when the book fills in part."""
HELD_KEY = "risk.held_perps"
"""kv: each perp the previous watch tick saw held (amount, last liquidation or mark price, and
the newest journalled fill then), to tell a position the venue closed from one we closed."""
MAX_STOP_ATTEMPTS = 3
"""Stop placements the venue may refuse (or leave unconfirmed) in a row before the position
is closed instead: a leveraged position that cannot be protected must not stay open."""

PortfolioSource = Portfolio | Callable[[], Portfolio]


def close_intent(position: PerpPosition, salt: str, why: str) -> OrderIntent:
    """A reduce-only market order closing ``position``; its id is stable for the same salt."""
    digest = hashlib.sha256(f"{salt}|{position.token}|{position.amount}".encode()).hexdigest()
    side = Side.SELL if position.amount > 0 else Side.BUY
    return OrderIntent(f"sb-rk-{digest[:16]}", position.token, MarketKind.PERP, side,
                       abs(position.amount), reduce_only=True, reason=why)


class RiskWatch:
    def __init__(self, exchange: ExchangePort, store: StateStore, executor: Executor,
                 limits: RiskLimits, log: Any,
                 should_stop: Callable[[], bool] | None = None,
                 watch_liquidations: bool = False) -> None:
        """``watch_liquidations``: look for perps the venue closed on its own (on a venue; the
        paper replay logs its own liquidations)."""
        self.exchange = exchange
        self.watch_liquidations = watch_liquidations
        self.store = store
        self.executor = executor
        self.limits = limits
        self.log = log
        self.should_stop = should_stop or (lambda: False)

    @property
    def killed(self) -> bool:
        return self.store.active_kill_switch() is not None

    def kill_action(self) -> str | None:
        """What the spot book does while the switch is tripped (None: armed).

        The configured action answers a *loss* (a drawdown trip). A trip for repeated failed
        jobs says the bot cannot see or reach the venue, not that the strategy lost: it
        closes perps (the risk watch does) and freezes spot, rather than selling the book at
        the first price after a maintenance window.
        """
        trip = self.store.active_kill_switch()
        if trip is None:
            return None
        if trip.reason.startswith(DRAWDOWN_TRIP):
            return self.limits.kill_switch_action
        return "freeze"

    def funding_blocked(self) -> set[str]:
        return set(self.store.get(FUNDING_BLOCK_KEY) or [])

    def run(self, portfolio: PortfolioSource, salt: str,
            consecutive_failures: int = 0) -> list[str]:
        """Run every protective step; returns the names of the steps that failed.

        ``portfolio`` may be a function that reads it: only the kill switch needs balances
        and prices, and a failure to read them must not cost the stop watchdog its turn.
        ``salt`` must be unique per run (the ids of the orders this run sends derive from it).
        """
        report = ExecutionReport()
        steps: tuple[tuple[str, Callable[[], None]], ...] = (
            ("stop_watchdog", lambda: self._watchdog(salt, report)),
            ("kill_switch", lambda: self._kill_switch(portfolio, consecutive_failures, salt,
                                                      report)),
            ("funding_exit", lambda: self._funding_exits(salt, report)),
            ("liquidation_buffer", lambda: self._liquidation_buffer(salt, report)),
        )
        failed: list[str] = []
        for name, step in steps:
            if self.should_stop():
                break
            try:
                step()
            except Exception as exc:  # one step's failure must not skip the rest
                failed.append(name)
                self.log.error("risk.step_failed", step=name, error=str(exc),
                               error_type=type(exc).__name__)
        return failed

    # -- the steps --------------------------------------------------------------------------
    def _watchdog(self, salt: str, report: ExecutionReport) -> None:
        """Every leveraged position has a live stop covering all of it, or is closed.

        First, what the venue did alone: journalled stops it no longer shows open are
        settled (a fired one is logged once), then perps gone without an order of ours."""
        live = self._live_perps()
        resting = [row for row in self.store.orders((OrderStatus.OPEN,))
                   if row.order_type == "stop_market"]
        if not live and not resting and not self.watch_liquidations:
            return
        open_stops = (self.exchange.fetch_open_orders(trigger=True) if live or resting
                      else [])
        errors: list[str] = []
        self._settle_gone_stops(resting, open_stops, errors)
        if self.watch_liquidations:
            self._liquidations(live, {o.client_id for o in open_stops})
        if not live:
            if errors:
                raise ExchangeError("; ".join(errors))
            return
        covered: dict[str, Decimal] = {}
        for stop in open_stops:
            covered[stop.token] = covered.get(stop.token, Decimal(0)) + stop.amount
        planned = self.store.get(STOP_DISTANCES_KEY) or {}
        for position in positions_missing_stops(live, covered):
            if self.should_stop():
                return
            # The distance the leg was planned with (percent or ATR), else the risk default
            # (an adopted position, or one opened before this was recorded).
            distance = float(planned.get(position.token, self.limits.stop_loss_fraction))
            crossed = stop_crossed(position, stop_price_for(position, distance))
            refused = self.store.consecutive_stop_failures(position.token)
            action = ("close" if crossed or refused >= MAX_STOP_ATTEMPTS else "replace")
            self.log.warning("stoploss.missing", token=position.token,
                             amount=str(position.amount),
                             covered=str(covered.get(position.token, Decimal(0))),
                             action=action)
            try:
                if crossed:
                    # Unprotected past its stop level: the stop would have fired, and a venue
                    # refuses a stop that would trigger at once. Do what it would have done.
                    self.close_fully(position, salt, "stop level crossed while unprotected",
                                     report)
                elif refused >= MAX_STOP_ATTEMPTS:
                    self.log.error("stoploss.unplaceable", token=position.token,
                                   attempts=refused, amount=str(position.amount),
                                   action="close")
                    self.close_fully(position, salt,
                                     f"stop refused {refused} times: closing unprotected", report)
                else:
                    # Cancels any undersized stop once a full-size one is confirmed.
                    before = report.stops_failed
                    self.executor.protect({position.token}, {}, distance, salt, report)
                    if report.stops_failed > before:
                        errors.append(f"{position.token}: stop not confirmed")
            except ExchangeError as exc:  # the next position still gets its turn
                errors.append(f"{position.token}: {exc}")
        if errors:
            raise ExchangeError("; ".join(errors))

    def _settle_gone_stops(self, resting: list[OrderRow], open_stops: list[OrderResult],
                           errors: list[str]) -> None:
        """Look up each journalled open stop the venue no longer lists open (fired, or
        cancelled outside the bot) and journal its answer: a fired one is logged
        ``stoploss.triggered`` between cycles, not a cycle later. One lookup per stop gone."""
        listed = {o.client_id for o in open_stops}
        for row in resting:
            if row.client_id in listed:
                continue
            try:
                known = self.exchange.fetch_order_by_client_id(
                    row.client_id, row.token, MarketKind(row.market), trigger=True)
                if known is not None:
                    journal_answer(self.store, known, self.log)
            except (ExchangeError, JournalConflict) as exc:  # asked again next tick
                errors.append(f"{row.token}: stop {row.client_id} lookup: {exc}")

    def _liquidations(self, live: dict[str, PerpPosition], open_stop_ids: set[str]) -> None:
        """A perp held at the previous tick and gone now, which our journalled fills since
        then do not explain, was closed by the venue (a liquidation) or by hand: logged
        ``position.liquidated`` once. A token with an order of ours still unsettled waits."""
        saved: dict[str, Any] = self.store.get(HELD_KEY) or {}
        if not live and not saved:
            return
        watermark = self.store.last_fill_id()
        busy: set[str] | None = None
        held: dict[str, Any] = {}
        for token, seen in saved.items():
            if token in live:
                continue
            if busy is None:
                busy = {r.token for r in self.store.orders(UNSETTLED)
                        if r.market == MarketKind.PERP.value
                        and r.client_id not in open_stop_ids}
            if token in busy:
                held[token] = seen  # judged once the journal knows what our order did
                continue
            before = Decimal(seen["amount"])
            expected = before + self.store.perp_change_since(token, int(seen["fill"]))
            if expected * before > 0:
                self.log.error("position.liquidated", token=token, amount=str(-expected),
                               price=seen.get("price"), cash_delta=None,
                               detail="gone from the venue with no order of ours explaining "
                                      "it: liquidated (price: its last liquidation price) "
                                      "or closed by hand")
        for token, position in live.items():
            price = position.liquidation_price or position.mark_price
            held[token] = {"amount": str(position.amount), "price": str(price),
                           "fill": watermark}
        if held != saved:
            self.store.put(HELD_KEY, held)

    def _kill_switch(self, portfolio: PortfolioSource, consecutive_failures: int, salt: str,
                     report: ExecutionReport) -> None:
        if self.killed:
            # Tripped earlier: whatever a partial or failed close left behind goes now.
            for position in self._live_perps().values():
                self.close_fully(position, salt, "kill switch: remainder", report)
            return
        if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            # Checked before reading the book: the failures may be exactly that read.
            self.trip(None, f"{consecutive_failures} consecutive failed jobs >= "
                            f"{MAX_CONSECUTIVE_FAILURES}", salt, report)
            return
        book = portfolio() if callable(portfolio) else portfolio
        equity = book.equity()
        high_water = self._rebaselined(Decimal(self.store.get(HIGH_WATER_KEY) or 0), book)
        high_water = max(high_water, equity)
        self.store.put(HIGH_WATER_KEY, str(high_water))
        reason = kill_switch_reason(equity, high_water, consecutive_failures, self.limits,
                                    MAX_CONSECUTIVE_FAILURES)
        if reason is not None:
            self.trip(equity, reason, salt, report)

    def _rebaselined(self, high_water: Decimal, book: Portfolio) -> Decimal:
        """The high-water mark moved by any deposit or withdrawal since the last reading, so
        money the user moves is never read as a gain or a loss (see :mod:`bot.domain.flows`)."""
        now = Reading.of(book, self.store.fill_count())
        saved = self.store.get(LAST_READING_KEY)
        self.store.put(LAST_READING_KEY, now.to_dict())
        if not saved or high_water <= 0:
            return high_water
        flow = external_flow(Reading.from_dict(saved), now, EXTERNAL_FLOW_THRESHOLD)
        if flow is None:
            return high_water
        rebased = rebased_high_water(high_water, flow, now.equity)
        self.log.warning("equity.external_flow", amount=str(flow.quantize(Decimal("0.01"))),
                         kind="deposit" if flow > 0 else "withdrawal",
                         equity=str(now.equity.quantize(Decimal("0.01"))),
                         high_water_before=str(high_water.quantize(Decimal("0.01"))),
                         high_water_after=str(rebased.quantize(Decimal("0.01"))))
        return rebased

    def _funding_exits(self, salt: str, report: ExecutionReport) -> None:
        blocked = self.funding_blocked()
        perps = self._live_perps()
        if not perps and not blocked:
            return
        rates = self.exchange.fetch_funding_rates(sorted(set(perps) | blocked))
        for position, apr in excessive_funding(perps, rates, self.limits):
            if self.should_stop():
                return
            self.log.warning("funding.exit", token=position.token, side=position.side.value,
                             apr=round(apr, 4), threshold=self.limits.funding_exit_apr)
            blocked.add(position.token)
            self.store.put(FUNDING_BLOCK_KEY, sorted(blocked))
            self.close_fully(position, salt, f"funding {apr:.1%} APR", report)
            if position.token not in self._live_perps():
                # Only once the close is confirmed: a stop must never come off a position
                # that is still open (a close refused, or filled in part).
                self._cancel_stops(position.token)
        rearm = self.limits.funding_exit_apr * FUNDING_REARM_RATIO
        for token in sorted(blocked):
            rate = rates.get(token)
            if rate is not None and abs(rate.annualised) < rearm:
                blocked.discard(token)
                self.log.info("funding.normalised", token=token, apr=round(rate.annualised, 4))
        self.store.put(FUNDING_BLOCK_KEY, sorted(blocked))

    def _liquidation_buffer(self, salt: str, report: ExecutionReport) -> None:
        buffer = self.limits.liquidation_buffer_fraction
        for position, distance in near_liquidation(self._live_perps(), buffer):
            if self.should_stop():
                return
            self.log.warning("risk.blocked", rule="liquidation_buffer", token=position.token,
                             detail=f"liquidation {distance:.1%} from mark < {buffer:.0%}: "
                                    "closing")
            self.close_fully(position, salt, "liquidation buffer", report)

    # -- actions ----------------------------------------------------------------------------
    def close_fully(self, position: PerpPosition, salt: str, why: str,
                    report: ExecutionReport) -> None:
        """Close ``position`` with reduce-only market orders until it is gone, the venue
        stops filling, or ``MAX_CLOSE_ROUNDS`` orders were sent: a thin book fills a close
        in part, and a risk exit must not leave the rest behind until the next tick."""
        current: PerpPosition | None = position
        for _ in range(MAX_CLOSE_ROUNDS):
            if current is None or current.amount == 0 or self.should_stop():
                return
            result = self.executor.submit(close_intent(current, salt, why), None, report)
            if result is None or result.filled <= 0:
                return
            current = self._live_perps().get(position.token)

    def trip(self, equity: Decimal | None, reason: str, salt: str,
             report: ExecutionReport) -> None:
        """Close every leveraged position, cancel every open order, refuse new risk.

        The trip is recorded first, so a close that fails (the venue being what failed)
        leaves the switch tripped and the next tick closes what is left."""
        high_water = self.store.get(HIGH_WATER_KEY)
        try:
            at: datetime | None = self.exchange.now()
        except ExchangeError:
            at = None  # the venue may be what is failing: the trip must not wait for it
        self.store.trip_kill_switch(reason, equity,
                                    Decimal(high_water) if high_water else None, at=at)
        shown = None if equity is None else str(equity.quantize(Decimal("0.01")))
        try:
            positions = self._live_perps()
        except ExchangeError:
            self.log.error("killswitch.tripped", reason=reason, equity=shown, closed=None)
            raise  # the next tick closes them (a tripped switch closes every remainder)
        self.log.error("killswitch.tripped", reason=reason, equity=shown,
                       closed=len(positions))
        for position in positions.values():
            self.close_fully(position, salt, f"kill switch: {reason}", report)
        still_open = set(self._live_perps())  # a close the book filled only in part
        for trigger in (True, False):
            for order in self.exchange.fetch_open_orders(trigger=trigger):
                if trigger and order.token in still_open:
                    continue  # its stop protects what is left until the next tick closes it
                try:
                    self.exchange.cancel_order(order)
                except ExchangeError as exc:
                    self.log.warning("order.cancel_failed", client_id=order.client_id,
                                     reason=str(exc))

    def _cancel_stops(self, token: str) -> None:
        """Drop a closed position's stops ourselves: not every venue cancels them on close."""
        for order in self.exchange.fetch_open_orders(trigger=True):
            if order.token == token:
                try:
                    self.exchange.cancel_order(order)
                except ExchangeError as exc:
                    self.log.warning("order.cancel_failed", client_id=order.client_id,
                                     reason=str(exc))

    def _live_perps(self) -> dict[str, PerpPosition]:
        return {p.token: p for p in self.exchange.fetch_positions() if p.amount != 0}


def clear_kill_switch(store: StateStore, cleared_by: str = "resume") -> KillSwitchRow | None:
    """Re-arm after a trip (``sectorbot resume``); returns the trip cleared, if any.

    The high-water mark restarts from the next equity reading, otherwise the same drawdown
    would trip the switch again at once.
    """
    tripped = store.clear_kill_switch(cleared_by)
    store.put(HIGH_WATER_KEY, None)
    store.put(LAST_READING_KEY, None)
    return tripped
