"""Start-up reconciliation: make the order journal agree with the venue before trading.

Crash-only design: a daemon killed at any point restarts through here. Every journalled
order whose outcome is not final (pending: written but maybe never sent; unknown: sent, no
answer; open: resting) is looked up on the venue by its client id and settled. Positions the
venue holds that no journalled order explains are adopted: logged ``reconcile.adopted`` and
left to the risk watch, which protects any leveraged position without a stop at once.

A stop the venue fired on its own is learnt here (or by the risk watch, between cycles): the
first answer that shows it fired is logged ``stoploss.triggered``, as the paper replay does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.domain.models import MarketKind, OrderResult, OrderStatus, Side
from bot.exchange.port import ExchangePort
from bot.store.journal import JournalConflict
from bot.store.repo import StateStore

UNSETTLED = (OrderStatus.PENDING, OrderStatus.UNKNOWN, OrderStatus.OPEN,
             OrderStatus.PARTIALLY_FILLED)
NEVER_SENT = "not on the venue at reconciliation: the crash came before the send"


@dataclass
class ReconcileReport:
    settled: list[str] = field(default_factory=list)
    never_sent: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def journal_answer(store: StateStore, result: OrderResult, log: Any) -> None:
    """Journal the venue's answer; the first one that shows a stop fired (on the venue, with
    no code of ours running) is logged ``stoploss.triggered``, once per stop."""
    if store.journal_result(result):
        log_stop_fired(log, result)


def log_stop_fired(log: Any, result: OrderResult) -> None:
    """``stoploss.triggered`` with the fields the paper replay gives it: ``amount`` is the
    signed change of the position (negative for a long's stop). ``cash_delta`` is null: the
    venue's realised P&L is not read (the fill's price and fee are in the journal)."""
    delta = result.filled if result.side is Side.BUY else -result.filled
    log.warning("stoploss.triggered", token=result.token, client_id=result.client_id,
                amount=str(delta),
                price=None if result.average_price is None else str(result.average_price),
                cash_delta=None, detail=f"{result.status.value} on the venue, fee {result.fee}")


def reconcile(exchange: ExchangePort, store: StateStore, log: Any) -> ReconcileReport:
    """Settle unsettled journal entries by client id; adopt unexplained positions."""
    report = ReconcileReport()
    for row in store.orders(UNSETTLED):
        market = MarketKind(row.market)
        known = exchange.fetch_order_by_client_id(row.client_id, row.token, market,
                                                  trigger=row.order_type == "stop_market")
        if known is not None:
            try:
                journal_answer(store, known, log)
            except JournalConflict as exc:
                # The venue holds another order under this id: never book it as ours.
                report.conflicts.append(row.client_id)
                log.error("order.id_conflict", client_id=row.client_id, token=row.token,
                          reason=str(exc))
                continue
            report.settled.append(row.client_id)
            log.info("reconcile.settled", client_id=row.client_id, token=row.token,
                     was=row.status, now=known.status.value, filled=str(known.filled))
        elif row.status != OrderStatus.OPEN.value:
            # Expired, so a re-run of the same decision may send it (once): the venue has
            # never seen this client id.
            store.journal_failure(row.client_id, OrderStatus.EXPIRED, NEVER_SENT)
            report.never_sent.append(row.client_id)
            log.warning("reconcile.never_sent", client_id=row.client_id, token=row.token)
        else:
            store.journal_failure(row.client_id, OrderStatus.UNKNOWN,
                                  "open in the journal, unknown to the venue")
            log.warning("order.unknown", client_id=row.client_id,
                        reason="open in the journal, unknown to the venue")
    held = [p for p in exchange.fetch_positions() if p.amount != 0]
    # The journal is asked only when something is held: most steps hold no perp at all.
    journalled = store.traded() if held else set()
    for position in held:
        if (position.token, MarketKind.PERP.value) not in journalled:
            report.adopted.append(position.token)
            log.warning("reconcile.adopted", token=position.token, amount=str(position.amount),
                        entry_price=str(position.entry_price),
                        stop_price=None if position.stop_price is None
                        else str(position.stop_price))
    busy = report.settled or report.never_sent or report.adopted
    # Every cycle reconciles (crash-only, and it catches orders settled behind our back);
    # a pass that found nothing is only worth a debug line.
    (log.info if busy else log.debug)(
        "reconcile.completed", settled=len(report.settled),
        never_sent=len(report.never_sent), adopted=len(report.adopted))
    return report
