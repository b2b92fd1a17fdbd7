"""``sectorbot status``, ``orders``, ``decisions`` and what ``explain`` adds: read from the
state store only (no owner lock, nothing written), so they work beside a running daemon.

``status`` also says whether a daemon holds the store and how old its last cycle is, judged
by the rule ``/healthz`` applies (:func:`bot.service.health.stall_reason`): a daemon that holds
the store but has not completed a cycle for 2 intervals + a grace is stalled (exit 3).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from bot.config import Settings
from bot.service.cycle import ROTATION_KEY
from bot.service.health import stale_after, stall_reason
from bot.service.replay_driver import CURSOR_KEY
from bot.service.start_checks import STARTING_CASH_KEY
from bot.store.owner import Holder
from bot.store.repo import StateStore, StoredDecision
from bot.store.schema import (
    DecisionRow,
    FillRow,
    FundingPaymentRow,
    OrderRow,
    PlanSkipRow,
    PositionRow,
)

EXIT_STALLED = 3
"""``sectorbot status``: a daemon holds the store and its last cycle is stale."""


def _fmt(value: Decimal | None, places: str = "0.0001") -> str:
    return "-" if value is None else str(value.quantize(Decimal(places)))


def render_status(store: StateStore, state: DaemonState | None = None) -> str:
    lines: list[str] = []
    curve = store.equity_curve()
    cursor = store.get(CURSOR_KEY)
    lines.append(f"state: {store.location}")
    if state is not None:
        lines += render_daemon(state)
    if cursor:
        lines.append(f"clock: {cursor}")
    if curve:
        first, last = curve[0], curve[-1]
        peak = max(p.equity for p in curve)
        change = (last.equity / first.equity - 1) * 100 if first.equity else Decimal(0)
        drawdown = (1 - last.equity / peak) * 100 if peak else Decimal(0)
        lines.append(f"equity: {_fmt(last.equity, '0.01')} USDT  cash: "
                     f"{_fmt(last.cash, '0.01')} USDT  change: {change:+.2f}%  "
                     f"drawdown: {drawdown:.2f}%  points: {len(curve)}")
        lines += render_performance(performance(store))
    killed = store.active_kill_switch()
    trips = len(store.kill_switch_history())
    lines.append(f"kill switch: TRIPPED {killed.tripped_at:%Y-%m-%d %H:%M} UTC ({killed.reason});"
                 " clear with `sectorbot resume`" if killed else
                 f"kill switch: armed ({trips} earlier trip{'s' if trips != 1 else ''})")
    positions = store.positions()
    lines.append("")
    lines.append(f"{'market':<6} {'token':<8} {'amount':>18} {'mark':>14} {'value':>12} "
                 f"{'entry':>12} {'lev':>5} {'stop':>12} {'liq':>12}")
    for p in positions:
        value = p.amount * (p.mark_price or Decimal(0))
        lines.append(
            f"{p.market:<6} {p.token:<8} {_fmt(p.amount, '0.000001'):>18} "
            f"{_fmt(p.mark_price):>14} {_fmt(value, '0.01'):>12} {_fmt(p.entry_price):>12} "
            f"{_fmt(p.leverage, '0.1'):>5} {_fmt(p.stop_price):>12} "
            f"{_fmt(p.liquidation_price):>12}")
    if not positions:
        lines.append("(no positions)")
    decision = store.last_decision()
    lines.append("")
    if decision is None:
        lines.append("last decision: none")
    else:
        rotation = store.get(ROTATION_KEY)
        lines.append(f"last decision: {decision.decision_id} at {decision.as_of.isoformat()} "
                     f"action={decision.action}")
        if rotation:
            lines.append(f"rotation: {rotation.get('from_sector')} -> "
                         f"{rotation.get('to_sector')} since {rotation.get('started')}")
        for reason in decision.payload.get("reasons", [])[:8]:
            lines.append(f"  - {reason}")
    orders = store.orders()
    filled = sum(1 for o in orders if o.status == "filled")
    lines.append(f"orders: {len(orders)} journalled, {filled} filled")
    _, skips = store.last_plan_skips()
    short = [k for k in skips if k.reason.startswith("unfunded") or "scaled" in k.reason]
    if short:
        lines.append("unfunded in the last plan (a wallet could not pay for these legs):")
        lines.extend(f"  - {k.token} {k.market}: {k.reason}" for k in short)
    return "\n".join(lines)


def cycle_interval(settings: Settings) -> float:
    """The cycle interval the daemon runs on (as ``Daemon._intervals``): the replay tick in
    paper mode, ``scheduler.cycle_seconds`` on a venue."""
    if settings.mode == "paper":
        return settings.replay.tick_seconds
    return settings.scheduler.cycle_seconds


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


@dataclass(frozen=True)
class DaemonState:
    """Whether a daemon holds the store and whether its cycles are on time."""

    holder: Holder | None
    last_cycle_at: datetime | None
    interval: float
    now: datetime

    @property
    def stalled(self) -> str | None:
        if self.holder is None:
            return None
        return stall_reason(self.interval, self.last_cycle_at, _parse_time(self.holder.since),
                            self.now)

    def to_json(self) -> dict[str, Any]:
        age = (None if self.last_cycle_at is None
               else round((self.now - self.last_cycle_at).total_seconds(), 3))
        return {"running": self.holder is not None,
                "holder": None if self.holder is None else {
                    "pid": self.holder.pid, "host": self.holder.host,
                    "since": self.holder.since},
                "last_cycle_at": None if self.last_cycle_at is None
                else self.last_cycle_at.isoformat(),
                "last_cycle_age_seconds": age,
                "cycle_interval_seconds": self.interval,
                "stale_after_seconds": stale_after(self.interval),
                "stalled": self.stalled}


def daemon_state(store: StateStore, settings: Settings, holder: Holder | None,
                 now: datetime | None = None) -> DaemonState:
    """The last cycle's wall-clock time is its decision's ``created_at`` (every cycle keeps
    one)."""
    with store.session() as s:
        last = s.scalar(select(DecisionRow.created_at).order_by(DecisionRow.seq.desc())
                        .limit(1))
    return DaemonState(holder, last, cycle_interval(settings), now or datetime.now(UTC))


def performance(store: StateStore) -> dict[str, Any]:
    """Change from starting cash, max drawdown, realised and unrealised P&L, fees, funding
    (USDT). Unrealised: each position at its mark against its entry (a spot token's entry is
    its average cost from the fills); realised: the rest of the change, fees and funding
    included. Starting cash: the paper account's, else the first equity point."""
    curve = store.equity_curve()
    recorded = store.get(STARTING_CASH_KEY)
    start = Decimal(str(recorded)) if recorded else (curve[0].equity if curve else None)
    equity = curve[-1].equity if curve else None
    peak = Decimal(0)
    max_dd = Decimal(0)
    for point in curve:
        peak = max(peak, point.equity)
        if peak > 0:
            max_dd = max(max_dd, 1 - point.equity / peak)
    with store.session() as s:
        fees = sum((f for f in s.scalars(select(FillRow.fee))), Decimal(0))
        funding = sum((a for a in s.scalars(select(FundingPaymentRow.amount))), Decimal(0))
        fills = list(s.scalars(select(FillRow).where(FillRow.market == "spot")
                               .order_by(FillRow.id)))
        positions = list(s.scalars(select(PositionRow)))
    unrealised = Decimal(0)
    costs = _average_costs(fills)
    for p in positions:
        if p.mark_price is None:
            continue
        entry = p.entry_price if p.market == "perp" else costs.get(p.token)
        if entry is not None:
            unrealised += (p.mark_price - entry) * p.amount
    change = None if start is None or equity is None else equity - start
    return {
        "starting_cash": _money(start), "equity": _money(equity), "change": _money(change),
        "change_pct": None if change is None or not start else
        round(float(change / start) * 100, 2),
        "max_drawdown_pct": round(float(max_dd) * 100, 2),
        "realised_pnl": _money(None if change is None else change - unrealised),
        "unrealised_pnl": _money(unrealised), "fees": _money(fees),
        "funding": _money(funding)}


