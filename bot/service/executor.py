"""Send planned orders through the exchange port with a write-ahead journal.

The journal entry is committed before the request leaves; the venue's answer is committed
after. A client id already in the journal is never sent again blindly: the venue is asked
about it first. That one rule is what keeps a retry or a restart from doubling an order.

Stops follow their leg: a perp leg that changed a position gets its stop right after it,
before the next leg is sent, and a new stop replaces the old one only once the venue shows
it open. A failure in one leg (even a lookup that raised) is journalled and logged and never
leaves the legs already filled without their stops.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from bot.domain.models import (
    MarketKind,
    OrderIntent,
    OrderResult,
    OrderStatus,
    OrderType,
    PerpPosition,
    PositionSide,
    Side,
)
from bot.domain.planner import Plan
from bot.domain.risk import price_deviation, slippage_guarded, stop_price_for
from bot.exchange.port import ExchangeError, ExchangePort, OrderRejected, OutcomeUnknown
from bot.service.reconcile import journal_answer
from bot.store.journal import JournalConflict
from bot.store.repo import StateStore

MAX_STOP_GENERATIONS = 50
SPENT_STOP = frozenset({OrderStatus.CANCELED, OrderStatus.TRIGGERED, OrderStatus.FILLED,
                        OrderStatus.EXPIRED})
"""Journal states in which a stop id is used up (a refused stop may be sent again)."""
STOP_DISTANCES_KEY = "risk.stop_distances"
"""kv: the stop distance each token's leg was last planned with (fraction of entry)."""
#: journal states in which an order may exist on the venue (a resend must look it up first)
MAYBE_SENT = frozenset({OrderStatus.PENDING.value, OrderStatus.UNKNOWN.value,
                        OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value})
#: final states in which a market order can have filled only part of its amount
#: (PARTIALLY_FILLED is not one: the order is still matching and reconciliation follows it)
DONE_PARTIAL = frozenset({OrderStatus.EXPIRED, OrderStatus.CANCELED})


@dataclass
class ExecutionReport:
    sent: int = 0
    filled: int = 0
    rejected: int = 0
    unknown: int = 0
    stops_placed: int = 0
    blocked: int = 0
    partial: int = 0
    conflicts: int = 0
    stops_failed: int = 0
    halted: bool = False
    """True when a shutdown request stopped the plan before its last order."""
    touched_perps: set[str] = field(default_factory=set)


def stop_client_id(position: PerpPosition, trigger: Decimal, salt: str) -> str:
    """A stable id for the stop protecting this exact position, so re-placement is idempotent."""
    digest = hashlib.sha256(
        f"{salt}|{position.token}|{position.amount}|{trigger}".encode()
    ).hexdigest()[:16]
    return f"sb-st-{digest}"


