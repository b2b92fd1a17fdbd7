"""``sectorbot export-signals``: what a daemon on a venue kept, in the replay data format.

``--out FILE`` writes the provider figures alone (``sector_metrics.csv``); ``--replay-dir
DIR`` writes a whole replay directory (``docs/data-format.md``): ``ohlcv/<TOKEN>.csv`` and
``funding/<TOKEN>.csv`` from the venue data each decision read (``venue_candles``,
``venue_funding``), ``sector_metrics.csv`` from the provider figures
(``sector_metric_points``) and a ``PROVENANCE.md`` saying where each came from. A backtest
over that directory (``sectorbot backtest --data-dir DIR``) reads what the daemon read.
"""

from __future__ import annotations

import errno
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import groupby
from pathlib import Path

from bot import __version__
from bot.store.repo import StateStore
from bot.store.schema import SectorMetricPointRow, VenueCandleRow, VenueFundingRow

PROVIDERS = {
    "tvl_usd": "DefiLlama", "tvl_usd_raw": "DefiLlama", "volume_usd": "DefiLlama",
    "fees_usd": "DefiLlama", "fees_usd_raw": "DefiLlama", "dev_commits": "GitHub",
    "category_volume_usd": "CoinGecko", "category_mcap_usd": "CoinGecko",
}
"""Which provider serves each metric the daemon keeps (``docs/signals.md``)."""


def _text(value: Decimal) -> str:
    return format(value, "f")


def metrics_csv(rows: Iterable[SectorMetricPointRow]) -> str:
    lines = ["date,sector,metric,value"]
    lines += [f"{r.day.isoformat()},{r.sector},{r.metric},{r.value!r}" for r in rows]
    return "\n".join(lines) + "\n"


def candle_line(row: VenueCandleRow) -> tuple[str, bool]:
    """One ``ohlcv`` line, and whether it had to be completed to fit the format (which
    needs ``low <= open, close <= high``): a day without the venue's extremes gets the
    open/close range (the engine read no high or low that day), an open outside the day's
    range is moved to its edge (the engine never reads the open)."""
    high, low, opened = row.high, row.low, row.open
    fitted = False
    if high is None or low is None:
        high, low, fitted = max(opened, row.close), min(opened, row.close), True
    elif not low <= opened <= high:
        opened, fitted = min(max(opened, low), high), True
    return (f"{row.day.isoformat()},{_text(opened)},{_text(high)},{_text(low)},"
            f"{_text(row.close)},{_text(row.volume)},{_text(row.quote_volume)}", fitted)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ExportSummary:
    candles: dict[str, list[VenueCandleRow]] = field(default_factory=dict)
    funding: dict[str, list[VenueFundingRow]] = field(default_factory=dict)
    metrics: list[SectorMetricPointRow] = field(default_factory=list)
    fitted: dict[str, int] = field(default_factory=dict)
    """Per token, the candles completed to fit the format (see :func:`candle_line`)."""


class ExportTargetExists(Exception):
    """The export's target exists and is not an empty directory: nothing was written to it."""


