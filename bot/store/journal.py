"""The order journal and the plans its client ids come from: the write-ahead half of the store.

Every order is written here before it is sent and updated with every answer the venue gives.
The rules that keep an order from being doubled, lost or mistaken for another live here:
an id names one order (:class:`JournalConflict` otherwise), a fill is booked once and at the
price and fee of its own part, and a stale answer never takes a fill back.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Select, String, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from bot.domain.models import OrderIntent, OrderResult, OrderStatus
from bot.store.schema import (
    FillRow,
    OrderEventRow,
    OrderRow,
    PlanRow,
    PlanSkipRow,
    TransferRow,
)

STOP_CROSSED = "stop level crossed"
"""How the risk watch names the close of a position found past its stop level."""
FIRED = (OrderStatus.TRIGGERED.value, OrderStatus.FILLED.value)
"""Journal states of a stop that fired on the venue."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JournalConflict(RuntimeError):
    """A client id already names a different order in the journal (or on the venue).

    Binding one id to two orders is how fills get booked against the wrong order and a
    wanted order is taken for done, so the store refuses loudly instead of overwriting.
    """


def _intent_terms(token: str, market: str, side: str, order_type: str, amount: Decimal,
                  reduce_only: bool, trigger_price: Decimal | None,
                  price: Decimal | None) -> tuple[object, ...]:
    def norm(value: Decimal | None) -> str | None:
        return None if value is None else format(Decimal(value).normalize(), "f")

    return (token, market, side, order_type, norm(amount), bool(reduce_only),
            norm(trigger_price), norm(price))


def _describe(terms: tuple[object, ...]) -> str:
    token, market, side, order_type, amount, reduce_only, trigger, price = terms
    extra = "".join([" reduce-only" if reduce_only else "",
                     f" trigger {trigger}" if trigger is not None else "",
                     f" @ {price}" if price is not None else ""])
    return f"{side} {amount} {token} {market} {order_type}{extra}"


