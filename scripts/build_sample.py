"""Derive the bundled replay sample (``bot/data/sample``) from the real data in ``../shared/data``.

Developers run this once, ``python scripts/build_sample.py --shared ../shared/data``; users only
ever read its output. It writes the directory format of ``docs/data-format.md`` and a
``PROVENANCE.md`` naming every upstream file, licence and transformation.

Why the choices below:
- Prices and volumes keep 6 significant digits: the strategy works on daily returns, and the
  whole sample must stay small enough (< 3 MB) to ship inside the wheel.
- Missing stays missing: an empty or zero source cell becomes *no row*, never a zero, so the
  engine cannot read "not tracked yet" as "collapsed to nothing".
- A sector total over several chains or protocols is *chain-linked* (see ``linked_sum``): a
  chain that enters the data would otherwise look like a sudden inflow into its sector.
- Output is byte-for-byte deterministic (sorted iteration, fixed formatting, no build time),
  so a re-run shows up in review only when the inputs or the code changed.
"""

from __future__ import annotations

import argparse
import csv
import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
TOKENS = ("BTC", "ETH", "SOL", "AVAX", "ADA", "SUI", "APT", "NEAR", "TON", "DOT", "LINK", "FIL",
          "ARB", "POL", "UNI", "AAVE", "ZEC", "PAXG")
FUNDING_TOKENS = ("BTC", "ETH")
# DefiLlama chain columns per sector. L1: the chains whose tokens are in the universe. L2: the
# rollups/sidechains of the scaling narrative, with or without a token in the universe.
L1_CHAINS = ("Solana", "Avalanche", "Cardano", "Near", "Polkadot", "Aptos", "Sui", "TON",
             "Injective", "Sei")
L2_CHAINS = ("Arbitrum", "Arbitrum Nova", "Optimism", "Polygon", "zkSync Era", "Polygon zkEVM",
             "Linea", "Metis", "Boba", "Base", "Mantle", "Manta", "Starknet", "Scroll")
# A chain-linked sector TVL starts the first day its constituents sum to at least this, so the
# series does not open with one chain's launch ramp from a few hundred dollars (x1000 "growth").
TVL_START_FLOOR = 10_000_000.0
FUNDING_SHIFT = timedelta(hours=3)  # upstream stamps the 00:00 UTC settlement as 03:00
EASTERN = ZoneInfo("America/New_York")  # tvl_all_chains.csv was exported in US Eastern time

Table = dict[date, dict[str, float]]


def sig(value: str | float, digits: int = 6) -> str:
    """``value`` rounded to ``digits`` significant digits, in plain (non-exponent) notation."""
    d = Decimal(value if isinstance(value, str) else repr(value))
    if not d.is_finite():
        raise ValueError(f"non-finite value {value!r}")
    if d == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = digits
        d = +d
    return format(d.normalize(), "f")


def day(text: str) -> date:
    return date.fromisoformat(text[:10])


def write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return len(lines) - 1


# ------------------------------------------------------------------------------ ohlcv


def build_ohlcv(src: Path, out: Path, start: date, end: date) -> dict[str, dict[str, object]]:
    """One CSV per token from the Binance spot klines; returns per-token coverage facts."""
    facts: dict[str, dict[str, object]] = {}
    for token in TOKENS:
        path = src / f"{token}USDT.csv"
        if not path.exists():
            facts[token] = {"missing": True}
            continue
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            # The upstream files carry trailing copies (``open_time.1``, ``open_time``); the
            # first ``open_time`` is the real one, so look every column up by first index.
            col = {name: header.index(name) for name in
                   ("open_time", "open", "high", "low", "close", "volume", "quote_asset_volume")}
            rows: dict[date, list[str]] = {}
            duplicates = 0
            for r in reader:
                d = day(r[col["open_time"]])
                if not start <= d <= end:
                    continue
                if not r[col["open_time"]].endswith("00:00:00+00:00"):
                    raise SystemExit(f"{path}: candle {d} does not open at 00:00 UTC")
                row = [sig(r[col[c]]) for c in
                       ("open", "high", "low", "close", "volume", "quote_asset_volume")]
                if d in rows:
                    duplicates += 1  # keep the first occurrence, as Binance serves it
                    continue
                rows[d] = row
        days = sorted(rows)
        gaps = sum((b - a).days - 1 for a, b in pairwise(days))
        n = write_csv(out / "ohlcv" / f"{token}.csv",
                      ("date", "open", "high", "low", "close", "volume", "quote_volume"),
                      ([d.isoformat(), *rows[d]] for d in days))
        facts[token] = {"first": days[0], "last": days[-1], "rows": n, "gaps": gaps,
                        "duplicates": duplicates}
    return facts


