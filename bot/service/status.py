"""Render ``sectorbot status``: holdings, equity and the last decision, from the state store."""

from __future__ import annotations

from decimal import Decimal

from bot.service.cycle import ROTATION_KEY
from bot.service.replay_driver import CURSOR_KEY
from bot.store.repo import StateStore


def _fmt(value: Decimal | None, places: str = "0.0001") -> str:
    return "-" if value is None else str(value.quantize(Decimal(places)))


def render_status(store: StateStore) -> str:
    lines: list[str] = []
    curve = store.equity_curve()
    cursor = store.get(CURSOR_KEY)
    lines.append(f"state: {store.location}")
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
