"""The paper exchange's order registry: accepted orders by client id, in placement order.

Keeping orders is what makes retries safe: a reused client id is refused like Binance's
-4116, and ``fetch_order_by_client_id`` can answer for an order after a lost answer. Open
orders are kept for as long as they are open; finished ones only the newest
``KEEP_FINISHED`` (a journal settles an order within a step or two, and client ids are
never reused), so the state the daemon persists every step does not grow with the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.domain.models import OrderIntent, OrderResult, OrderStatus, OrderType, Side
from bot.exchange.paper_types import order_from_json, order_to_json


def is_stop(order: OrderResult) -> bool:
    return order.order_type is OrderType.STOP_MARKET


def trigger_of(order: OrderResult) -> Decimal:
    assert order.trigger_price is not None, "stops always carry a trigger price"
    return order.trigger_price


KEEP_FINISHED = 200
"""Finished orders kept for lookups and duplicate-id checks (open ones are all kept)."""


class OrderBook:
    """Orders keyed by client id; results are immutable and replaced on every change."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderResult] = {}
        # The JSON form of each order, made once per change: the book is persisted every
        # step and most of its orders have not changed since the last one.
        self._json: dict[str, dict[str, Any]] = {}
        self._seq = 0

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._orders

    def __iter__(self) -> Iterator[OrderResult]:
        return iter(list(self._orders.values()))

    def get(self, client_id: str) -> OrderResult | None:
        return self._orders.get(client_id)

    def record(
        self,
        intent: OrderIntent,
        amount: Decimal,
        status: OrderStatus,
        fill: tuple[Decimal, Decimal | None, Decimal],
        trigger: Decimal | None,
        now: datetime | None,
    ) -> OrderResult:
        """Store a newly accepted order; ``fill`` is (filled, average price, fee)."""
        self._seq += 1
        filled, average, fee = fill
        order = OrderResult(
            client_id=intent.client_id,
            exchange_id=f"paper-{self._seq}",
            token=intent.token,
            market=intent.market,
            side=intent.side,
            order_type=intent.order_type,
            status=status,
            amount=amount,
            filled=filled,
            average_price=average,
            fee=fee,
            trigger_price=trigger,
            reduce_only=intent.reduce_only or intent.order_type is OrderType.STOP_MARKET,
            timestamp=now,
        )
        self._orders[order.client_id] = order
        self._json[order.client_id] = order_to_json(order)
        # Every KEEP_FINISHED placements (seq is persisted): a restored book prunes at
        # the same moments as one that never stopped.
        if self._seq % KEEP_FINISHED == 0:
            self.prune()
        return order

    def update(self, order: OrderResult, **changes: Any) -> None:
        changed = replace(order, **changes)
        cid = order.client_id
        if order.status is OrderStatus.OPEN and changed.status is not OrderStatus.OPEN:
            # Finished just now: it moves to the back, so pruning forgets the orders that
            # finished longest ago, never one whose end the journal has not seen yet (a stop
            # placed weeks ago and cancelled by the venue in this very step).
            self._orders.pop(cid, None)
            self._json.pop(cid, None)
        self._orders[cid] = changed
        self._json[cid] = order_to_json(changed)

    def open_orders(self, trigger: bool) -> list[OrderResult]:
        return [o for o in self._orders.values()
                if o.status is OrderStatus.OPEN and is_stop(o) == trigger]

    def open_stops_by_proximity(self) -> list[OrderResult]:
        """Open stops per token, the one a move would reach first first."""
        return sorted(
            self.open_orders(trigger=True),
            key=lambda o: (o.token, -trigger_of(o) if o.side is Side.SELL else trigger_of(o)),
        )

    def cancel_stops(self, token: str) -> None:
        """What the venue does to a position's stops once the position is gone."""
        for order in self.open_orders(trigger=True):
            if order.token == token:
                self.update(order, status=OrderStatus.CANCELED)

    def live_stop(self, token: str, long: bool) -> Decimal | None:
        """The trigger that fires first: the highest sell stop of a long, lowest buy of a short."""
        triggers = [trigger_of(o) for o in self.open_orders(trigger=True) if o.token == token]
        if not triggers:
            return None
        return max(triggers) if long else min(triggers)

    def prune(self, keep_finished: int = KEEP_FINISHED) -> None:
        """Forget all but the ``keep_finished`` most recently finished orders (the book keeps
        them in the order they finished; a restored book keeps that order too)."""
        finished = [cid for cid, o in self._orders.items() if o.status is not OrderStatus.OPEN]
        for cid in finished[:max(0, len(finished) - keep_finished)]:
            del self._orders[cid]
            del self._json[cid]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self._seq, "orders": [dict(self._json[cid]) for cid in self._orders]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderBook:
        book = cls()
        book._seq = int(data["seq"])
        orders: Sequence[dict[str, Any]] = data["orders"]
        book._orders = {o.client_id: o for o in map(order_from_json, orders)}
        book._json = {cid: order_to_json(o) for cid, o in book._orders.items()}
        return book
