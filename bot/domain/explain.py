"""Plain-text explanation of a decision (``sectorbot explain``) and of the current sector
signals (``sectorbot signals``), for people.

Everything shown comes from the decision itself (scores, reasons, targets, overlay), so a
stored decision explains itself later without the snapshot. Passing the universe groups the
target tokens by sector; without it they are listed by bucket totals and token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from bot.domain.models import Bucket, Decision, SectorScore, Universe

COMPONENT_ORDER = ("mom", "tvl", "volume", "fees", "dev", "attention", "overbought", "crowding",
                   "cycle_prior")


def _component_key(name: str) -> tuple[int, int, str]:
    stem = name.split("_")[0] if not name.startswith("cycle_prior") else "cycle_prior"
    rank = COMPONENT_ORDER.index(stem) if stem in COMPONENT_ORDER else len(COMPONENT_ORDER)
    days = re.search(r"_(\d+)d$", name)
    return rank, int(days.group(1)) if days else 0, name


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "  ") -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = []
    for row in [list(header), *rows]:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=False))]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def render_decision(d: Decision, universe: Universe | None = None) -> str:
    """A readable report: header, sector score table, reasons, spot targets, overlay."""
    out = [f"Decision {d.decision_id}  as of {d.as_of.isoformat()}",
           f"action: {d.action}   regime: {d.regime.value}   "
           f"data confidence: {d.confidence:.2f}"]
    if d.rotation is None:
        out.append("rotation: none")
    else:
        r = d.rotation
        out.append(f"rotation: {r.from_sector} -> {r.to_sector}, started "
                   f"{r.started.date().isoformat()}, {r.from_sector} at start "
                   f"{_pct(r.from_weight_at_start)}, confirmations {r.confirmations}")

    out += ["", "Sector scores (z-units; '-' = missing or stale)"]
    names = sorted({k for s in d.scores for k in s.components}, key=_component_key)
    ordered = sorted(d.scores, key=lambda s: (s.rank is None, s.rank or 0, s.sector))
    rows = [[str(s.rank) if s.rank is not None else "-", s.sector, _num(s.score),
             f"{s.confidence:.2f}", *(_num(s.components.get(n)) for n in names)]
            for s in ordered]
    out += _table(["rank", "sector", "score", "conf", *names], rows)

    out += ["", "Why"]
    out += [f"  - {reason}" for reason in d.reasons] or ["  (no reasons recorded)"]

    out += ["", f"Spot targets (shares of the spot book; cash reserve {_pct(d.cash_reserve)} "
                "of equity)"]
    out += _spot_lines(d, universe)

    out += ["", "Overlay (perpetuals; notional as a share of equity)"]
    if not d.overlay:
        out.append("  none")
    else:
        rows = [[leg.side.value, leg.token, _pct(leg.equity_fraction), f"{leg.leverage:g}x",
                 _pct(leg.stop_distance), leg.reason] for leg in d.overlay]
        out += _table(["side", "token", "notional", "leverage", "stop", "reason"], rows)
    return "\n".join(out) + "\n"


def _spot_lines(d: Decision, universe: Universe | None) -> list[str]:
    lines = [f"  {b.value:<12} {_pct(d.bucket_weights.get(b, 0.0)):>6}" for b in Bucket]
    if not d.spot_weights:
        return [*lines, "  (no spot holdings)"]
    placed: dict[str, tuple[str, str]] = {}
    if universe is not None:
        for spec in universe.core:
            placed[spec.symbol] = (Bucket.CORE.value, "CORE")
        for sector_spec in universe.sectors:
            for spec in sector_spec.tokens:
                placed[spec.symbol] = (sector_spec.bucket.value, sector_spec.name)
    groups: dict[tuple[str, str], list[str]] = {}
    for symbol in sorted(d.spot_weights):
        key = placed.get(symbol, ("other", "-")) if universe is not None else ("-", "-")
        groups.setdefault(key, []).append(symbol)
    bucket_rank = {b.value: i for i, b in enumerate(Bucket)}
    rows: list[list[str]] = []
    for (bucket, sector), symbols in sorted(
            groups.items(), key=lambda kv: (bucket_rank.get(kv[0][0], 9), kv[0])):
        total = sum(d.spot_weights[t] for t in symbols)
        detail = ", ".join(f"{t} {_pct(d.spot_weights[t])}" for t in symbols)
        rows.append([bucket, sector, _pct(total), detail])
    return [*lines, "", *_table(["bucket", "sector", "weight", "tokens"], rows)]


def render_signals(as_of: datetime, scores: Sequence[SectorScore],
                   ages: Mapping[str, Mapping[str, float | None]],
                   stale: Iterable[str], source: str) -> str:
    """``sectorbot signals``: each sector's components (z-units), composite, confidence and
    the age in days of each sector metric's newest point, then what is stale."""
    out = [f"Sector signals as of {as_of.isoformat()} from {source} "
           "(z-units; '-' = missing or stale)"]
    names = sorted({k for s in scores for k in s.components}, key=_component_key)
    metrics = sorted({m for per in ages.values() for m in per})
    ordered = sorted(scores, key=lambda s: (s.rank is None, s.rank or 0, s.sector))
    rows = [[str(s.rank) if s.rank is not None else "-", s.sector, _num(s.score),
             f"{s.confidence:.2f}", *(_num(s.components.get(n)) for n in names),
             *(_age(ages.get(s.sector, {}).get(m)) for m in metrics)]
            for s in ordered]
    out += _table(["rank", "sector", "score", "conf", *names,
                   *(f"{m.removesuffix('_usd')}_age" for m in metrics)], rows)
    keys = sorted(stale)
    out += ["", "Stale"] + ([f"  - {k}" for k in keys] or ["  none"])
    return "\n".join(out) + "\n"


def _age(days: float | None) -> str:
    return "-" if days is None else f"{days:.1f}d"
