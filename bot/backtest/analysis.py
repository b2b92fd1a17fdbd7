"""What a backtest did, from its per-step account and its store: trades, costs, exposure,
sectors, rotations and where the profit came from.

Attribution is mark to market: between two steps each holding (spot amount, signed perp
amount) earns its amount times the change of its mark. Trading costs are what the fills
paid beyond the marks: fees, and the difference between the fill price and the day's mark
(slippage, or a stop filled at its trigger rather than the close). With funding, these
account for every change of equity: ``start + sum(attribution) - fees - execution +
funding = end``, which :func:`reconcile` checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.backtest.runner import BookPoint
from bot.domain.allocation import CORE_SECTOR, token_places
from bot.domain.models import Universe
from bot.store.repo import StateStore, StoredDecision
from bot.store.schema import FillRow, OrderRow

CASH = "cash"


@dataclass(frozen=True, slots=True)
class Trade:
    ts: datetime
    token: str
    sector: str
    market: str
    side: str
    amount: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal
    execution: Decimal
    """What the fill cost beyond the day's mark (> 0 a cost)."""
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rotation:
    from_sector: str
    to_sector: str
    started: datetime
    ended: datetime | None
    outcome: str
    """``completed``, ``abandoned`` or ``running`` (when the run ended, or replaced)."""


@dataclass
class Analysis:
    trades: list[Trade] = field(default_factory=list)
    rotations: list[Rotation] = field(default_factory=list)
    pnl_by_token: dict[str, Decimal] = field(default_factory=dict)
    fees_by_token: dict[str, Decimal] = field(default_factory=dict)
    funding_by_token: dict[str, Decimal] = field(default_factory=dict)
    sector_weights: list[dict[str, float]] = field(default_factory=list)
    gross: list[float] = field(default_factory=list)
    net: list[float] = field(default_factory=list)
    perp_leverage: list[float] = field(default_factory=list)
    funding_cumulative: list[float] = field(default_factory=list)
    stop_outs: int = 0

    @property
    def fees(self) -> Decimal:
        return sum((t.fee for t in self.trades), Decimal(0))

    @property
    def execution(self) -> Decimal:
        return sum((t.execution for t in self.trades), Decimal(0))

    @property
    def funding(self) -> Decimal:
        return sum(self.funding_by_token.values(), Decimal(0))

    def pnl_by_sector(self, universe: Universe) -> dict[str, Decimal]:
        places = token_places(universe)
        out: dict[str, Decimal] = defaultdict(Decimal)
        for token, pnl in self.pnl_by_token.items():
            place = places.get(token)
            out[place.sector if place else "other"] += pnl
        return dict(out)


def sector_of(universe: Universe) -> dict[str, str]:
    return {t: p.sector for t, p in token_places(universe).items()}


def analyse(points: Sequence[BookPoint], store: StateStore, universe: Universe,
            exit_confirmations: int) -> Analysis:
    out = Analysis()
    sectors = sector_of(universe)
    orders = {o.client_id: o for o in store.orders()}
    marks_at = {p.ts: p.prices for p in points}
    out.trades = [_trade(f, orders.get(f.client_id), marks_at, sectors) for f in store.fills()]
    out.stop_outs = sum(1 for t in out.trades if t.kind == "stop")
    for trade in out.trades:
        out.fees_by_token[trade.token] = out.fees_by_token.get(trade.token, Decimal(0)) \
            + trade.fee
    funding_by_day: dict[datetime, Decimal] = defaultdict(Decimal)
    for payment in store.funding_payments():
        out.funding_by_token[payment.token] = out.funding_by_token.get(
            payment.token, Decimal(0)) + payment.amount
        funding_by_day[payment.ts] += payment.amount
    running = Decimal(0)
    for before, after in zip([None, *points[:-1]], points, strict=True):
        running += funding_by_day.get(after.ts, Decimal(0))
        out.funding_cumulative.append(float(running))
        if before is not None:
            for key, amount in before.amounts.items():
                token = key.removeprefix("perp:")
                old, new = before.prices.get(token), after.prices.get(token)
                if old is not None and new is not None:
                    out.pnl_by_token[token] = out.pnl_by_token.get(token, Decimal(0)) \
                        + amount * (new - old)
        equity = float(after.equity) or 1.0
        weights: dict[str, float] = defaultdict(float)
        for token, value in after.spot.items():
            weights[sectors.get(token, "other")] += float(value) / equity
        weights[CASH] = float(after.cash) / equity
        out.sector_weights.append(dict(weights))
        spot = sum(float(v) for v in after.spot.values())
        longs = sum(float(v) for v in after.perps.values())
        absolute = sum(abs(float(v)) for v in after.perps.values())
        out.gross.append((spot + absolute) / equity)
        out.net.append((spot + longs) / equity)
        out.perp_leverage.append(absolute / equity)
    out.rotations = rotations(store.decisions(), exit_confirmations)
    return out


def _trade(fill: FillRow, order: OrderRow | None, marks_at: Mapping[datetime,
           Mapping[str, Decimal]], sectors: Mapping[str, str]) -> Trade:
    mark = marks_at.get(fill.ts, {}).get(fill.token)
    sign = Decimal(1) if fill.side == "buy" else Decimal(-1)
    execution = (fill.price - mark) * fill.amount * sign if mark is not None else Decimal(0)
    kind = "stop" if order is not None and order.order_type == "stop_market" else "order"
    reason = order.reason if order is not None else ""
    if order is not None and reason.startswith("stop level crossed"):
        kind = "stop"
    return Trade(fill.ts, fill.token, sectors.get(fill.token, "other"), fill.market,
                 fill.side, fill.amount, fill.price, fill.amount * fill.price, fill.fee,
                 execution, kind, reason)


def rotations(decisions: Sequence[StoredDecision], exit_confirmations: int) -> list[Rotation]:
    """Each rotation the engine carried, with how it ended."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    order: list[tuple[str, str, str]] = []
    for decision in decisions:
        state = decision.payload.get("rotation")
        if not state:
            continue
        key = (state["from_sector"], state["to_sector"], state["started"])
        entry = found.get(key)
        if entry is None:
            entry = found[key] = {"ended": None, "outcome": "running"}
            order.append(key)
        if entry["outcome"] != "running":
            continue
        if state.get("abandoned"):
            entry["outcome"], entry["ended"] = "abandoned", decision.as_of
        elif int(state.get("confirmations", 0)) >= exit_confirmations:
            entry["outcome"], entry["ended"] = "completed", decision.as_of
    return [Rotation(k[0], k[1], datetime.fromisoformat(k[2]), found[k]["ended"],
                     found[k]["outcome"]) for k in order]


def reconcile(points: Sequence[BookPoint], analysis: Analysis,
              starting_equity: Decimal) -> Decimal:
    """What is left after start + attribution - fees - execution + funding (0: every
    change of equity is accounted for)."""
    if not points:
        return Decimal(0)
    explained = (starting_equity + sum(analysis.pnl_by_token.values(), Decimal(0))
                 - analysis.fees - analysis.execution + analysis.funding)
    return points[-1].equity - explained


def time_in_sectors(analysis: Analysis) -> dict[str, float]:
    """Average share of equity per sector (and cash) over the run."""
    totals: dict[str, float] = defaultdict(float)
    for weights in analysis.sector_weights:
        for sector, weight in weights.items():
            totals[sector] += weight
    n = len(analysis.sector_weights) or 1
    return {k: v / n for k, v in sorted(totals.items())}


__all__ = ["CASH", "CORE_SECTOR", "Analysis", "Rotation", "Trade", "analyse", "reconcile",
           "rotations", "time_in_sectors"]