# ------------------------------------------------------------------------------ funding


def build_funding(src: Path, out: Path, start: date, end: date) -> dict[str, dict[str, object]]:
    """BTC/ETH Binance funding, moved back 3 h onto the real 00/08/16 UTC settlements."""
    facts: dict[str, dict[str, object]] = {}
    for token in FUNDING_TOKENS:
        (path,) = sorted(src.glob(f"{token}-USDT_binance_*_funding_history.csv"))
        rows: dict[datetime, str] = {}
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                local = datetime.fromisoformat(r["Date"]).replace(microsecond=0)
                ts = (local - FUNDING_SHIFT).replace(tzinfo=UTC)
                if ts.hour % 8 or ts.minute or ts.second:
                    raise SystemExit(f"{path}: {r['Date']} is not an 8-hourly settlement")
                if not start <= ts.date() <= end:
                    continue
                if ts in rows:
                    raise SystemExit(f"{path}: duplicate settlement {ts}")
                rows[ts] = format(Decimal(r["Funding Rate"]), "f")
        times = sorted(rows)
        missing = sum(round((b - a) / timedelta(hours=8)) - 1
                      for a, b in pairwise(times))
        n = write_csv(out / "funding" / f"{token}.csv", ("timestamp", "rate", "interval_hours"),
                      ([t.strftime("%Y-%m-%dT%H:%M:%SZ"), rows[t], "8"] for t in times))
        facts[token] = {"first": times[0], "last": times[-1], "rows": n, "missing": missing,
                        "source": path.name}
    return facts


# ------------------------------------------------------------------------------ sector metrics


def read_table(path: Path, columns: Iterable[str] | None = None, *, eastern: bool = False,
               ) -> tuple[Table, list[str]]:
    """Day -> {column: value} for positive cells only; empty and zero cells are absent.

    ``eastern`` converts DefiLlama's US-Eastern export stamps (19:00/20:00 local) back to the
    UTC day they stand for, and refuses any stamp that is not UTC midnight.
    """
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = [c for c in reader.fieldnames or [] if c != "date"]
        wanted = [c for c in (columns or fields) if c in fields]
        table: Table = {}
        for r in reader:
            if eastern:
                local = datetime.fromisoformat(r["date"]).replace(tzinfo=EASTERN)
                utc = local.astimezone(UTC)
                if utc.time().isoformat() != "00:00:00":
                    raise SystemExit(f"{path}: {r['date']} is not UTC midnight")
                d = utc.date()
            else:
                d = date.fromisoformat(r["date"])
            if d in table:
                raise SystemExit(f"{path}: duplicate day {d}")
            table[d] = {c: float(r[c]) for c in wanted if r[c] and float(r[c]) > 0}
    return table, wanted


def linked_sum(table: Table, floor: float = 0.0) -> list[tuple[date, float, float]]:
    """(day, linked level, plain sum) for each day with data.

    The level starts at the plain sum (on the first day the sum reaches ``floor``) and then
    moves by the growth of the constituents present on *both* the previous and the current
    day. A chain whose column starts, pauses or ends therefore never moves the level by
    itself; only value changes inside the chains do. The level never uses later data, so it
    carries no look-ahead.
    """
    out: list[tuple[date, float, float]] = []
    prev: Mapping[str, float] = {}
    level = 0.0
    for d in sorted(table):
        cur = table[d]
        total = sum(cur[c] for c in sorted(cur))
        if not cur or (not out and total < floor):
            continue
        if out:
            common = sorted(set(cur) & set(prev))
            if not common:
                raise SystemExit(f"no constituent present on both {out[-1][0]} and {d}")
            level *= sum(cur[c] for c in common) / sum(prev[c] for c in common)
        else:
            level = total
        out.append((d, level, total))
        prev = cur
    return out


