"""What a finished search leaves in ``--out``: ``best.toml``, ``trials.csv``, ``summary.json``
and ``report.html``.

The chosen parameters are judged three ways, because the best of many trials always looks
better than it is: fold by fold on the test windows the search scored (not untouched: the
search chose on them), deflated for the number of trials tried (deflated Sharpe ratio) and
for how often an in-sample winner loses out of sample (probability of backtest overfitting),
and on the holdout window the search never saw, reported apart.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.io as pio
import tomli_w
from optuna.trial import FrozenTrial, TrialState

from bot.backtest.benchmarks import benchmark_curves
from bot.backtest.metrics import curve_metrics
from bot.backtest.report import COLORS, html_table
from bot.config import Settings
from bot.optimize.overfit import backtest_overfitting, deflated_sharpe
from bot.optimize.space import SearchSpace
from bot.optimize.study import INVALID, is_surplus, trial_values

TOP_TRIALS = 10


def valid_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials with their out-of-sample returns, best first."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and "oos_returns" in t.user_attrs]
    return sorted(done, key=lambda t: (-(t.value or 0.0), t.number))


#: Secret values a config file may hold inline (the config accepts them there): never copied.
INLINE_SECRETS = (("state", "url"), ("exchange", "https_proxy"), ("exchange", "api_key"),
                  ("exchange", "api_secret"), ("exchange", "password"),
                  ("signals", "github_token"), ("signals", "coingecko_api_key"))


def best_toml(values: Mapping[str, Any], base_file: Path | None, out: Path,
              data_dir: Path | None = None) -> Path:
    """The chosen values as a config file: the base config (when one was given) with the
    values set, paths made absolute so the file works from wherever it is kept, the data
    searched on (``--data-dir``) named, and no secret copied (a secrets file stays a path)."""
    data: dict[str, Any] = {}
    if base_file is not None:
        import tomllib

        with base_file.open("rb") as fh:
            data = tomllib.load(fh)
        base = base_file.parent.absolute()  # as load_settings resolves them
        for section, key in INLINE_SECRETS:
            body = data.get(section)
            if isinstance(body, dict):
                body.pop(key, None)
        for section, key in (("replay", "data_dir"), ("state", "path"),
                             ("exchange", "ca_bundle")):
            body = data.get(section)
            if isinstance(body, dict) and isinstance(body.get(key), str):
                body[key] = str(base / body[key])
        for key in ("universe_file", "secrets_file"):
            if isinstance(data.get(key), str):
                data[key] = str(base / data[key])
    if data_dir is not None:
        data.setdefault("replay", {})["data_dir"] = str(data_dir.absolute())
    for key, value in values.items():
        section, name = key.split(".", 1)
        data.setdefault(section, {})[name] = list(value) if isinstance(value, tuple) else value
    header = ("# Written by `sectorbot optimize`: the chosen parameters"
              + (f" on top of {base_file.name}" if base_file else "") + ".\n"
              "# Use it with --config; read report.html before trusting it.\n")
    path = out / "best.toml"
    path.write_text(header + tomli_w.dumps(data), encoding="utf-8")
    return path


def write_trials_csv(study: optuna.Study, space: SearchSpace, out: Path) -> Path:
    trials = [t for t in study.get_trials(deepcopy=False) if not is_surplus(t)]
    folds = max((len(t.user_attrs.get("folds", [])) for t in trials), default=0)
    path = out / "trials.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "state", "value", *space.keys,
                         *[f"fold{i}_score" for i in range(folds)],
                         *[f"fold{i}_test_sharpe" for i in range(folds)],
                         *[f"fold{i}_train_sharpe" for i in range(folds)],
                         "seconds", "worker", "retry_of", "reason"])
        for t in sorted(trials, key=lambda t: t.number):
            state = INVALID if INVALID in t.user_attrs else t.state.name.lower()
            values = trial_values(t, space)
            records = t.user_attrs.get("folds", [])
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if (
                t.datetime_complete and t.datetime_start) else ""
            writer.writerow([
                t.number, state, "" if t.value is None else repr(float(t.value)),
                *[json.dumps(values[k]) if isinstance(values.get(k), list | tuple)
                  else values.get(k, "") for k in space.keys],
                *[f"{r['score']:.6f}" for r in records], *[""] * (folds - len(records)),
                *[f"{r['test']['sharpe']:.4f}" for r in records], *[""] * (folds - len(records)),
                *[f"{r['train']['sharpe']:.4f}" for r in records],
                *[""] * (folds - len(records)),
                seconds if seconds == "" else f"{seconds:.1f}", t.user_attrs.get("worker", ""),
                t.system_attrs.get("failed_trial", ""), t.user_attrs.get(INVALID, "")])
    return path


def _sharpe_per_period(returns: Sequence[float]) -> float:
    n = len(returns)
    if n < 2:
        return 0.0
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    return mean / math.sqrt(var) if var > 0 else 0.0


def overfitting_guards(trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    """Deflated Sharpe of the best trial's out-of-sample returns given every trial tried,
    and PBO by CSCV over the matrix of every trial's out-of-sample returns."""
    out: dict[str, Any] = {"trials": len(trials)}
    series = [list(t.user_attrs["oos_returns"]) for t in trials]
    if not series or len(series[0]) < 2:
        return out
    best = series[0]
    try:
        dsr = deflated_sharpe(best, [_sharpe_per_period(s) for s in series])
        out["deflated_sharpe"] = {
            "probability": dsr.probability, "sharpe_per_day": dsr.sharpe,
            "sharpe_annualised": dsr.sharpe * math.sqrt(365),
            "expected_max_sharpe_per_day": dsr.expected_max_sharpe,
            "n_trials": dsr.n_trials, "observations": dsr.observations,
            "skewness": dsr.skewness, "kurtosis": dsr.kurtosis}
    except ValueError as exc:
        out["deflated_sharpe"] = {"unavailable": str(exc)}
    same = [s for s in series if len(s) == len(best)]
    blocks = 16 if len(best) >= 64 else max(2, (len(best) // 4) // 2 * 2)
    try:
        if len(same) < 2:
            raise ValueError("fewer than two completed trials")
        columns = [list(col) for col in zip(*same, strict=True)]
        pbo = backtest_overfitting(columns, blocks=blocks)
        out["pbo"] = {"probability": pbo.probability, "splits": pbo.splits,
                      "blocks": pbo.blocks, "degradation_slope": pbo.degradation_slope,
                      "probability_oos_loss": pbo.probability_oos_loss}
    except ValueError as exc:
        out["pbo"] = {"unavailable": str(exc)}
    return out


def importances(study: optuna.Study) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}  # too few trials, or nothing varied


def oos_curves(best: FrozenTrial, settings: Settings, data: Any, universe: Any,
               ) -> dict[str, tuple[list[datetime], list[float]]]:
    """The chosen trial's test windows chained into one curve, and the three benchmarks over
    the same days and costs."""
    returns = list(best.user_attrs["oos_returns"])
    days = [date.fromisoformat(d) for d in best.user_attrs["oos_days"]]
    start = Decimal(str(settings.paper.starting_cash))
    times = [datetime.combine(days[0], time(0), tzinfo=UTC)]
    times += [datetime.combine(d, time(0), tzinfo=UTC) + timedelta(days=1) for d in days]
    values = [float(start)]
    for r in returns:
        values.append(values[-1] * (1 + r))
    marks = [data.marks(t) for t in times]
    cost = Decimal(str(settings.paper.spot_fee_bps + settings.paper.slippage_bps))
    curves = {"sectorbot": (times, values)}
    for c in benchmark_curves(times, marks, universe, settings.strategy, start, cost):
        curves[c.name] = (list(c.times), list(c.values))
    return curves


def _equity_figure(title: str, curves: Mapping[str, tuple[list[datetime], list[float]]]
                   ) -> go.Figure:
    fig = go.Figure()
    for name, (times, values) in curves.items():
        fig.add_trace(go.Scatter(x=times, y=values, name=name, mode="lines",
                                 line={"color": COLORS.get(name)}))
    fig.update_layout(title=title, height=420, template="plotly_white",
                      yaxis_title="equity (USDT)", legend={"orientation": "h"},
                      updatemenus=[{"type": "buttons", "direction": "left", "x": 1, "y": 1.15,
                                    "buttons": [
                                        {"label": "linear", "method": "relayout",
                                         "args": [{"yaxis.type": "linear"}]},
                                        {"label": "log", "method": "relayout",
                                         "args": [{"yaxis.type": "log"}]}]}])
    return fig


def write_report(out: Path, summary: Mapping[str, Any], trials: Sequence[FrozenTrial],
                 space: SearchSpace, oos: Mapping[str, tuple[list[datetime], list[float]]],
                 holdout: Mapping[str, tuple[list[datetime], list[float]]] | None,
                 all_values: Sequence[tuple[int, float]]) -> Path:
    figs: list[go.Figure] = []
    if oos:
        figs.append(_equity_figure("Chosen parameters on the test windows (chained) vs "
                                   "holding", oos))
    if holdout:
        figs.append(_equity_figure("Chosen parameters on the untouched holdout vs holding",
                                   holdout))
    imp = summary.get("importances") or {}
    if imp:
        fig = go.Figure(go.Bar(x=list(imp.values()), y=list(imp), orientation="h"))
        fig.update_layout(title="Parameter importances (PED-ANOVA)", height=320,
                          template="plotly_white", yaxis={"autorange": "reversed"})
        figs.append(fig)
    if all_values:
        fig = go.Figure(go.Scatter(x=[n for n, _ in all_values], y=[v for _, v in all_values],
                                   mode="markers", name="objective"))
        fig.update_layout(title="Objective by trial", height=320, template="plotly_white",
                          xaxis_title="trial", yaxis_title="objective")
        figs.append(fig)
    folds = summary["folds"]
    layout = html_table(["fold", "train", "test"],
                    [[str(i), f"{f['train_start']} .. {f['test_start']}",
                      f"{f['test_start']} .. {f['test_end']}"] for i, f in enumerate(folds)])
    rows = []
    for t in trials[:TOP_TRIALS]:
        values = trial_values(t, space)
        records = t.user_attrs["folds"]
        rows.append([str(t.number), f"{t.value:.3f}",
                     *[f"{r['score']:.2f} (Sh {r['test']['sharpe']:.2f}, "
                       f"DD {r['test']['max_drawdown']:.0%}, in-sample Sh "
                       f"{r['train']['sharpe']:.2f})" for r in records],
                     ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in values.items())])
    best_table = html_table(["trial", "objective", *[f"fold {i}" for i in range(len(folds))],
                         "parameters"], rows)
    guards = summary.get("guards", {})
    dsr = guards.get("deflated_sharpe", {})
    pbo = guards.get("pbo", {})
    guard_rows = [
        ["deflated Sharpe ratio (probability the chosen Sharpe is real given "
         f"{guards.get('trials', 0)} trials)", _fmt(dsr.get("probability"),
                                                    dsr.get("unavailable"))],
        ["probability of backtest overfitting (CSCV)", _fmt(pbo.get("probability"),
                                                            pbo.get("unavailable"))],
    ]
    hold = summary.get("holdout")
    hold_html = ("<p>No holdout: every figure above comes from windows the search scored. "
                 "Give <code>--holdout-from</code> to keep an untouched window.</p>")
    if hold:
        names = ["sectorbot", *hold["benchmarks"]]
        by = {"sectorbot": hold["strategy"], **hold["benchmarks"]}
        hold_html = html_table(["", "total return", "Sharpe", "max drawdown"],
                           [[n, f"{by[n]['total_return']:+.1%}", f"{by[n]['sharpe']:.2f}",
                             f"{by[n]['max_drawdown']:.1%}"] for n in names])
    charts = [pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0),
                          config={"displaylogo": False}) for i, fig in enumerate(figs)]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sectorbot optimize</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 24px; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child, td:last-child {{ text-align: left; }}
