"""The risk watch: runs more often than the rotation cycle and defends open positions.

In order: the kill switch (drawdown from the high-water mark, or repeated job failures),
funding exits with hysteresis, then the stop watchdog (any leveraged position without a live
stop gets one). Decisions are the pure rules of :mod:`bot.domain.risk`; this module only reads
the venue, acts through the executor and remembers state in the store. A position too close
to its liquidation price is closed before the venue takes the margin.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from bot.domain.models import MarketKind, OrderIntent, PerpPosition, Portfolio, Side
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
from bot.store.repo import StateStore
from bot.store.schema import KillSwitchRow

HIGH_WATER_KEY = "risk.high_water"
FUNDING_BLOCK_KEY = "risk.funding_blocked"
MAX_CONSECUTIVE_FAILURES = 5
FUNDING_REARM_RATIO = 0.5
MAX_CLOSE_ROUNDS = 5
"""Reduce-only orders one risk exit may send for one position when the book fills in part."""
"""Hysteresis: a token closed for excessive funding may be re-entered only once its funding
is back below this share of the exit threshold."""


def close_intent(position: PerpPosition, salt: str, why: str) -> OrderIntent:
    """A reduce-only market order closing ``position``; its id is stable for the same salt."""
    digest = hashlib.sha256(f"{salt}|{position.token}|{position.amount}".encode()).hexdigest()
    side = Side.SELL if position.amount > 0 else Side.BUY
    return OrderIntent(f"sb-rk-{digest[:16]}", position.token, MarketKind.PERP, side,
                       abs(position.amount), reduce_only=True, reason=why)


class RiskWatch:
    def __init__(self, exchange: ExchangePort, store: StateStore, executor: Executor,
                 limits: RiskLimits, log: Any) -> None:
        self.exchange = exchange
        self.store = store
        self.executor = executor
        self.limits = limits
        self.log = log

    @property
    def killed(self) -> bool:
        return self.store.active_kill_switch() is not None

    def funding_blocked(self) -> set[str]:
        return set(self.store.get(FUNDING_BLOCK_KEY) or [])

    def run(self, portfolio: Portfolio, salt: str, consecutive_failures: int = 0) -> None:
        report = ExecutionReport()
        equity = portfolio.equity()
        high_water = max(Decimal(self.store.get(HIGH_WATER_KEY) or 0), equity)
        self.store.put(HIGH_WATER_KEY, str(high_water))
        if not self.killed:
            reason = kill_switch_reason(equity, high_water, consecutive_failures, self.limits,
                                        MAX_CONSECUTIVE_FAILURES)
            if reason is not None:
                self.trip(portfolio, reason, salt, report)
                return
        else:
            # Tripped earlier: whatever a partial or failed close left behind goes now.
            for position in self._live_perps().values():
                self.close_fully(position, salt, "kill switch: remainder", report)
        self._funding_exits(portfolio, salt, report)
        buffer = self.limits.liquidation_buffer_fraction
        for position, distance in near_liquidation(self._live_perps(), buffer):
            self.log.warning("risk.blocked", rule="liquidation_buffer", token=position.token,
                             detail=f"liquidation {distance:.1%} from mark < {buffer:.0%}: "
                                    "closing")
            self.close_fully(position, salt, "liquidation buffer", report)
        live = self._live_perps()
        covered: dict[str, Decimal] = {}
        if live:
            for stop in self.exchange.fetch_open_orders(trigger=True):
                covered[stop.token] = covered.get(stop.token, Decimal(0)) + stop.amount
        planned = self.store.get(STOP_DISTANCES_KEY) or {}
        for position in positions_missing_stops(live, covered):
            # The distance the leg was planned with (percent or ATR), else the risk default
            # (an adopted position, or one opened before this was recorded).
            distance = float(planned.get(position.token, self.limits.stop_loss_fraction))
            crossed = stop_crossed(position, stop_price_for(position, distance))
            self.log.warning("stoploss.missing", token=position.token,
                             amount=str(position.amount),
                             covered=str(covered.get(position.token, Decimal(0))),
                             action="close" if crossed else "replace")
            if crossed:
                # Unprotected past its stop level: the stop would have fired, and a venue
                # refuses a stop that would trigger at once. Do what the stop would have done.
                self.close_fully(position, salt, "stop level crossed while unprotected",
                                 report)
            else:
                # Cancels any undersized stop and places one for the whole position.
                self.executor.protect({position.token}, {}, distance, salt, report)

    def close_fully(self, position: PerpPosition, salt: str, why: str,
                    report: ExecutionReport) -> None:
        """Close ``position`` with reduce-only market orders until it is gone, the venue
        stops filling, or ``MAX_CLOSE_ROUNDS`` orders were sent: a thin book fills a close
        in part, and a risk exit must not leave the rest behind until the next tick."""
        current: PerpPosition | None = position
        for _ in range(MAX_CLOSE_ROUNDS):
            if current is None or current.amount == 0:
                return
            result = self.executor.submit(close_intent(current, salt, why), None, report)
            if result is None or result.filled <= 0:
                return
            current = self._live_perps().get(position.token)

    def trip(self, portfolio: Portfolio, reason: str, salt: str,
             report: ExecutionReport) -> None:
        """Close every leveraged position, cancel every open order, refuse new risk."""
        high_water = self.store.get(HIGH_WATER_KEY)
        self.store.trip_kill_switch(reason, portfolio.equity(),
                                    Decimal(high_water) if high_water else None)
        for position in portfolio.perps.values():
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
        self.log.error("killswitch.tripped", reason=reason,
                       equity=str(portfolio.equity().quantize(Decimal("0.01"))),
                       closed=len(portfolio.perps))

    def _funding_exits(self, portfolio: Portfolio, salt: str, report: ExecutionReport) -> None:
        if not portfolio.perps and not self.funding_blocked():
            return
        tokens = set(portfolio.perps) | self.funding_blocked()
        rates = self.exchange.fetch_funding_rates(sorted(tokens))
        blocked = self.funding_blocked()
        for position, apr in excessive_funding(dict(portfolio.perps), rates, self.limits):
            self.log.warning("funding.exit", token=position.token, side=position.side.value,
                             apr=round(apr, 4), threshold=self.limits.funding_exit_apr)
            self.close_fully(position, salt, f"funding {apr:.1%} APR", report)
            self._cancel_stops(position.token)
            blocked.add(position.token)
        rearm = self.limits.funding_exit_apr * FUNDING_REARM_RATIO
        for token in sorted(blocked):
            rate = rates.get(token)
            if rate is not None and abs(rate.annualised) < rearm:
                blocked.discard(token)
                self.log.info("funding.normalised", token=token, apr=round(rate.annualised, 4))
        self.store.put(FUNDING_BLOCK_KEY, sorted(blocked))

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
    return tripped
