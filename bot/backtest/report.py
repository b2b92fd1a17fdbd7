"""The backtest's files: ``report.html`` (self-contained, offline), ``metrics.json``,
``equity.csv`` and ``trades.csv``.

The HTML embeds plotly.js once (no network, no build step) and one interactive chart per
question: how did it do against simply holding (BTC, equal weight, the static buckets), how
deep were the falls, where was the money (sectors and cash), when did it rotate and how did
each rotation end, how much leverage and funding, and where the profit came from.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.io as pio

from bot.backtest.analysis import CASH, Analysis
from bot.backtest.benchmarks import Curve
from bot.backtest.runner import BookPoint

COLORS = {"sectorbot": "#1f4e79", "BTC buy and hold": "#f7931a", "equal weight": "#7f7f7f",
          "static buckets": "#2ca02c"}


def write_csvs(out: Path, points: Sequence[BookPoint], curves: Sequence[Curve],
               analysis: Analysis) -> None:
    with (out / "equity.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "equity", "cash", "gross_exposure", "net_exposure",
                         "perp_leverage", "funding_cumulative",
                         *[c.name.replace(" ", "_") for c in curves]])
        for i, p in enumerate(points):
            writer.writerow([p.ts.date().isoformat(), f"{p.equity:.2f}", f"{p.cash:.2f}",
                             f"{analysis.gross[i]:.4f}", f"{analysis.net[i]:.4f}",
                             f"{analysis.perp_leverage[i]:.4f}",
                             f"{analysis.funding_cumulative[i]:.2f}",
                             *[f"{c.values[i]:.2f}" for c in curves]])
    with (out / "trades.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "token", "sector", "market", "side", "amount", "price",
                         "notional", "fee", "execution_cost", "kind", "reason"])
        for t in analysis.trades:
            writer.writerow([t.ts.date().isoformat(), t.token, t.sector, t.market, t.side,
                             format(t.amount, "f"), format(t.price, "f"),
                             f"{t.notional:.2f}", f"{t.fee:.4f}", f"{t.execution:.4f}",
                             t.kind, t.reason])


def write_metrics(out: Path, metrics: Mapping[str, Any]) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n",
                                      encoding="utf-8")


Figure = dict[str, Any]
"""A plotly figure as plain data (``{"data": [...], "layout": {...}}``). Written straight
to HTML without plotly's object layer: its validators cost some 40 MB of a backtest's peak
memory and a deep copy of every series, and these traces are few and of known shape."""


def _trace(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, **{k: v for k, v in props.items() if v is not None}}


def _figure(traces: list[dict[str, Any]], title: str, yaxis: str, height: int = 420,
            **layout: Any) -> Figure:
    grid = {"gridcolor": "#ebebeb", "zerolinecolor": "#d0d0d0",  # a white chart, no template
            "automargin": True}
    return {"data": traces, "layout": {
        "title": {"text": title}, "height": height, "plot_bgcolor": "white",
        "hovermode": "x unified", "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "xaxis": grid, "yaxis": {"title": {"text": yaxis}, **grid},
        "legend": {"orientation": "h", "y": -0.15}, **layout}}


def figures(points: Sequence[BookPoint], curves: Sequence[Curve],
            analysis: Analysis, drawdowns: Mapping[str, Sequence[float]]) -> list[Figure]:
    dates = [p.ts.isoformat() for p in points]
    equity = [float(p.equity) for p in points]
    figs: list[Figure] = []

    traces = [_trace("scatter", x=dates, y=equity, name="sectorbot",
                     line={"color": COLORS["sectorbot"], "width": 2})]
    traces += [_trace("scatter", x=dates, y=list(curve.values), name=curve.name,
                      line={"color": COLORS.get(curve.name), "width": 1}) for curve in curves]
    figs.append(_figure(traces, "Equity against holding (same data, same costs)", "USDT",
                        updatemenus=[{
                            "type": "buttons", "direction": "right", "x": 0, "y": 1.12,
                            "showactive": True,
                            "buttons": [{"label": "linear", "method": "relayout",
                                         "args": [{"yaxis.type": "linear"}]},
                                        {"label": "log", "method": "relayout",
                                         "args": [{"yaxis.type": "log"}]}]}]))

    figs.append(_figure([_trace("scatter", x=dates, y=[-100 * d for d in series], name=name,
                                fill="tozeroy" if name == "sectorbot" else None,
                                line={"color": COLORS.get(name), "width": 1})
                         for name, series in drawdowns.items()],
                        "Drawdown from the running peak", "%"))

    sectors = sorted({s for w in analysis.sector_weights for s in w} - {CASH})
    figs.append(_figure([_trace("scatter", x=dates,
                                y=[100 * w.get(sector, 0.0) for w in analysis.sector_weights],
                                name=sector, stackgroup="book", mode="none")
                         for sector in [*sectors, CASH]],
                        "Where the money was: spot by sector, and cash (% of equity)",
                        "% of equity"))

    colors = {"completed": "#2ca02c", "abandoned": "#d62728", "running": "#1f77b4"}
    traces = []
    for r in analysis.rotations:
        end = r.ended or points[-1].ts
        traces.append(_trace(
            "scatter", x=[r.started.isoformat(), end.isoformat()],
            y=[f"{r.from_sector} -> {r.to_sector}"] * 2,
            mode="lines+markers", line={"color": colors[r.outcome], "width": 6},
            name=r.outcome, showlegend=False,
            hovertext=f"{r.from_sector} left, {r.to_sector} entered {r.started:%Y-%m-%d}; "
                      f"{r.outcome}" + (f" {r.ended:%Y-%m-%d}" if r.ended else "")))
    figs.append(_figure(traces, "Rotations: sector left -> sector entered (green completed, "
                        "red abandoned, blue running)", "", height=max(300, 22 * len(
                            {(r.from_sector, r.to_sector) for r in analysis.rotations}) + 120)))

    figs.append(_figure([_trace("scatter", x=dates, y=analysis.gross, name="gross exposure"),
                         _trace("scatter", x=dates, y=analysis.net, name="net exposure"),
                         _trace("scatter", x=dates, y=analysis.perp_leverage,
                                name="perp notional / equity")],
                        "Exposure and leverage (x equity)", "x equity"))

    figs.append(_figure([_trace("scatter", x=dates, y=analysis.funding_cumulative,
                                name="funding", fill="tozeroy")],
                        "Funding paid (-) and received (+), cumulative", "USDT"))

    tokens = sorted(analysis.pnl_by_token, key=lambda t: analysis.pnl_by_token[t])
    figs.append(_figure(
        [_trace("bar", y=tokens, x=[float(analysis.pnl_by_token[t]) for t in tokens],
                orientation="h", name="mark-to-market P&L"),
         _trace("bar", y=tokens, x=[-float(analysis.fees_by_token.get(t, 0)) for t in tokens],
                orientation="h", name="fees")],
        "P&L by token (USDT)", "", height=max(400, 18 * len(tokens)), barmode="relative"))
    return figs


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value: object) -> str:
    return f"{float(value) * 100:.1f} %" if isinstance(value, int | float) else "-"


def write_html(out: Path, title: str, metrics: Mapping[str, Any],
               figs: Sequence[Figure], analysis: Analysis,
               by_sector: Mapping[str, float]) -> Path:
    names = ["sectorbot", *metrics["benchmarks"]]
    rows_by = {"sectorbot": metrics["strategy"], **metrics["benchmarks"]}
    summary = html_table(["", "total return", "CAGR", "volatility", "Sharpe", "Sortino",
                      "Calmar", "max drawdown", "drawdown dates"],
                     [[n, _pct(rows_by[n]["total_return"]), _pct(rows_by[n]["cagr"]),
                       _pct(rows_by[n]["volatility"]), f"{rows_by[n]['sharpe']:.2f}",
                       f"{rows_by[n]['sortino']:.2f}", f"{rows_by[n]['calmar']:.2f}",
                       _pct(rows_by[n]["max_drawdown"]),
                       f"{rows_by[n]['max_drawdown_peak']} to {rows_by[n]['max_drawdown_trough']}"]
                      for n in names])
    costs = metrics["costs"]
    activity = metrics["activity"]
    facts = html_table(["fees", "execution (slippage, stops off the close)", "funding",
                    "turnover / year", "rotations started", "completed", "abandoned",
                    "stop-outs"],
                   [[f"{costs['fees']:.2f}", f"{costs['execution']:.2f}",
                     f"{costs['funding']:.2f}", f"{activity['turnover_per_year']:.1f}x",
                     str(activity["rotations_started"]), str(activity["rotations_completed"]),
                     str(activity["rotations_abandoned"]), str(activity["stop_outs"])]])
    sectors = html_table(["sector", "P&L (USDT)"],
                     [[s, f"{v:.2f}"] for s, v in sorted(by_sector.items(),
                                                          key=lambda kv: kv[1])])
    trades = html_table(["date", "token", "sector", "market", "side", "amount", "price", "fee",
                     "kind", "reason"],
                    [[t.ts.date().isoformat(), t.token, t.sector, t.market, t.side,
                      f"{t.amount:.6g}", f"{t.price:.6g}", f"{t.fee:.2f}", t.kind, t.reason]
                     for t in analysis.trades])
    head = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 24px; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
details {{ margin: 12px 0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(metrics['period'])}. Starting equity {metrics['starting_equity']:.2f} USDT,
final {metrics['final_equity']:.2f} USDT. Fees, slippage, funding and liquidations charged
by the paper exchange; the benchmarks pay the same spot fee and slippage.</p>
<h2>Against holding</h2>{summary}
<h2>Costs and activity</h2>{facts}
"""
    path = out / "report.html"
    # Written piece by piece: the page is some 6 MB (plotly.js is embedded once), and joining
    # it in memory first held several copies of it at a backtest's peak.
    with path.open("w", encoding="utf-8") as page:
        page.write(head)
        for i, fig in enumerate(figs):
            page.write(pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0),
                                   config={"displaylogo": False}, validate=False))
        page.write(f"""
<h2>P&amp;L by sector</h2>{sectors}
<details><summary>Trades ({len(analysis.trades)})</summary>{trades}</details>
</body></html>
""")
    return path