def _average_costs(fills: Sequence[FillRow]) -> dict[str, Decimal]:
    """Each spot token's average cost per unit, from its fills in order."""
    held: dict[str, tuple[Decimal, Decimal]] = {}
    for f in fills:
        amount, cost = held.get(f.token, (Decimal(0), Decimal(0)))
        if f.side == "buy":
            amount, cost = amount + f.amount, cost + f.amount * f.price
        elif amount > 0:
            sold = min(f.amount, amount)
            cost -= cost * sold / amount
            amount -= sold
        held[f.token] = (amount, cost)
    return {t: cost / amount for t, (amount, cost) in held.items() if amount > 0}


def render_daemon(state: DaemonState) -> list[str]:
    j = state.to_json()
    age = j["last_cycle_age_seconds"]
    last = "last cycle: none yet" if age is None else (
        f"last cycle: {j['last_cycle_at']} ({_age(age)} ago; stale after "
        f"{_age(j['stale_after_seconds'])})")
    if state.holder is None:
        return ["daemon: not running (no process holds the store)", last]
    line = f"daemon: running ({state.holder.describe()})"
    stalled = state.stalled
    return [line, last] + ([f"STALLED: {stalled}"] if stalled else [])


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def render_performance(perf: dict[str, Any]) -> list[str]:
    if perf["equity"] is None:
        return ["performance: no equity recorded yet"]
    return [f"since start: {perf['change']} USDT ({perf['change_pct']:+.2f}%) on "
            f"{perf['starting_cash']}  max drawdown: {perf['max_drawdown_pct']:.2f}%",
            f"P&L: realised {perf['realised_pnl']}  unrealised {perf['unrealised_pnl']}  "
            f"fees {perf['fees']}  funding {perf['funding']} USDT"]