</style></head><body>
<h1>sectorbot optimize: {html.escape(str(summary['study']))}</h1>
<p>{summary['finished']} trials finished ({summary['invalid']} invalid combinations).
Objective: the {html.escape(summary['objective']['aggregate'])} over folds of the test
window's {html.escape(summary['objective']['metric'])} less
{summary['objective']['turnover_penalty']} per 1x yearly turnover and
{summary['objective']['drawdown_penalty']} per 100 % drawdown. The test windows were scored
by the search, so their figures flatter the chosen parameters; the guards and the holdout
say by how much.</p>
<h2>Walk-forward windows</h2>{layout}
<h2>Best trials, fold by fold</h2>{best_table}
<h2>Overfitting guards</h2>{html_table(["guard", "value"], guard_rows)}
<h2>Holdout{html.escape(' ' + hold['period'] if hold else '')}</h2>{hold_html}
{''.join(charts)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _fmt(value: Any, reason: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:.3f}"
    return f"unavailable: {reason}" if reason else "-"


def holdout_curves(result: Any) -> dict[str, tuple[list[datetime], list[float]]]:
    points = result.run.points
    curves = {"sectorbot": ([p.ts for p in points], [float(p.equity) for p in points])}
    for c in result.curves:
        curves[c.name] = (list(c.times), list(c.values))
    return curves


def holdout_summary(result: Any) -> dict[str, Any]:
    m = result.metrics
    return {"period": m["period"], "strategy": m["strategy"], "benchmarks": m["benchmarks"],
            "report": "holdout/report.html"}


def oos_metrics(curves: Mapping[str, tuple[list[datetime], list[float]]]) -> dict[str, Any]:
    return {name: curve_metrics(times, values) for name, (times, values) in curves.items()}


__all__ = ["best_toml", "holdout_curves", "holdout_summary", "importances", "oos_curves",
           "oos_metrics", "overfitting_guards", "valid_trials", "write_report",
           "write_trials_csv"]