class Executor:
    """Places a plan's orders, then protects every perp the plan touched with a fresh stop."""

    def __init__(self, exchange: ExchangePort, store: StateStore, log: Any,
                 margin_mode: str = "isolated", max_slippage: float | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.exchange = exchange
        self.store = store
        self.log = log
        self.margin_mode = margin_mode
        self.max_slippage = max_slippage
        self.should_stop = should_stop or (lambda: False)

    def execute(self, plan: Plan, decision_id: str, default_stop: float) -> ExecutionReport:
        """Send the plan's orders in order, each perp leg followed by its stop.

        The plan is marked complete once every order went through (whatever the venue
        answered), so a later run of the same decision plans anew; a run cut short (a
        shutdown request, a crash) leaves it open, and a re-run resumes it under the same ids.
        """
        report = ExecutionReport()
        for skip in plan.skipped:
            self.log.info("order.skipped", token=skip.token, market=skip.market.value,
                          reason=skip.reason, decision_id=decision_id)
        if plan.plan_id and plan.skipped:
            self.store.record_skips(plan.plan_id, [(k.token, k.market.value, k.reason)
                                                   for k in plan.skipped])
        if plan.stop_distance:
            # Recorded first: the risk watch re-protects between cycles (and after a crash
            # in this plan) and must use the distance the plan chose, not its fallback.
            known = dict(self.store.get(STOP_DISTANCES_KEY) or {})
            known.update({t: float(d) for t, d in plan.stop_distance.items()})
            self.store.put(STOP_DISTANCES_KEY, known)
        unprotected: set[str] = set()
        try:
            for intent in plan.intents:
                if self.should_stop():
                    report.halted = True
                    self.log.info("order.skipped", token=intent.token,
                                  market=intent.market.value, client_id=intent.client_id,
                                  reason="shutting down: no new order",
                                  decision_id=decision_id)
                    break
                changed = self._send_leg(intent, decision_id, plan.plan_id, report)
                if changed and intent.market is MarketKind.PERP:
                    report.touched_perps.add(intent.token)
                    unprotected.add(intent.token)
                    self._guarded_protect({intent.token}, plan.stop_distance, default_stop,
                                          plan.plan_id, report)
                    unprotected.discard(intent.token)
        finally:
            if unprotected:  # an unexpected error between a fill and its stop
                self._guarded_protect(unprotected, plan.stop_distance, default_stop,
                                      plan.plan_id, report)
        if not report.halted:
            self.store.complete_plan(plan.plan_id)
        return report

    def _send_leg(self, intent: OrderIntent, decision_id: str, plan_id: str,
                  report: ExecutionReport) -> bool:
        """Submit one leg; True when the position may have changed (a fill, or no answer).

        An adapter error after the journal entry (a lookup that failed after a timeout, a
        read inside the pre-send checks) leaves the order's fate open: it is journalled
        UNKNOWN for the next reconciliation, and the leg counts as possibly filled so its
        position still gets a stop.
        """
        try:
            result = self.submit(intent, decision_id, report, plan_id=plan_id)
        except JournalConflict as exc:
            report.conflicts += 1
            self.log.error("order.id_conflict", client_id=intent.client_id,
                           token=intent.token, reason=str(exc))
            return False
        except ExchangeError as exc:
            report.unknown += 1
            self.store.journal_failure(intent.client_id, OrderStatus.UNKNOWN, str(exc))
            self.log.warning("order.unknown", client_id=intent.client_id, token=intent.token,
                             reason=str(exc))
            return True
        if result is None:
            history = self.store.order_history(intent.client_id)
            return bool(history) and history[-1].status == OrderStatus.UNKNOWN.value
        return result.filled > 0 or result.status is OrderStatus.UNKNOWN

    def _guarded_protect(self, tokens: set[str], distances: Mapping[str, float],
                         default_stop: float, salt: str, report: ExecutionReport) -> None:
        """``protect``, with a failure logged rather than raised: the risk watch's stop
        watchdog covers the position on its next tick, and the remaining legs still go."""
        try:
            self.protect(tokens, distances, default_stop, salt, report)
        except (ExchangeError, JournalConflict) as exc:
            report.stops_failed += 1
            self.log.error("stoploss.failed", tokens=sorted(tokens), reason=str(exc))

    def submit(self, intent: OrderIntent, decision_id: str | None,
               report: ExecutionReport, plan_id: str | None = None) -> OrderResult | None:
        """Journal, send, journal. Returns the venue's answer, or None if rejected/unknown."""
        if self._slipped(intent, report):
            return None
        if not self.store.journal_intent(intent, decision_id, plan_id):
            known = self._lookup(intent)
            if known is not None:
                self.log.info("order.recovered", client_id=intent.client_id,
                              status=known.status.value)
                journal_answer(self.store, known, self.log)
                return known
            # Journalled but unknown to the venue: the crash came before the send.
        if intent.market is MarketKind.PERP and intent.leverage is not None:
            try:
                # Leverage first: a venue adapter refuses a leverage above the cap before any
                # request, so a refused order leaves no trace (not even a margin-mode change).
                self.exchange.set_leverage(intent.token, intent.leverage)
                self.exchange.set_margin_mode(intent.token, self.margin_mode)
            except ExchangeError as exc:
                self.store.journal_failure(intent.client_id, OrderStatus.REJECTED, str(exc))
                self.log.warning("order.rejected", client_id=intent.client_id,
                                 token=intent.token, reason=f"leverage: {exc}")
                report.rejected += 1
                return None
        self.log.info("order.submitted", client_id=intent.client_id, token=intent.token,
                      market=intent.market.value, side=intent.side.value,
                      type=intent.order_type.value, amount=str(intent.amount),
                      trigger_price=None if intent.trigger_price is None else
                      str(intent.trigger_price), reduce_only=intent.reduce_only,
                      reason=intent.reason)
        report.sent += 1
        try:
            result = self.exchange.place_order(intent)
        except OrderRejected as exc:
            self.store.journal_failure(intent.client_id, OrderStatus.REJECTED, str(exc))
            self.log.warning("order.rejected", client_id=intent.client_id, token=intent.token,
                             reason=str(exc))
            report.rejected += 1
            return None
        except OutcomeUnknown as exc:
            found = self._lookup(intent)
            if found is None:
                self.store.journal_failure(intent.client_id, OrderStatus.UNKNOWN, str(exc))
                self.log.warning("order.unknown", client_id=intent.client_id, reason=str(exc))
                report.unknown += 1
                return None
            result = found
        journal_answer(self.store, result, self.log)
        self._check_fill_price(intent, result)
        if 0 < result.filled < intent.amount and result.status in DONE_PARTIAL:
            # The venue's book ran out (or the order was cut): the fill is journalled, the stop
            # is sized on the position as it stands, and the next cycle plans the remainder.
            report.partial += 1
            self.log.warning("order.partially_filled", client_id=result.client_id,
                             token=result.token, market=result.market.value,
                             filled=str(result.filled), amount=str(intent.amount),
                             status=result.status.value)
        if result.status is OrderStatus.FILLED:
            report.filled += 1
            self.log.info("order.filled", client_id=result.client_id, token=result.token,
                          market=result.market.value, side=result.side.value,
                          amount=str(result.filled), price=str(result.average_price),
                          fee=str(result.fee))
        return result

    def _slipped(self, intent: OrderIntent, report: ExecutionReport) -> bool:
        """The slippage guard: True (and logged ``risk.blocked``) when a new market order
        that adds risk would trade too far from the price it was planned at.

        The planner sized the order at a price read earlier in the cycle; if the venue has
        moved past ``max_slippage`` since, the size and the decision behind it are stale, so
        the leg waits for the next cycle instead of chasing the market. An order the journal
        says may already be on the venue (pending, unknown, open) is exempt: only a lookup
        may settle it. One that never left (rejected, expired unsent) is checked again.
        """
        if self.max_slippage is None or not slippage_guarded(intent):
            return False
        history = self.store.order_history(intent.client_id)
        if history and history[-1].status in MAYBE_SENT:
            return False
        reference = intent.reference_price
        assert reference is not None  # slippage_guarded checked it
        try:
            current = self.exchange.fetch_prices([intent.token], intent.market).get(intent.token)
        except ExchangeError as exc:
            current, why = None, f"price unavailable: {exc}"
        else:
            why = "no price"
        if current is not None and current > 0:
            deviation = price_deviation(reference, current)
            if deviation <= self.max_slippage:
                return False
            why = f"price moved {deviation:.2%} from {reference} to {current}"
        report.blocked += 1
        self.log.warning("risk.blocked", rule="slippage", token=intent.token, detail=why,
                         client_id=intent.client_id, market=intent.market.value,
                         reference_price=str(reference),
                         current_price=None if current is None else str(current),
                         limit=self.max_slippage)
        return True

    def _check_fill_price(self, intent: OrderIntent, result: OrderResult) -> None:
        """A fill beyond the slippage limit cannot be undone, but it must be seen."""
        if (self.max_slippage is None or intent.reference_price is None
                or intent.reference_price <= 0 or result.average_price is None
                or result.filled <= 0 or intent.order_type is not OrderType.MARKET):
            return
        deviation = price_deviation(intent.reference_price, result.average_price)
        if deviation > self.max_slippage:
            self.log.warning("execution.slippage", client_id=intent.client_id,
                             token=intent.token, reference_price=str(intent.reference_price),
                             average_price=str(result.average_price),
                             deviation=round(deviation, 6), limit=self.max_slippage)

    def _lookup(self, intent: OrderIntent) -> OrderResult | None:
        return self.exchange.fetch_order_by_client_id(
            intent.client_id, intent.token, intent.market,
            trigger=intent.order_type is OrderType.STOP_MARKET)

    def protect(self, tokens: set[str], distances: Mapping[str, float], default_stop: float,
                salt: str, report: ExecutionReport) -> None:
        """Replace the stops of ``tokens`` with one sized to the position as it now stands.

        The new stop goes on first and the old ones come off only once the venue shows the
        new one open, so there is never a moment without a stop: a refused placement, or one
        whose answer never came (UNKNOWN), leaves the old stop in force (partial cover beats
        none, and the watchdog finishes the job). A token whose position is gone just loses
        its stops.
        """
        positions = {p.token: p for p in self.exchange.fetch_positions()}
        stops = [o for o in self.exchange.fetch_open_orders(trigger=True) if o.token in tokens]
        keep: set[str] = set()
        replaced: set[str] = set()
        for token in sorted(tokens):
            position = positions.get(token)
            if position is None or position.amount == 0:
                replaced.add(token)
                continue
            placed = self.place_stop(position, float(distances.get(token, default_stop)),
                                     salt, report)
            if placed is not None:
                keep.add(placed.client_id)  # may be a live stop recovered under its id
                replaced.add(token)
        for order in stops:
            if order.token in replaced and order.client_id not in keep:
                try:
                    self.exchange.cancel_order(order)
                except OrderRejected as exc:  # already gone (fired, or cancelled by hand)
                    self.log.warning("order.cancel_failed", client_id=order.client_id,
                                     reason=str(exc))
                    continue
                self.store.journal_result(_as_canceled(order))

    def _fresh_stop_id(self, position: PerpPosition, trigger: Decimal, salt: str) -> str:
        """The deterministic stop id, or its next generation if that id names a dead stop.

        Re-running the same decision (after a crash, or a cancelled stop) yields the same base
        id; "recovering" a cancelled or triggered stop under it would leave the position
        unprotected, so a spent id is never reused. Spent means the venue says the stop is
        over, or, since a venue forgets old orders, the journal does.
        """
        base = stop_client_id(position, trigger, salt)
        cid = base
        for generation in range(1, MAX_STOP_GENERATIONS):
            known = self.exchange.fetch_order_by_client_id(cid, position.token,
                                                           MarketKind.PERP, trigger=True)
            if known is not None and known.status is OrderStatus.OPEN:
                return cid
            if known is None and self.store.order_status(cid) not in SPENT_STOP:
                return cid
            cid = f"{base}-{generation}"
        raise OrderRejected(f"{MAX_STOP_GENERATIONS} spent stop ids for {position.token}")

    def place_stop(self, position: PerpPosition, distance: float, salt: str,
                   report: ExecutionReport) -> OrderResult | None:
        """Place a stop for the whole position; the stop if the venue shows it open, else
        None (refused, or an answer that stays unconfirmed after a lookup)."""
        trigger = stop_price_for(position, distance)
        side = Side.SELL if position.side is PositionSide.LONG else Side.BUY
        intent = OrderIntent(
            client_id=self._fresh_stop_id(position, trigger, salt), token=position.token,
            market=MarketKind.PERP, side=side, amount=abs(position.amount),
            order_type=OrderType.STOP_MARKET, trigger_price=trigger, reduce_only=True,
            reason=f"stop-loss {distance:.1%} from entry {position.entry_price}",
        )
        result = self.submit(intent, None, report, plan_id=salt)
        if result is not None and result.status is OrderStatus.UNKNOWN:
            # Acknowledged by id only: ask once more before relying on it (a venue may still
            # reject it after the answer); unreadable, it stays unconfirmed.
            with contextlib.suppress(ExchangeError):
                result = self._lookup(intent) or result
            if result.status is not OrderStatus.UNKNOWN:
                journal_answer(self.store, result, self.log)
        if result is None or result.status is not OrderStatus.OPEN:
            report.stops_failed += 1
            self.log.warning("stoploss.unconfirmed", token=position.token,
                             client_id=intent.client_id, trigger_price=str(trigger),
                             status=None if result is None else result.status.value)
            return None
        report.stops_placed += 1
        self.log.info("stoploss.placed", token=position.token, client_id=intent.client_id,
                      trigger_price=str(trigger), amount=str(intent.amount),
                      side=position.side.value)
        return result


def _as_canceled(order: OrderResult) -> OrderResult:
    return replace(order, status=OrderStatus.CANCELED)