def status_json(store: StateStore, state: DaemonState) -> dict[str, Any]:
    killed = store.active_kill_switch()
    decision = store.last_decision()
    return {
        "state": store.location, "daemon": state.to_json(), "clock": store.get(CURSOR_KEY),
        "performance": performance(store),
        "kill_switch": None if killed is None else {
            "reason": killed.reason, "tripped_at": killed.tripped_at.isoformat()},
        "positions": [{"market": p.market, "token": p.token, "amount": str(p.amount),
                       "mark_price": _str(p.mark_price), "entry_price": _str(p.entry_price),
                       "leverage": _str(p.leverage), "stop_price": _str(p.stop_price),
                       "liquidation_price": _str(p.liquidation_price)}
                      for p in store.positions()],
        "last_decision": None if decision is None else {
            "decision_id": decision.decision_id, "as_of": decision.as_of.isoformat(),
            "action": decision.action}}


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# -- listings ----------------------------------------------------------------------------------
def order_json(o: OrderRow) -> dict[str, Any]:
    return {"client_id": o.client_id, "decision_id": o.decision_id,
            "created_at": o.created_at.isoformat(), "token": o.token, "market": o.market,
            "side": o.side, "type": o.order_type, "amount": str(o.amount),
            "trigger_price": _str(o.trigger_price), "reduce_only": o.reduce_only,
            "status": o.status, "filled": str(o.filled),
            "average_price": _str(o.average_price), "fee": str(o.fee), "reason": o.reason,
            "error": o.error}


def recent_orders(store: StateStore, limit: int) -> list[OrderRow]:
    with store.session() as s:
        rows = list(s.scalars(select(OrderRow).order_by(OrderRow.created_at.desc(),
                                                        OrderRow.client_id.desc())
                              .limit(limit)))
    return rows[::-1]


def render_orders(rows: Sequence[OrderRow]) -> str:
    lines = [f"{'created (UTC)':<19} {'client id':<34} {'token':<7} {'mkt':<4} {'side':<4} "
             f"{'type':<11} {'amount':>14} {'filled':>14} {'avg price':>12} "
             f"{'status':<16} decision"]
    for o in rows:
        lines.append(
            f"{o.created_at:%Y-%m-%d %H:%M:%S} {o.client_id:<34} {o.token:<7} {o.market:<4} "
            f"{o.side:<4} {o.order_type:<11} {_q(o.amount):>14} {_q(o.filled):>14} "
            f"{_q(o.average_price, '0.0001'):>12} {o.status:<16} {o.decision_id or '-'}")
    if not rows:
        lines.append("(no orders)")
    return "\n".join(lines)


def _q(value: Decimal | None, places: str = "0.000001") -> str:
    return "-" if value is None else str(value.quantize(Decimal(places)))