def build_metrics(src: Path, out: Path, start: date, end: date,
                  ) -> tuple[dict[tuple[str, str], dict[str, object]], dict[str, date]]:
    """``sector_metrics.csv`` in long format, plus coverage facts and each chain's first day."""
    tvl = src / "defi_tvl"
    chains, header = read_table(tvl / "tvl_all_chains.csv", eastern=True)
    uni_tvl, _ = read_table(tvl / "Uniswap_tvl_data.csv")
    uni_vol, _ = read_table(src / "dexs" / "Uniswap_daily_volume.csv", ["dex_volume"])
    aave, _ = read_table(src / "defi_fees_and_revenue" / "Aave_daily_fees.csv", ["total_fees"])
    comp, _ = read_table(src / "defi_fees_and_revenue" / "Compound_daily_revenue.csv",
                         ["total_fees"])

    def window(t: Table, cols: Iterable[str] | None = None) -> Table:
        keep = set(cols) if cols is not None else None
        return {d: {c: v for c, v in row.items() if keep is None or c in keep}
                for d, row in t.items() if start <= d <= end}

    lending: Table = {}
    for name, t in (("Aave total_fees", aave), ("Compound revenue", comp)):
        for d, row in window(t).items():
            if "total_fees" in row:
                lending.setdefault(d, {})[name] = row["total_fees"]

    series: dict[tuple[str, str], list[tuple[date, float]]] = {}
    onsets: dict[str, date] = {}  # "L1: Solana" -> first day with data in the window

    def add_linked(sector: str, metric: str, table: Table, floor: float = 0.0) -> None:
        """The chain-linked ``metric`` and its plain sum ``<metric>_raw`` on the same days."""
        linked = linked_sum(table, floor)
        series[(sector, metric)] = [(d, level) for d, level, _ in linked]
        series[(sector, f"{metric}_raw")] = [(d, raw) for d, _, raw in linked]

    for sector, cols in (("L1", L1_CHAINS), ("L2", L2_CHAINS)):
        used = [c for c in cols if c in header and any(c in r for r in window(chains).values())]
        add_linked(sector, "tvl_usd", window(chains, used), TVL_START_FLOOR)
        for c in used:
            first = min(d for d, r in window(chains).items() if c in r)
            onsets[f"{sector}: {c}"] = first
    add_linked("DEX", "tvl_usd", window(uni_tvl), TVL_START_FLOOR)
    series[("DEX", "volume_usd")] = [(d, r["dex_volume"]) for d, r in
                                     sorted(window(uni_vol).items()) if "dex_volume" in r]
    add_linked("LENDING", "fees_usd", lending)

    rows = sorted((d.isoformat(), sector, metric, sig(v))
                  for (sector, metric), pts in series.items() for d, v in pts)
    write_csv(out / "sector_metrics.csv", ("date", "sector", "metric", "value"), rows)
    facts: dict[tuple[str, str], dict[str, object]] = {}
    for key, pts in sorted(series.items()):
        ds = [d for d, _ in pts]
        gaps = sum((b - a).days - 1 for a, b in pairwise(ds))
        facts[key] = {"first": ds[0], "last": ds[-1], "rows": len(ds), "gaps": gaps}
    return facts, onsets


# ------------------------------------------------------------------------------ PROVENANCE.md

UPSTREAM = {
    "ohlcv": "github.com/djienne/Hurst_Crypto @ c83fd0139198 (directory `Hurst_Crypto/`)",
    "funding": "github.com/supervik/historical-funding-rates-fetcher @ 66a085bc6814",
    "metrics": "github.com/check-sked/crypto_data_resources @ 895e4847b2ae",
    "funding_alt": "github.com/ZuShen168/funding_rate_data @ 8040d313236b",
}


def universe_symbols() -> list[str]:
    """Every token of the configured universe, in file order."""
    with (REPO / "config" / "sectors.toml").open("rb") as f:
        cfg = tomllib.load(f)
    out = list(cfg["core"]["tokens"])
    for sector in cfg["sectors"].values():
        out += [t for t in sector["tokens"] if t not in out]
    return out


