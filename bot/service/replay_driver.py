"""Drive the paper exchange through replayed history: the simulated clock and its marks.

Each step moves the clock forward by ``step_days``, pushes the closes, intraday ranges and
funding of the elapsed period into the paper exchange (which settles funding, triggers stops
and liquidates), and persists the cursor so a restarted daemon resumes where it stopped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.domain.models import MarketKind, MarketSnapshot
from bot.exchange.paper import PaperEvent, PaperExchange
from bot.sources.replay import ReplayData
from bot.store.repo import StateStore

CURSOR_KEY = "replay.cursor"
PAPER_KEY = "paper.state"
FUNDING_MAX_AGE = timedelta(days=1)


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


class ReplaySignals:
    """The replayed data as a :class:`bot.service.cycle.SignalSource`."""

    def __init__(self, data: ReplayData, lookback_days: int) -> None:
        self.data = data
        self.lookback_days = lookback_days

    def snapshot(self, as_of: datetime) -> MarketSnapshot:
        return self.data.snapshot(as_of, lookback_days=self.lookback_days)


class ReplayDriver:
    def __init__(self, data: ReplayData, exchange: PaperExchange, store: StateStore,
                 start: date, step_days: int, log: Any, end: date | None = None) -> None:
        self.data = data
        self.exchange = exchange
        self.store = store
        self.step = timedelta(days=step_days)
        self.log = log
        saved = store.get(CURSOR_KEY)
        # The cursor is the time of the last completed step; before any step it sits one step
        # before the start, so the first step lands exactly on ``start``.
        self.cursor = (datetime.fromisoformat(saved) if saved
                       else day_start(start) - self.step)
        self.resumed = saved is not None
        last = data.last_day if end is None else min(end, data.last_day)
        self.end = day_start(last + timedelta(days=1))

    def peek(self) -> datetime | None:
        nxt = self.cursor + self.step
        return nxt if nxt <= self.end else None

    def advance(self) -> datetime | None:
        """Move the clock one step and settle the period on the paper exchange."""
        nxt = self.peek()
        if nxt is None:
            return None
        ranges = {}
        for token in self.data.tokens:
            rng = self.data.candle_range(token, self.cursor, nxt)
            if rng is not None:
                ranges[token] = (rng.low, rng.high)
        # Only funding settled recently: a rate from a data set that ended long ago must not
        # be charged forever. Each settlement of the period is charged as it happened.
        funding = self.data.funding_rates(nxt, max_age=FUNDING_MAX_AGE)
        settlements = {t: self.data.funding_settlements(t, self.cursor, nxt)
                       for t in self.data.funding_tokens}
        events = self.exchange.update_market(nxt, self.data.marks(nxt), funding, ranges,
                                             settlements={t: s for t, s in settlements.items()
                                                          if s})
        for ev in events:
            self._log_event(ev, nxt)
        self.cursor = nxt
        return nxt

    def persist(self) -> None:
        # One transaction: a crash between two writes would pair the account with the
        # wrong step.
        self.store.put_many({PAPER_KEY: self.exchange.to_state(),
                             CURSOR_KEY: self.cursor.isoformat()})

    def _log_event(self, ev: PaperEvent, when: datetime) -> None:
        fields = dict(token=ev.token, amount=str(ev.amount), price=str(ev.price),
                      cash_delta=str(ev.cash_delta), detail=ev.detail)
        if ev.kind == "stop_triggered":
            self.log.warning("stoploss.triggered", client_id=ev.client_id, **fields)
            if ev.client_id:
                order = self.exchange.fetch_order_by_client_id(ev.client_id, ev.token,
                                                               MarketKind.PERP, trigger=True)
                if order is not None:
                    self.store.journal_result(order)
        elif ev.kind == "liquidated":
            self.log.error("position.liquidated", **fields)
        elif ev.kind == "funding":
            self.log.info("funding.paid", **fields)
            self.store.record_funding(ev.token, when, ev.cash_delta)
        else:
            self.log.info(f"paper.{ev.kind}", client_id=ev.client_id, **fields)