def recent_decisions(store: StateStore, limit: int) -> list[tuple[StoredDecision, int]]:
    """The last ``limit`` decisions, oldest first, each with the number of its orders."""
    with store.session() as s:
        rows = list(s.scalars(select(DecisionRow).order_by(DecisionRow.seq.desc())
                              .limit(limit)))
        ids = [r.decision_id for r in rows]
        counts = {row[0]: row[1] for row in s.execute(
            select(OrderRow.decision_id, func.count(OrderRow.client_id))
            .where(OrderRow.decision_id.in_(ids)).group_by(OrderRow.decision_id))}
    return [(StoredDecision(r.decision_id, r.as_of, r.action, json.loads(r.payload)),
             int(counts.get(r.decision_id, 0))) for r in rows[::-1]]


def decision_json(d: StoredDecision, orders: int) -> dict[str, Any]:
    return {"decision_id": d.decision_id, "as_of": d.as_of.isoformat(), "action": d.action,
            "regime": d.payload.get("regime"), "confidence": d.payload.get("confidence"),
            "orders": orders, "reasons": list(d.payload.get("reasons", []))[:3]}


def render_decisions(rows: Sequence[tuple[StoredDecision, int]]) -> str:
    lines = [f"{'as of (UTC)':<16} {'decision id':<18} {'action':<12} {'regime':<8} "
             f"{'orders':>6}  first reason"]
    for d, orders in rows:
        reasons = d.payload.get("reasons") or ["-"]
        lines.append(f"{d.as_of:%Y-%m-%d %H:%M} {d.decision_id:<18} {d.action:<12} "
                     f"{d.payload.get('regime', '-')!s:<8} {orders:>6}  {reasons[0]}")
    if not rows:
        lines.append("(no decisions)")
    return "\n".join(lines)


# -- explain: what was executed --------------------------------------------------------------
def execution_json(store: StateStore, decision_id: str) -> dict[str, Any]:
    plans = store.plans(decision_id)
    plan_ids = [p.plan_id for p in plans]
    with store.session() as s:
        orders = list(s.scalars(select(OrderRow).where(OrderRow.decision_id == decision_id)
                                .order_by(OrderRow.created_at, OrderRow.client_id)))
        ids = [o.client_id for o in orders]
        fills = list(s.scalars(select(FillRow).where(FillRow.client_id.in_(ids))
                               .order_by(FillRow.id)))
        skips = list(s.scalars(select(PlanSkipRow).where(PlanSkipRow.plan_id.in_(plan_ids))
                               .order_by(PlanSkipRow.id)))
    return {
        "plans": [{"plan_id": p.plan_id, "created_at": p.created_at.isoformat(),
                   "completed_at": None if p.completed_at is None
                   else p.completed_at.isoformat()} for p in plans],
        "orders": [{**order_json(o), "fills": [
            {"amount": str(f.amount), "price": str(f.price), "fee": str(f.fee),
             "ts": f.ts.isoformat()} for f in fills if f.client_id == o.client_id]}
            for o in orders],
        "skipped": [{"plan_id": k.plan_id, "token": k.token, "market": k.market,
                     "reason": k.reason} for k in skips]}


def render_execution(execution: dict[str, Any]) -> str:
    out = ["", "Executed:"]
    if not execution["plans"] and not execution["orders"]:
        out.append("  nothing: no plan was executed for this decision")
        return "\n".join(out)
    for plan in execution["plans"]:
        done = plan["completed_at"] or "NOT COMPLETED (cut short; the next run resumes it)"
        out.append(f"  plan {plan['plan_id']}: started {plan['created_at']}, completed {done}")
    for o in execution["orders"]:
        out.append(f"  {o['status']:<16} {o['side']} {o['amount']} {o['token']} {o['market']} "
                   f"{o['type']}  filled {o['filled']}"
                   + (f" @ {o['average_price']}" if o["average_price"] else "")
                   + f"  fee {_q(Decimal(o['fee']))}  [{o['client_id']}]")
        for f in o["fills"]:
            out.append(f"      fill {f['amount']} @ {f['price']} fee {_q(Decimal(f['fee']))} "
                       f"at {f['ts']}")
        if o["error"]:
            out.append(f"      error: {o['error']}")
    for k in execution["skipped"]:
        out.append(f"  skipped          {k['token']} {k['market']}: {k['reason']}")
    return "\n".join(out)
