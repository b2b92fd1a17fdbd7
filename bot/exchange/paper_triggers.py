"""The paper venue's own move on stops: fire every stop the period's price range crossed.

Kept apart from ``paper.py`` (which takes orders and serves reads) because this is the
venue acting on its own, between two market updates, with its own pricing rules: gaps,
slippage, and liquidation taking over from a stop that would fill past it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from bot.domain.models import OrderStatus, Side
from bot.exchange.paper_ledger import Ledger
from bot.exchange.paper_orders import OrderBook, trigger_of
from bot.exchange.paper_types import PaperEvent

Liquidate = Callable[[str, Decimal, str], PaperEvent]


def trigger_stops(orders: OrderBook, ledger: Ledger, marks: Mapping[str, Decimal],
                  bands: Mapping[str, tuple[Decimal, Decimal]], slippage: Decimal,
                  now: datetime, liquidate: Liquidate) -> list[PaperEvent]:
    """Fill every stop whose trigger the period's range crossed, nearest trigger first.

    The fill is the trigger price, or the worse of trigger and mark when the whole range
    lies beyond the trigger (a gap), less slippage. A fill at or past the liquidation price
    is a liquidation instead: the venue's engine takes over before the stop's market order,
    and isolated margin caps the loss.
    """
    events: list[PaperEvent] = []
    for stop in orders.open_stops_by_proximity():
        current = orders.get(stop.client_id)
        if current is None or current.status is not OrderStatus.OPEN:
            continue  # cancelled when an earlier stop closed the position
        token, sell, trigger = stop.token, stop.side is Side.SELL, trigger_of(stop)
        pos = ledger.positions.get(token)
        if pos is None or (pos.amount > 0) != sell:
            orders.update(stop, status=OrderStatus.CANCELED)
            continue
        low, high = bands[token]
        if (low > trigger) if sell else (high < trigger):
            continue
        mark = marks[token]
        if low <= trigger <= high:
            reference = trigger
        else:
            reference = min(trigger, mark) if sell else max(trigger, mark)
        price = reference * (1 - slippage) if sell else reference * (1 + slippage)
        qty = min(stop.amount, abs(pos.amount))
        plan = ledger.plan_perp(token, -qty if sell else qty, price)
        liquidation = ledger.liquidation_price(token)
        if (price <= liquidation if sell else price >= liquidation) or plan.free_after < 0:
            events.append(liquidate(
                token, liquidation, f"stop {stop.client_id} would fill at {price}, "
                f"past the liquidation price"))
            continue
        if ledger.apply_perp(token, plan, now):
            orders.cancel_stops(token)
        orders.update(stop, status=OrderStatus.TRIGGERED, filled=qty, average_price=price,
                      fee=plan.fee, timestamp=now)
        events.append(PaperEvent(
            "stop_triggered", token, plan.delta, price, plan.realised - plan.fee,
            stop.client_id, f"trigger={trigger} reference={reference} range=({low}, {high})",
            plan.fee,
        ))
    return events
