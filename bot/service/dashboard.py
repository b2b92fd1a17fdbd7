"""The read-only dashboard (``GET /``): one self-contained HTML page from the state store.

Server-rendered tables and one inline SVG line, no script at all: the page is a few tens of
kilobytes, works offline and behind any proxy, and its Content-Security-Policy can forbid
scripts outright. (Embedding plotly.js, as the backtest report does, would add 4.8 MB to a
page an operator reloads every minute.) It reads the store the way ``sectorbot status``
does, read-only and without the owner lock, so it never waits for or disturbs the daemon;
every string from the store is scrubbed of configured secrets and HTML-escaped.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bot.config import Settings, load_universe
from bot.domain.models import Universe
from bot.logs import redact_secrets
from bot.store.repo import StateStore
from bot.store.schema import DecisionRow, EquityRow, OrderRow, SignalSnapshotRow

MAX_POINTS = 300
"""Equity points drawn (evenly sampled, the last one always kept)."""
DECISIONS_SHOWN = 5
ORDERS_SHOWN = 25
BENCHMARK = "BTC"


@dataclass(frozen=True)
class PositionLine:
    market: str
    token: str
    sector: str
    bucket: str
    amount: Decimal
    mark: Decimal | None
    value: Decimal
    weight: float | None
    entry: Decimal | None = None
    leverage: Decimal | None = None
    stop: Decimal | None = None
    liquidation: Decimal | None = None


@dataclass(frozen=True)
class DecisionLine:
    decision_id: str
    as_of: datetime
    action: str
    regime: str
    confidence: float | None
    rotation: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class OrderLine:
    created_at: datetime
    client_id: str
    token: str
    market: str
    side: str
    order_type: str
    amount: Decimal
    status: str
    filled: Decimal
    average_price: Decimal | None
    reason: str
    error: str | None


@dataclass(frozen=True)
class DashboardData:
    generated_at: datetime
    mode: str
    as_of: datetime | None = None
    equity: Decimal | None = None
    cash: Decimal | None = None
    drawdown: float | None = None
    kill_switch: str | None = None
    curve: Sequence[tuple[datetime, float, float | None]] = ()
    """(time, equity, BTC close or None)."""
    buckets: Sequence[tuple[str, float, float | None]] = ()
    """(bucket, share of equity now, the last decision's target)."""
    sectors: Sequence[tuple[str, float]] = ()
    positions: Sequence[PositionLine] = ()
    decisions: Sequence[DecisionLine] = ()
    orders: Sequence[OrderLine] = field(default_factory=tuple)


# -- reading the store --------------------------------------------------------------------
def _sample(rows: Sequence[Any], limit: int) -> list[Any]:
    if len(rows) <= limit:
        return list(rows)
    stride = -(-len(rows) // limit)
    picked = list(rows[::stride])
    if picked[-1] is not rows[-1]:
        picked.append(rows[-1])
    return picked


def _btc_closes(store: StateStore, times: list[datetime]) -> dict[datetime, float]:
    """BTC's close at each equity point, from the signal snapshot each decision kept."""
    out: dict[datetime, float] = {}
    if not times:
        return out
    with store.session() as s:
        rows = s.execute(select(SignalSnapshotRow.as_of, SignalSnapshotRow.payload)
                         .where(SignalSnapshotRow.as_of.in_(times))).all()
    for as_of, payload in rows:
        try:
            close = json.loads(payload).get("closes", {}).get(BENCHMARK)
            if close is not None:
                out[as_of] = float(close[1])
        except (ValueError, TypeError, IndexError, AttributeError):
            continue
    return out


def _placement(universe: Universe, token: str) -> tuple[str, str]:
    """(sector, bucket) of a token; unknown tokens (adopted, delisted) say so."""
    try:
        spec = universe.token(token)
    except KeyError:
        return "?", "?"
    if spec.sector == "CORE":
        return "CORE", "core"
    try:
        return spec.sector, universe.sector(spec.sector).bucket.value
    except KeyError:
        return spec.sector, "?"


def collect(store: StateStore, universe: Universe, mode: str,
            now: datetime | None = None) -> DashboardData:
    """Everything the page shows, in a few bounded queries."""
    now = now or datetime.now(UTC)
    with store.session() as s:
        points = s.execute(select(EquityRow.ts, EquityRow.equity, EquityRow.cash)
                           .order_by(EquityRow.ts)).all()
        decisions = list(s.scalars(select(DecisionRow).order_by(DecisionRow.seq.desc())
                                   .limit(DECISIONS_SHOWN)))
        orders = list(s.scalars(select(OrderRow).order_by(OrderRow.created_at.desc())
                                .limit(ORDERS_SHOWN)))
    sampled = _sample(points, MAX_POINTS)
    btc = _btc_closes(store, [p[0] for p in sampled])
    curve = [(ts, float(eq), btc.get(ts)) for ts, eq, _ in sampled]
    last = points[-1] if points else None
    equity = None if last is None else Decimal(last[1])
    cash = None if last is None else Decimal(last[2])
    peak = max((Decimal(p[1]) for p in points), default=Decimal(0))
    drawdown = float(1 - equity / peak) if equity is not None and peak > 0 else None

    lines: list[PositionLine] = []
    for p in store.positions():
        sector, bucket = _placement(universe, p.token)
        mark = p.mark_price
        value = abs(p.amount) * (mark or Decimal(0))
        weight = float(value / equity) if equity else None
        lines.append(PositionLine(p.market, p.token, sector, bucket, p.amount, mark, value,
                                  weight, p.entry_price, p.leverage, p.stop_price,
                                  p.liquidation_price))
    spot = [ln for ln in lines if ln.market == "spot"]
    by_bucket: dict[str, float] = {}
    by_sector: dict[str, float] = {}
    for ln in spot:
        by_bucket[ln.bucket] = by_bucket.get(ln.bucket, 0.0) + (ln.weight or 0.0)
        by_sector[ln.sector] = by_sector.get(ln.sector, 0.0) + (ln.weight or 0.0)
    parsed = [_decision_line(row) for row in decisions]
    targets: dict[str, float] = {}
    if decisions:
        payload = json.loads(decisions[0].payload)
        targets = {str(k): float(v) for k, v in payload.get("bucket_weights", {}).items()}
        targets["cash"] = float(payload.get("cash_reserve", 0.0))
    if equity and cash is not None:
        by_bucket["cash"] = float(cash / equity)
    order: tuple[str, ...] = ("core", "rotational", "speculative", "cash")
    names = [b for b in order if b in by_bucket or b in targets]
    names += sorted(set(by_bucket) - set(names))
    buckets = [(b, by_bucket.get(b, 0.0), targets.get(b)) for b in names]
    trip = store.active_kill_switch()
    return DashboardData(
        generated_at=now, mode=mode, as_of=None if last is None else last[0], equity=equity,
        cash=cash, drawdown=drawdown,
        kill_switch=None if trip is None else f"{trip.reason} (since "
                                               f"{trip.tripped_at:%Y-%m-%d %H:%M} UTC)",
        curve=curve, buckets=buckets,
        sectors=sorted(by_sector.items(), key=lambda kv: -kv[1]), positions=lines,
        decisions=parsed,
        orders=[OrderLine(o.created_at, o.client_id, o.token, o.market, o.side, o.order_type,
                          o.amount, o.status, o.filled, o.average_price, o.reason, o.error)
                for o in orders])


def _decision_line(row: DecisionRow) -> DecisionLine:
    payload = json.loads(row.payload)
    rotation = payload.get("rotation")
    moving = (f"{rotation.get('from_sector')} -> {rotation.get('to_sector')}"
              if isinstance(rotation, dict) else None)
    confidence = payload.get("confidence")
    return DecisionLine(row.decision_id, row.as_of, row.action, str(payload.get("regime", "")),
                        None if confidence is None else float(confidence), moving,
                        tuple(str(r) for r in payload.get("reasons", [])))


# -- rendering ----------------------------------------------------------------------------
def _t(value: object) -> str:
    """Any value as safe HTML text: secrets scrubbed first, then escaped."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else str(value)
    return html.escape(str(redact_secrets(None, "", {"v": text})["v"]), quote=True)


def _num(value: Decimal | float | None, places: int = 2) -> str:
    return "-" if value is None else f"{float(value):,.{places}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], empty: str) -> str:
    """``rows`` hold HTML already escaped (cells built with :func:`_t` / numbers)."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{_t(empty)}</p>'
    return ("<table><thead><tr>" + "".join(f"<th>{_t(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{body}</tbody></table>")


def equity_svg(curve: Sequence[tuple[datetime, float, float | None]], width: int = 960,
               height: int = 260) -> str:
    """Equity and BTC, both rebased to 100 at the first point where both are known (equity
    alone, rebased to its first point, without BTC history)."""
    if len(curve) < 2:
        return '<p class="muted">not enough equity points yet</p>'
    base = next(((eq, b) for _, eq, b in curve if b and eq), None)
    eq0 = base[0] if base else curve[0][1]
    series = {"equity": [(t, 100 * eq / eq0) for t, eq, _ in curve if eq0]}
    if base is not None:
        series[BENCHMARK] = [(t, 100 * b / base[1]) for t, _, b in curve if b]
    t0, t1 = curve[0][0], curve[-1][0]
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [v for pts in series.values() for _, v in pts]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = 36

    def xy(t: datetime, v: float) -> str:
        x = pad + (t - t0).total_seconds() / span * (width - 2 * pad)
        y = height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    colours = {"equity": "#1f6feb", BENCHMARK: "#d29922"}
    lines = "".join(
        f'<polyline fill="none" stroke="{colours[name]}" stroke-width="2" '
        f'points="{" ".join(xy(t, v) for t, v in pts)}"/>'
        for name, pts in series.items() if len(pts) >= 2)
    legend = " ".join(
        f'<tspan fill="{colours[name]}">&#9632; {_t(name)} {pts[-1][1]:.1f}</tspan>'
        for name, pts in series.items() if pts)
    label = _t(" against ".join(series))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>'
            f'<text x="{pad}" y="20" font-size="13">{legend} (first point = 100)</text>'
            f'<text x="4" y="{pad + 4}" font-size="11">{hi:.0f}</text>'
            f'<text x="4" y="{height - pad}" font-size="11">{lo:.0f}</text>'
            f'<text x="{pad}" y="{height - 10}" font-size="11">{_t(f"{t0:%Y-%m-%d}")}</text>'
            f'<text x="{width - pad}" y="{height - 10}" font-size="11" text-anchor="end">'
            f'{_t(f"{t1:%Y-%m-%d}")}</text>{lines}</svg>')


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1f2328;background:#f6f8fa}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin-bottom:.5em}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#656d76}.bad{color:#cf222e;font-weight:600}.ok{color:#1a7f37;font-weight:600}
.cards>span{display:inline-block;background:#fff;border:1px solid #d0d7de;padding:6px 12px;
margin:0 8px 8px 0}ul{margin:.2em 0 .2em 1.2em;padding:0}
"""


def render(data: DashboardData) -> str:
    """The page. Every store-derived string goes through :func:`_t`."""
    kill = (f'<span class="bad">kill switch TRIPPED: {_t(data.kill_switch)}</span>'
            if data.kill_switch else '<span class="ok">kill switch armed</span>')
    as_of = None if data.as_of is None else f"{data.as_of:%Y-%m-%d %H:%M} UTC"
    cards = (f"<span>mode {_t(data.mode)}</span><span>as of {_t(as_of)}</span>"
             f"<span>equity {_num(data.equity)} USDT</span>"
             f"<span>cash {_num(data.cash)} USDT</span>"
             f"<span>drawdown {_pct(data.drawdown)}</span><span>{kill}</span>")
    buckets = _table(["bucket", "now", "target"],
                     ([_t(b), _pct(now), _pct(target)] for b, now, target in data.buckets),
                     "no holdings yet")
    sectors = _table(["sector", "share of equity (spot)"],
                     ([_t(s), _pct(w)] for s, w in data.sectors), "no spot holdings")
    positions = _table(
        ["market", "token", "sector", "bucket", "amount", "mark", "value", "weight", "entry",
         "lev", "stop", "liq"],
        ([_t(p.market), _t(p.token), _t(p.sector), _t(p.bucket), _num(p.amount, 6),
          _num(p.mark, 4), _num(p.value), _pct(p.weight), _num(p.entry, 4),
          _num(p.leverage, 1),
          (_num(p.stop, 4) if p.stop is not None or p.market != "perp"
           else '<span class="bad">NO STOP</span>'),
          _num(p.liquidation, 4)] for p in data.positions),
        "no positions")
    decisions = _table(
        ["as of", "decision", "action", "regime", "confidence", "rotation", "reasons"],
        ([_t(f"{d.as_of:%Y-%m-%d %H:%M}"), _t(d.decision_id[:12]), _t(d.action), _t(d.regime),
          _num(d.confidence, 3), _t(d.rotation),
          "<ul>" + "".join(f"<li>{_t(r)}</li>" for r in d.reasons) + "</ul>"]
         for d in data.decisions),
        "no decision yet")
    orders = _table(
        ["created", "token", "market", "side", "type", "amount", "status", "filled", "avg price",
         "reason", "error"],
        ([_t(f"{o.created_at:%Y-%m-%d %H:%M:%S}"), _t(o.token), _t(o.market), _t(o.side),
          _t(o.order_type), _num(o.amount, 6), _t(o.status), _num(o.filled, 6),
          _num(o.average_price, 4), _t(o.reason), _t(o.error)] for o in data.orders),
        "no orders yet")
    chart = equity_svg(data.curve)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        "<meta http-equiv=\"refresh\" content=\"60\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>sectorbot</title><style>{STYLE}</style></head><body>"
        f"<h1>sectorbot</h1><p class=\"muted\">read-only, generated "
        f"{_t(f'{data.generated_at:%Y-%m-%d %H:%M:%S} UTC')}; reloads every minute</p>"
        f"<div class=\"cards\">{cards}</div>"
        f"<h2>Equity against BTC</h2>{chart}"
        f"<h2>Buckets</h2>{buckets}<h2>Sector weights</h2>{sectors}"
        f"<h2>Open positions and their stops</h2>{positions}"
        f"<h2>Last decisions</h2>{decisions}<h2>Recent orders</h2>{orders}"
        "</body></html>")


class DashboardSource:
    """Renders the page from a read-only store opened on first use and kept (one render at a
    time: the page is cheap, and SQLite connections are not shared across threads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._store: StateStore | None = None
        self._universe: Universe | None = None

    def page(self) -> str:
        with self._lock:
            if self._store is None:
                self._universe = load_universe(self.settings.universe_file)
                self._store = StateStore(self.settings.state.target(), read_only=True)
            assert self._universe is not None
            return render(collect(self._store, self._universe, self.settings.mode))

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