class OrderJournal:
    """Journal and plan methods of :class:`bot.store.repo.StateStore` (which provides
    ``session``: one committed transaction per call)."""

    def session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    # -- plans -----------------------------------------------------------------------------
    def begin_plan(self, decision_id: str) -> str:
        """The id of the plan about to be executed for ``decision_id``.

        The decision's newest plan if it is still open (the run that made it was cut short:
        a re-run must recognise the orders it may already have sent), else a new random id:
        random, so ids stay unique across a store that was deleted and started over on the
        same account, where a venue that remembers every id would answer with an old order.
        """
        with self.session() as s:
            open_plan = s.scalars(select(PlanRow).where(PlanRow.decision_id == decision_id)
                                  .order_by(PlanRow.created_at.desc()).limit(1)).first()
            if open_plan is not None and open_plan.completed_at is None:
                return open_plan.plan_id
            plan_id = f"p{secrets.token_hex(8)}"
            s.add(PlanRow(plan_id=plan_id, decision_id=decision_id, created_at=_utcnow()))
            return plan_id

    def complete_plan(self, plan_id: str) -> None:
        """Every order of the plan went through the executor: a re-run plans anew."""
        with self.session() as s:
            row = s.get(PlanRow, plan_id)
            if row is not None and row.completed_at is None:
                row.completed_at = _utcnow()

    def record_skips(self, plan_id: str, skips: Iterable[tuple[str, str, str]]) -> None:
        """Keep the legs a plan did not send, ``(token, market, reason)``, once per plan."""
        with self.session() as s:
            if s.scalar(select(PlanSkipRow.id).where(PlanSkipRow.plan_id == plan_id)
                        .limit(1)) is not None:
                return
            s.add_all(PlanSkipRow(plan_id=plan_id, token=t, market=m, reason=r)
                      for t, m, r in skips)

    def last_plan_skips(self) -> tuple[PlanRow | None, list[PlanSkipRow]]:
        """The newest plan and what it left out."""
        with self.session() as s:
            plan = s.scalars(select(PlanRow).order_by(PlanRow.created_at.desc()).limit(1)).first()
            if plan is None:
                return None, []
            return plan, list(s.scalars(select(PlanSkipRow)
                                        .where(PlanSkipRow.plan_id == plan.plan_id)
                                        .order_by(PlanSkipRow.id)))

    # -- wallet transfers ------------------------------------------------------------------
    def journal_transfer(self, amount: Decimal, to_wallet: str,
                         decision_id: str | None) -> TransferRow:
        """Write a transfer before it is sent (status ``pending``)."""
        now = _utcnow()
        row = TransferRow(transfer_id=f"tr-{secrets.token_hex(8)}", decision_id=decision_id,
                          amount=amount, to_wallet=to_wallet, status="pending",
                          created_at=now, updated_at=now)
        with self.session() as s:
            s.add(row)
        return row

    def settle_transfer(self, transfer_id: str, status: str, venue_id: str | None = None,
                        error: str | None = None) -> None:
        with self.session() as s:
            row = s.get(TransferRow, transfer_id)
            if row is not None:
                row.status, row.updated_at = status, _utcnow()
                row.venue_id = venue_id or row.venue_id
                row.error = error[:2000] if error else row.error

    def transfers(self, statuses: Iterable[str] | None = None) -> list[TransferRow]:
        with self.session() as s:
            q = select(TransferRow).order_by(TransferRow.created_at)
            if statuses is not None:
                q = q.where(TransferRow.status.in_(list(statuses)))
            return list(s.scalars(q))

    def plans(self, decision_id: str | None = None) -> list[PlanRow]:
        with self.session() as s:
            q = select(PlanRow).order_by(PlanRow.created_at, PlanRow.plan_id)
            if decision_id is not None:
                q = q.where(PlanRow.decision_id == decision_id)
            return list(s.scalars(q))

    # -- order journal ---------------------------------------------------------------------
    def journal_intent(self, intent: OrderIntent, decision_id: str | None,
                       plan_id: str | None = None) -> bool:
        """Record an order before sending it. False if this client id was already journalled
        for this very order; :class:`JournalConflict` if it names a different one."""
        now = _utcnow()
        wanted = _intent_terms(intent.token, intent.market.value, intent.side.value,
                               intent.order_type.value, intent.amount, intent.reduce_only,
                               intent.trigger_price, intent.price)
        with self.session() as s:
            row = s.get(OrderRow, intent.client_id)
            if row is not None:
                held = _intent_terms(row.token, row.market, row.side, row.order_type,
                                     row.amount, row.reduce_only, row.trigger_price, row.price)
                if held != wanted:
                    raise JournalConflict(
                        f"client id {intent.client_id} is journalled as {_describe(held)}; "
                        f"refusing to bind it to {_describe(wanted)}")
                return False
            s.add(OrderRow(
                client_id=intent.client_id, decision_id=decision_id, plan_id=plan_id,
                token=intent.token,
                market=intent.market.value, side=intent.side.value,
                order_type=intent.order_type.value, amount=intent.amount, price=intent.price,
                trigger_price=intent.trigger_price, reduce_only=intent.reduce_only,
                leverage=intent.leverage, status=OrderStatus.PENDING.value,
                filled=Decimal(0), fee=Decimal(0), reason=intent.reason, created_at=now,
                updated_at=now,
            ))
            s.flush()  # the event row references the order row
            s.add(OrderEventRow(client_id=intent.client_id, status=OrderStatus.PENDING.value,
                                at=now, detail=intent.reason or None))
            return True

    def journal_result(self, result: OrderResult, trigger_id: str | None = None) -> bool:
        """Record the venue's answer, and a fill row for any newly filled amount. True when
        this answer is the first to show a stop (``stop_market``) fired: the journal held it
        neither triggered nor filled before, so a re-poll of the same answer says False.

        ``trigger_id`` is the venue's id for a conditional (algo) order, kept alongside the
        order id it may later get. A status-history event is written only when the status or
        filled amount changed, so polling the same answer does not flood the history.

        Fees are cumulative on the venue's order; each fill row gets the part of the fee
        that is new since the last answer, and an answer that carries no fee (an order
        recovered by lookup) never erases one already known. An answer whose side or kind
        differs from the journalled order is another order under our id:
        :class:`JournalConflict`, and nothing is written.
        """
        now = _utcnow()
        with self.session() as s:
            row = s.get(OrderRow, result.client_id)
            if row is None:
                return False
            if (result.side.value != row.side or result.market.value != row.market
                    or result.token != row.token
                    or (result.order_type.value == "stop_market")
                    != (row.order_type == "stop_market")):
                raise JournalConflict(
                    f"client id {result.client_id} is journalled as {row.side} {row.amount} "
                    f"{row.token} {row.market} {row.order_type}; the venue answered with "
                    f"{result.side.value} {result.amount} {result.token} "
                    f"{result.market.value} {result.order_type.value}: not recorded")
            # A stale read (an older snapshot of the order) never takes a fill back: the
            # next fresher answer would then book the same part a second time.
            filled = max(result.filled, row.filled)
            newly_filled = filled - row.filled
            part_price = _part_price(result, row.filled, row.average_price) \
                or result.average_price
            fee = result.fee if result.fee > row.fee else row.fee
            new_fee = fee - row.fee
            fired = (row.order_type == "stop_market" and result.status.value in FIRED
                     and row.status not in FIRED
                     and s.scalar(select(OrderEventRow.id).where(
                         OrderEventRow.client_id == row.client_id,
                         OrderEventRow.status.in_(FIRED)).limit(1)) is None)
            if result.status.value != row.status or newly_filled != 0:
                s.add(OrderEventRow(
                    client_id=row.client_id, status=result.status.value, at=now,
                    detail=f"exchange_id={result.exchange_id} filled={result.filled} "
                           f"average_price={result.average_price} fee={result.fee}"))
            if trigger_id is not None:
                row.trigger_id = trigger_id
            row.status = result.status.value
            row.exchange_id = result.exchange_id
            row.filled = filled
            if result.filled >= row.filled or row.average_price is None:
                row.average_price = result.average_price
            row.fee = fee
            row.updated_at = now
            if newly_filled > 0 and part_price is not None:
                s.add(FillRow(client_id=result.client_id, token=result.token,
                              market=result.market.value, side=result.side.value,
                              amount=newly_filled,
                              price=part_price,
                              fee=new_fee, ts=result.timestamp or _utcnow()))
            elif new_fee > 0:
                # The fee arrived after its fill (read from the venue's trades later on).
                last = s.scalars(select(FillRow).where(FillRow.client_id == result.client_id)
                                 .order_by(FillRow.id.desc()).limit(1)).first()
                if last is not None:
                    last.fee += new_fee
        return fired

    def journal_failure(self, client_id: str, status: OrderStatus, error: str) -> None:
        """Record a failed send or check; repeated identical failures add one event, not many."""
        now = _utcnow()
        with self.session() as s:
            row = s.get(OrderRow, client_id)
            if row is not None:
                error = error[:2000]
                if row.status != status.value or row.error != error:
                    s.add(OrderEventRow(client_id=client_id, status=status.value, at=now,
                                        detail=error))
                row.status = status.value
                row.error = error
                row.updated_at = now

    def order_history(self, client_id: str) -> list[OrderEventRow]:
        """Every status the order went through, oldest first (empty for an unknown id)."""
        with self.session() as s:
            return list(s.scalars(select(OrderEventRow)
                                  .where(OrderEventRow.client_id == client_id)
                                  .order_by(OrderEventRow.id)))

    def consecutive_stop_failures(self, token: str, window: int = 20) -> int:
        """How many of ``token``'s newest stop placements in a row failed (refused by the
        venue, or never confirmed) since the position was last traded; any stop that was
        live or fired ends the run. Refusals of an earlier position do not count against
        a new one."""
        failed = (OrderStatus.REJECTED.value, OrderStatus.UNKNOWN.value)
        with self.session() as s:
            # ``filled`` is decimal text: compared in Python, not by the database.
            trades = s.execute(
                select(OrderRow.created_at, OrderRow.filled).where(
                    OrderRow.token == token, OrderRow.market == "perp",
                    OrderRow.order_type != "stop_market")).all()
            entered = max((at for at, filled in trades if filled > 0), default=None)
            q = (select(OrderRow.status)
                 .where(OrderRow.token == token, OrderRow.market == "perp",
                        OrderRow.order_type == "stop_market",
                        OrderRow.status != OrderStatus.EXPIRED.value)
                 .order_by(OrderRow.created_at.desc(), OrderRow.client_id.desc())
                 .limit(window))
            if entered is not None:
                q = q.where(OrderRow.created_at > entered)
            statuses = s.scalars(q).all()
        count = 0
        for status in statuses:
            if status not in failed:
                break
            count += 1
        return count

    def traded(self) -> set[tuple[str, str]]:
        """Every (token, market) an order of ours ever filled on.

        Asked by every reconciliation, so the database does the work: ``filled`` is decimal
        text (never negative), non-zero exactly when it holds a digit 1-9, and only the
        distinct pairs come back, however long the journal grows."""
        text = type_coerce(OrderRow.filled, String)
        nonzero = or_(*(text.contains(digit, autoescape=True) for digit in "123456789"))
        with self.session() as s:
            rows = s.execute(select(OrderRow.token, OrderRow.market).where(nonzero)
                             .distinct()).all()
        return {(token, market) for token, market in rows}

    def fill_count(self) -> int:
        """How many fills the journal holds (a watermark: any new fill changes it)."""
        with self.session() as s:
            return int(s.scalar(select(func.count(FillRow.id))) or 0)

    def last_fill_id(self) -> int:
        """The newest fill's id (0 before any): a watermark for :meth:`perp_change_since`."""
        with self.session() as s:
            return int(s.scalar(select(func.max(FillRow.id))) or 0)

    def perp_change_since(self, token: str, fill_id: int) -> Decimal:
        """The signed change of ``token``'s perp position our fills after ``fill_id`` made."""
        with self.session() as s:
            rows = s.execute(select(FillRow.side, FillRow.amount).where(
                FillRow.token == token, FillRow.market == "perp", FillRow.id > fill_id)).all()
        return sum((amount if side == "buy" else -amount for side, amount in rows), Decimal(0))

    def last_stop_outs(self) -> dict[str, datetime]:
        """When each token's perp position was last stopped out (on the venue's clock): a
        stop that fired, or the risk watch closing a position already past its stop."""
        with self.session() as s:
            rows = s.execute(
                select(FillRow.token, FillRow.ts, OrderRow.order_type, OrderRow.reason)
                .join(OrderRow, OrderRow.client_id == FillRow.client_id)
                .where(FillRow.market == "perp")).all()
        out: dict[str, datetime] = {}
        for token, ts, order_type, reason in rows:
            if order_type == "stop_market" or (reason or "").startswith(STOP_CROSSED):
                out[token] = max(ts, out.get(token, ts))
        return out

    def order_status(self, client_id: str) -> OrderStatus | None:
        """The journalled status of one order (None when never journalled)."""
        with self.session() as s:
            status = s.scalar(select(OrderRow.status).where(OrderRow.client_id == client_id))
        return None if status is None else OrderStatus(status)

    def orders(self, statuses: Iterable[OrderStatus] | None = None) -> list[OrderRow]:
        with self.session() as s:
            return list(s.scalars(_orders_query(
                None if statuses is None else tuple(sorted(st.value for st in statuses)))))

    def fills(self) -> list[FillRow]:
        with self.session() as s:
            return list(s.scalars(select(FillRow).order_by(FillRow.id)))


@functools.lru_cache(maxsize=16)
def _orders_query(statuses: tuple[str, ...] | None) -> Select[OrderRow]:
    """The journal listing, built once per set of statuses (reconcile asks every step)."""
    q = select(OrderRow).order_by(OrderRow.created_at, OrderRow.client_id)
    return q if statuses is None else q.where(OrderRow.status.in_(statuses))


def _part_price(result: OrderResult, filled_before: Decimal,
                average_before: Decimal | None) -> Decimal | None:
    """The price of the part filled since the last answer: venues report the average over
    the whole order, and a second part booked at that average would misstate both parts."""
    average = result.average_price
    if average is None or filled_before <= 0 or average_before is None:
        return average
    part = result.filled - filled_before
    if part <= 0:
        return average
    price = (average * result.filled - average_before * filled_before) / part
    return price if price > 0 else average