def render(start: date, end: date, ohlcv: Mapping[str, Mapping[str, object]],
           funding: Mapping[str, Mapping[str, object]],
           metrics: Mapping[tuple[str, str], Mapping[str, object]],
           onsets: Mapping[str, date], mit_licence: str) -> str:
    """The sample's PROVENANCE.md: sources, licences, transformations and coverage."""
    have = [t for t in TOKENS if not ohlcv[t].get("missing")]
    lines = [
        "# Provenance of the bundled replay sample",
        "",
        "Generated by `scripts/build_sample.py --shared ../shared/data`; do not edit by hand.",
        f"Window requested: {start} to {end}. Format: `docs/data-format.md`.",
        "Every `date` row closes at the end of that UTC day and is visible to the engine from",
        "the next day 00:00 UTC; funding rows are visible at their settlement time.",
        "",
        "## Files, sources and licences",
        "",
        "| file | upstream repo @ commit | licence | attribution |",
        "|---|---|---|---|",
        f"| `ohlcv/<TOKEN>.csv` ({len(have)} tokens) | {UPSTREAM['ohlcv']}, files "
        "`<TOKEN>USDT.csv` | none in the repository; the rows are public market facts | "
        "Binance public market data (spot klines, `api.binance.com/api/v3/klines`) |",
        f"| `funding/BTC.csv`, `funding/ETH.csv` | {UPSTREAM['funding']}, files "
        "`<TOKEN>-USDT_binance_2020-01-01_2024-01-01_funding_history.csv` | MIT (notice "
        "below) | Binance public market data (USDT-M funding rates) |",
        f"| `sector_metrics.csv` | {UPSTREAM['metrics']}, files `defi_tvl/tvl_all_chains.csv`, "
        "`defi_tvl/Uniswap_tvl_data.csv`, `dexs/Uniswap_daily_volume.csv`, "
        "`defi_fees_and_revenue/Aave_daily_fees.csv`, "
        "`defi_fees_and_revenue/Compound_daily_revenue.csv` | ISC (upstream README badge; "
        "no LICENSE text was available to reproduce) | DefiLlama (defillama.com), exported "
        "by check-sked/crypto_data_resources |",
        "",
        "## Transformations",
        "",
        "- **ohlcv**: columns `open_time, open, high, low, close, volume, quote_asset_volume` "
        "(the first `open_time`; the trailing duplicate `open_time.1`, `open_time` columns are "
        "ignored). `open_time` (00:00 UTC) becomes `date`, `quote_asset_volume` becomes "
        "`quote_volume`. All numbers rounded to 6 significant digits (round-half-even). Rows "
        "outside the window dropped; a duplicate date keeps its first row. Gaps stay gaps.",
        "- **funding**: upstream stamps are 3 h late (`2020-01-01 03:00` is the 00:00 UTC "
        "settlement); moved back 3 h and truncated to the second (upstream has a few "
        "milliseconds of jitter). Rates copied exactly. `interval_hours` is 8 (Binance BTC/ETH "
        "settle every 8 h throughout; every row was checked to fall on 00/08/16 UTC).",
        "- **sector_metrics**: `tvl_all_chains.csv` is stamped in US Eastern time (`20:00`/"
        "`19:00` local = 00:00 UTC of the next day); converted to the UTC day. A DefiLlama "
        "point stamped 00:00 UTC of day X is dated X, so it becomes visible at X+1 00:00: "
        "late by up to a day, never early. Empty and zero cells (a chain not tracked yet, or "
        "a hole) are *absent*, never zero.",
        "  - `tvl_usd` for L1 and L2 sums the DefiLlama chain columns listed below; for DEX it "
        "sums Uniswap's per-chain TVL columns. **Chain-linked**: the series starts at the "
        "plain sum on the first day that sum reaches "
        f"${TVL_START_FLOOR / 1e6:.0f}M (so it does not open with one chain's launch ramp "
        "from a few hundred dollars), then moves each day by the growth of the chains present "
        "on *both* that day and the previous one. A chain whose column starts (Solana "
        "enters at $149M), pauses or ends (Polkadot) therefore never reads as an in- or "
        "outflow. The level is anchored at the start and uses no later data (no look-ahead), "
        "but after years it is an index in USD, not the literal total: the literal sum is "
        "kept as `tvl_usd_raw` (same days) for reference; the default engine ignores it.",
        "  - `volume_usd` for DEX: Uniswap daily volume (`dex_volume`), as is.",
        "  - `fees_usd` for LENDING: Aave `total_fees` (fees paid by borrowers, all chains) "
        "plus Compound `total_fees` from its *revenue* file (the protocol's share, smaller "
        "than gross fees), chain-linked the same way (Aave's data starts 2021-04-01, later "
        "than Compound's). Plain sum in `fees_usd_raw`. The mix of fees and revenue is what "
        "the source offers; growth rates are meaningful, the level is not a gross-fee total.",
        "",
        "Chains used (first day with data inside the window):",
        "",
    ]
    lines += [f"- {name}: {first}" for name, first in sorted(onsets.items())]
    unused = [c for c in L1_CHAINS + L2_CHAINS
              if f"L1: {c}" not in onsets and f"L2: {c}" not in onsets]
    lines += [
        "",
        f"Listed in the script but absent from the export or without a non-zero value in the "
        f"window: {', '.join(unused)}.",
        "",
        "## Coverage per signal",
        "",
        "`missing` counts days (settlements for funding) absent between first and last.",
        "",
        "| signal | file | first | last | rows | missing |",
        "|---|---|---|---|---|---|",
    ]
    for t in have:
        f = ohlcv[t]
        lines.append(f"| prices {t} | `ohlcv/{t}.csv` | {f['first']} | {f['last']} | "
                     f"{f['rows']} | {f['gaps']} |")
    for t, f in funding.items():
        first, last = f["first"], f["last"]
        assert isinstance(first, datetime) and isinstance(last, datetime)
        lines.append(f"| funding {t} | `funding/{t}.csv` | {first:%Y-%m-%d %H:%M} | "
                     f"{last:%Y-%m-%d %H:%M} | {f['rows']} | {f['missing']} |")
    for (sector, metric), f in metrics.items():
        lines.append(f"| {metric} {sector} | `sector_metrics.csv` | {f['first']} | "
                     f"{f['last']} | {f['rows']} | {f['gaps']} |")
    missing = [t for t in TOKENS if ohlcv[t].get("missing")]
    dupes = sum(int(str(ohlcv[t].get("duplicates", 0))) for t in have)
    lines += [
        "",
        f"Duplicate dates dropped from the klines: {dupes}."
        + (f" Tokens without a klines file: {', '.join(missing)}." if missing else ""),
        "Universe tokens (`config/sectors.toml`) without prices here, because `Hurst_Crypto` "
        f"has no klines for them: {', '.join(t for t in universe_symbols() if t not in have)}.",
        "Sectors ORACLES, RWA and PRIVACY have no metrics; the L1/L2/DEX/LENDING metrics end "
        "in 2023-07 (the export date), so later snapshots mark them stale.",
        "",
        "## Left out, and why",
        "",
        f"- `funding_rate_data/binance_funding.csv` ({UPSTREAM['funding_alt']}, MIT): 36 "
        "Binance symbols from 2025-08-21 to 2026-08-21. It does not overlap the prices "
        "(which end 2025-06-30), so a replay driven by the price calendar could never see "
        "it, and even the universe's symbols alone would add about 0.5 MB. It is the better "
        "source for a later, live-era sample (it also carries real 4 h intervals, e.g. TON).",
        "- Bybit funding from historical-funding-rates-fetcher: the sample's prices are "
        "Binance, so funding is kept to the same venue.",
        "- Funding after 2023-12-31 16:00 UTC: upstream ends there, so from 2024 snapshots "
        "report funding as stale rather than inventing it.",
        "",
        "## MIT licence notice (historical-funding-rates-fetcher)",
        "",
        "```",
        mit_licence.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True, help="path to shared/data")
    ap.add_argument("--out", type=Path, default=REPO / "bot" / "data" / "sample")
    ap.add_argument("--start", type=date.fromisoformat, default=date(2020, 6, 1))
    ap.add_argument("--end", type=date.fromisoformat, default=date(2025, 6, 30))
    args = ap.parse_args(argv)
    shared: Path = args.shared
    out: Path = args.out
    for sub in ("ohlcv", "funding"):  # drop files of tokens a previous run may have written
        for old in sorted((out / sub).glob("*.csv")):
            old.unlink()
    ohlcv = build_ohlcv(shared / "Hurst_Crypto", out, args.start, args.end)
    funding = build_funding(shared / "historical-funding-rates-fetcher", out, args.start,
                            args.end)
    metrics, onsets = build_metrics(shared / "crypto_data_resources", out, args.start, args.end)
    licence = (shared / "historical-funding-rates-fetcher" / "LICENSE.upstream").read_text()
    (out / "PROVENANCE.md").write_bytes(
        render(args.start, args.end, ohlcv, funding, metrics, onsets, licence).encode("utf-8"))
    total = sum(p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file())
    print(f"wrote {out} ({total} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