def write_replay_dir(store: StateStore, out: Path, *, mode: str, exchange: str) -> ExportSummary:
    """Write the replay directory ``out``, which must not exist or be an empty directory.

    Written into a temporary sibling and renamed into place at the end, so ``out`` is never
    written into: a rename onto a directory that is not empty (or onto a file) fails, as it
    does when something appeared at ``out`` since the caller checked
    (:class:`ExportTargetExists`; the temporary directory is removed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    work.mkdir()  # not mkdtemp: the export gets the umask's permissions, not 0700
    try:
        summary = _write(store, work, mode=mode, exchange=exchange)
        try:
            work.rename(out)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise ExportTargetExists(f"{out} exists and is not an empty directory") \
                    from None
            raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _write(store: StateStore, out: Path, *, mode: str, exchange: str) -> ExportSummary:
    summary = ExportSummary(
        candles={t: list(rows) for t, rows in groupby(store.venue_candles(),
                                                       key=lambda r: r.token)},
        funding={t: list(rows) for t, rows in groupby(store.venue_funding(),
                                                       key=lambda r: r.token)},
        metrics=store.sector_metric_points())
    (out / "ohlcv").mkdir(parents=True, exist_ok=True)
    for token, candles in summary.candles.items():
        lines = ["date,open,high,low,close,volume,quote_volume"]
        for row in candles:
            line, fitted = candle_line(row)
            lines.append(line)
            summary.fitted[token] = summary.fitted.get(token, 0) + fitted
        (out / "ohlcv" / f"{token}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if summary.funding:
        (out / "funding").mkdir(exist_ok=True)
    for token, readings in summary.funding.items():
        lines = ["timestamp,rate,interval_hours"]
        lines += [f"{_stamp(r.ts)},{_text(r.rate)},{_text(r.interval_hours)}" for r in readings]
        (out / "funding" / f"{token}.csv").write_text("\n".join(lines) + "\n",
                                                       encoding="utf-8")
    if summary.metrics:
        (out / "sector_metrics.csv").write_text(metrics_csv(summary.metrics), encoding="utf-8")
    (out / "PROVENANCE.md").write_text(
        provenance(summary, store.location, mode, exchange), encoding="utf-8")
    return summary


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def provenance(summary: ExportSummary, location: str, mode: str, exchange: str) -> str:
    venues = sorted({r.venue for rows in summary.candles.values() for r in rows}
                    | {r.venue for rows in summary.funding.values() for r in rows})
    now = datetime.now(UTC).replace(microsecond=0)
    lines = [
        "# Provenance",
        "",
        f"Exported by `sectorbot export-signals --replay-dir` (sectorbot {__version__}) on "
        f"{_stamp(now)} from the state store `{location}` (configured: mode `{mode}`, "
        f"exchange `{exchange}`; the data was read from: {', '.join(venues) or 'no venue'}).",
        "",
        "Everything here is what the daemon's decisions read, **as first seen**: a candle, "
        "funding reading or provider figure the source revised later is here as it was "
        "first read, never the revision. A day the daemon did not run is absent, not "
        "filled in.",
        "",
        "## Files",
        "",
    ]
    rows: list[Sequence[object]] = []
    for token, candles in summary.candles.items():
        rows.append((f"`ohlcv/{token}.csv`", f"{candles[0].venue} {candles[0].market} daily "
                     "candles", candles[0].day, candles[-1].day, len(candles)))
    for token, readings in summary.funding.items():
        rows.append((f"`funding/{token}.csv`", f"{readings[0].venue} funding readings",
                     _stamp(readings[0].ts), _stamp(readings[-1].ts), len(readings)))
    for (sector, metric), points in groupby(
            sorted(summary.metrics, key=lambda r: (r.sector, r.metric, r.day)),
            key=lambda r: (r.sector, r.metric)):
        kept = list(points)
        rows.append((f"`sector_metrics.csv` {metric} {sector}",
                     PROVIDERS.get(metric, "provider"), kept[0].day, kept[-1].day, len(kept)))
    lines += _table(("file", "source", "first", "last", "rows"), rows)
    fitted = sum(summary.fitted.values())
    lines += [
        "",
        "## How the values were kept",
        "",
        "- `close`, `high`, `low` and `quote_volume` are the exact values the engine read "
        "(the decimal text of each number, which reads back as the same number). "
        "`quote_volume` is base volume x close, as the engine ranks liquidity on it (the "
        "venue's unified candle has base volume only). `open` and `volume` are the venue's.",
        "- The candle of day D closed at D+1 00:00 UTC; only closed candles were kept.",
        f"- {fitted} candle(s) had no usable high/low from the venue (the engine read no "
        "extremes that day) or an open outside the day's range: written with the open/close "
        "range, or the open moved to the range's edge, so the file fits the format.",
        "- Funding rows are the rate each cycle read (the venue's rate for the period under "
        "way), stamped at the cycle's `as_of`, not the venue's settlements: `rate / "
        "interval_hours` is exactly the per-hour rate the engine read. A live decision read "
        "only its cycle's reading; a replay reads every row in its window.",
        "- `sector_metrics.csv`: the provider figure of each day as first seen "
        "(`docs/signals.md` names each metric's source).",
        "",
        "## Licence",
        "",
        "Market data from the venue's public API, under its terms of use; sector figures "
        "from DefiLlama (open data), GitHub (REST API terms) and CoinGecko (API terms, "
        "attribution: data provided by CoinGecko). For your own research; check each "
        "source's terms before redistributing.",
        "",
    ]
    return "\n".join(lines)
