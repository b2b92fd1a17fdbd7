"""Synthetic markets and portfolios for the rotation-engine tests.

Everything is deterministic (smooth trends plus sine "noise"), so a failing test fails the
same way every run. ``Market`` holds full daily histories and cuts a point-in-time snapshot
at any ``as_of``, the way the replay source does: a row for day D is stamped at D+1 00:00.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bot.domain.models import (
    Bucket,
    Decision,
    MarketSnapshot,
    PerpPosition,
    Portfolio,
    PositionSide,
    SectorSpec,
    Series,
    TokenSpec,
    Universe,
)

DAY0 = datetime(2024, 3, 1, tzinfo=UTC)
"""The first decision of the playbook scenario."""
HISTORY_DAYS = 320


def at(offset_days: int) -> datetime:
    return DAY0 + timedelta(days=offset_days)


def _sector(name: str, bucket: Bucket, stage: int, *tokens: str,
            perp_only: tuple[str, ...] = (), spot_only: tuple[str, ...] = ()) -> SectorSpec:
    specs = tuple(TokenSpec(t, name, listed=date(2020, 1, 1), spot=t not in perp_only,
                            perp=t not in spot_only)
                  for t in tokens)
    return SectorSpec(name, bucket, specs, stage)


UNIVERSE = Universe(
    core=(TokenSpec("BTC", "CORE", listed=date(2017, 8, 17)),
          TokenSpec("ETH", "CORE", listed=date(2017, 8, 17))),
    sectors=(
        _sector("L1", Bucket.ROTATIONAL, 1, "SOL", "AVAX", "ADA", "NEAR", "DOT"),
        _sector("ORACLES", Bucket.ROTATIONAL, 1, "LINK", "FIL"),
        _sector("L2", Bucket.ROTATIONAL, 2, "ARB", "OP", "POL", "IMX"),
        _sector("DEX", Bucket.ROTATIONAL, 3, "UNI", "CRV", "SUSHI"),
        _sector("LENDING", Bucket.ROTATIONAL, 3, "AAVE", "COMP", "SKY", perp_only=("SKY",)),
        _sector("RWA", Bucket.SPECULATIVE, 4, "ONDO", "PENDLE", "PAXG"),
        _sector("PRIVACY", Bucket.SPECULATIVE, 4, "ZEC", "DASH", "XMR", perp_only=("XMR",),
                spot_only=("DASH",)),
    ),
)
SECTOR_OF = {t.symbol: s.name for s in UNIVERSE.sectors for t in s.tokens}
SECTOR_OF.update({t.symbol: "CORE" for t in UNIVERSE.core})
ALL_TOKENS = tuple(t.symbol for t in UNIVERSE.all_tokens())


def daily_series(values: Mapping[int, float]) -> Series:
    """A series from ``{day offset: value}``, each row stamped at the next midnight."""
    return Series(tuple((at(d + 1), v) for d, v in sorted(values.items())))


def wiggle(day: int, seed: int, size: float) -> float:
    """Deterministic noise: a couple of incommensurate sines."""
    return size * (math.sin(day * 0.91 + seed * 1.7) + 0.6 * math.sin(day * 0.37 + seed * 2.9))


@dataclass
class Market:
    """Full daily histories; ``snapshot(as_of)`` sees only what was known then."""

    closes: dict[str, dict[int, float]] = field(default_factory=dict)
    volumes: dict[str, dict[int, float]] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    funding: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)

    def snapshot(self, as_of: datetime, stale: frozenset[str] = frozenset(),
                 lookback_days: int = 400) -> MarketSnapshot:
        since = as_of - timedelta(days=lookback_days)

        def cut(values: Mapping[int, float]) -> Series:
            return Series(tuple(p for p in daily_series(values).points if since < p[0] <= as_of))

        closes = {t: cut(v) for t, v in self.closes.items()}
        return MarketSnapshot(
            as_of=as_of,
            closes={t: s for t, s in closes.items() if s.points},
            quote_volumes={t: cut(v) for t, v in self.volumes.items() if t in closes},
            sector_metrics={sector: {m: cut(v) for m, v in per.items()}
                            for sector, per in self.metrics.items()},
            funding={t: Series(tuple(p for p in pts if since < p[0] <= as_of))
                     for t, pts in self.funding.items()},
            stale=stale,
        )

    def prices(self, as_of: datetime) -> dict[str, Decimal]:
        """The newest visible close per token (what the exchange would mark at)."""
        out = {}
        for token, values in self.closes.items():
            visible = [d for d in values if at(d + 1) <= as_of]
            if visible:
                out[token] = Decimal(str(round(values[max(visible)], 8)))
        return out


def path(days: range, start: float, drift: Callable[[int], float], seed: int,
         noise: float = 0.004) -> dict[int, float]:
    """A price path: log price accumulates ``drift(day)`` plus a little deterministic noise."""
    out, log_price = {}, math.log(start)
    for d in days:
        log_price += drift(d) + wiggle(d, seed, noise)
        out[d] = math.exp(log_price)
    return out


def ramp(before: float, after: float, switch: int) -> Callable[[int], float]:
    """Daily drift ``before`` until day ``switch``, then ``after``."""
    return lambda d: before if d < switch else after


def playbook_market(horizon: int = 12) -> Market:
    """The playbook's Phase 3 story, as data.

    - BTC/ETH grind higher (bull: BTC above its 200-day average).
    - L1 (SOL, AVAX, ...) ran hard over the past six weeks: overbought, funding rich, and its
      TVL has stalled, so net of its own price move TVL is *leaving*.
    - L2 (ARB, OP, ...) turns up two weeks before day 0: TVL inflows, rising developer
      activity and DEX volume, momentum building.
    - Everything else drifts sideways; RWA is quiet.
    """
    days = range(-HISTORY_DAYS, horizon + 1)
    m = Market()
    m.closes["BTC"] = path(days, 30_000, lambda d: 0.0015, 1, noise=0.015)
    m.closes["ETH"] = path(days, 2_000, lambda d: 0.0015, 2, noise=0.02)
    l1_drift = lambda d: 0.001 if d < -45 else (0.009 if d < 0 else 0.004)  # noqa: E731
    l2_drift = ramp(0.0008, 0.012, -16)
    drifts: dict[str, Callable[[int], float]] = {}
    for token in ("SOL", "AVAX", "ADA", "NEAR", "DOT"):
        drifts[token] = l1_drift
    for token in ("ARB", "OP", "POL", "IMX"):
        drifts[token] = l2_drift
    starts = {"SOL": 100, "AVAX": 30, "ADA": 0.5, "NEAR": 4, "DOT": 7, "ARB": 1.2, "OP": 2.5,
              "POL": 0.8, "IMX": 2, "LINK": 14, "FIL": 6, "UNI": 7, "CRV": 0.6, "SUSHI": 1.1,
              "AAVE": 90, "COMP": 55, "SKY": 0.07, "ONDO": 0.6, "PENDLE": 3, "PAXG": 2_000,
              "ZEC": 25, "DASH": 30, "XMR": 150}
    for seed, (token, start) in enumerate(sorted(starts.items()), start=10):
        drift = drifts.get(token, lambda d: 0.0004)
        m.closes[token] = path(days, start, drift, seed, noise=0.02)
    liquidity = {"BTC": 9e9, "ETH": 5e9, "SOL": 2e9, "AVAX": 6e8, "ADA": 4e8, "NEAR": 2e8,
                 "DOT": 1.5e8, "ARB": 5e8, "OP": 3e8, "POL": 2e8, "IMX": 5e7, "LINK": 3e8,
                 "FIL": 1e8, "UNI": 2e8, "CRV": 1e8, "SUSHI": 4e7, "AAVE": 2e8, "COMP": 5e7,
                 "SKY": 3e7, "ONDO": 1.5e8, "PENDLE": 1e8, "PAXG": 2e7, "ZEC": 6e7, "DASH": 3e7,
                 "XMR": 5e7}
    for token, level in liquidity.items():
        m.volumes[token] = {d: level * (1 + wiggle(d, len(token), 0.1)) for d in days}

    def metric(start: float, growth: Callable[[int], float], seed: int) -> dict[int, float]:
        return path(days, start, growth, seed, noise=0.003)

    flat = lambda d: 0.0005  # noqa: E731
    for i, sector in enumerate(s.name for s in UNIVERSE.sectors):
        m.metrics[sector] = {
            "tvl_usd": metric(5e9, flat, 100 + i),
            "volume_usd": metric(4e8, flat, 200 + i),
            "dev_commits": {d: 300 * (1 + wiggle(d, 300 + i, 0.05)) for d in days},
        }
    # L1: TVL stalls while its prices run (net outflow); activity flat.
    m.metrics["L1"]["tvl_usd"] = metric(2e10, ramp(0.004, 0.0, -35), 120)
    # L2: inflows, more developers, more volume from two weeks before day 0.
    m.metrics["L2"]["tvl_usd"] = metric(8e9, ramp(0.0005, 0.02, -16), 121)
    m.metrics["L2"]["volume_usd"] = metric(3e8, ramp(0.0, 0.03, -16), 122)
    m.metrics["L2"]["dev_commits"] = {
        d: 300 * (1 + wiggle(d, 123, 0.05)) * (1.0 if d < -40 else 1.8) for d in days}

    # Funding (hourly rates, 8h settlements): L1 crowded at ~45 % APR, others at baseline.
    baseline = 0.0001 / 8
    for token in ("BTC", "ETH", "SOL", "AVAX", "ADA", "ARB", "OP", "POL"):
        rich = token in ("SOL", "AVAX", "ADA")
        points = []
        for h in range(-120 * 24, (horizon + 1) * 24, 8):
            when = DAY0 + timedelta(hours=h)
            rate = baseline * (4.0 if rich and h > -30 * 24 else 1.0)
            points.append((when, rate))
        m.funding[token] = points
    return m


# ----------------------------------------------------------------------------------------
# Portfolios
# ----------------------------------------------------------------------------------------


def portfolio_from_weights(spot_weights: Mapping[str, float], prices: Mapping[str, Decimal],
                           equity: float = 100_000.0, cash_share: float = 0.0,
                           perps: Mapping[str, PerpPosition] | None = None) -> Portfolio:
    """A portfolio whose spot book has the given shares and ``cash_share`` of equity in USDT."""
    invested = Decimal(str(equity * (1 - cash_share)))
    spot = {t: invested * Decimal(str(w)) / prices[t] for t, w in spot_weights.items() if w > 0}
    spent = sum((a * prices[t] for t, a in spot.items()), Decimal(0))
    return Portfolio(cash=Decimal(str(equity)) - spent, spot=spot, perps=dict(perps or {}),
                     prices=dict(prices))


def follow(decision: Decision, portfolio: Portfolio, prices: Mapping[str, Decimal],
           when: datetime) -> Portfolio:
    """The portfolio after a perfect execution of ``decision`` at ``prices`` (no fees)."""
    marked = reprice(portfolio, prices)
    if not decision.trades:
        return marked
    equity = marked.equity()
    invest = equity * (1 - Decimal(str(decision.cash_reserve)))
    spot = {t: invest * Decimal(str(w)) / prices[t] for t, w in decision.spot_weights.items()}
    perps = {}
    for leg in decision.overlay:
        price = prices[leg.token]
        sign = Decimal(1) if leg.side is PositionSide.LONG else Decimal(-1)
        amount = sign * Decimal(str(leg.equity_fraction)) * equity / price
        perps[leg.token] = PerpPosition(leg.token, amount, price, Decimal(str(leg.leverage)),
                                        price, opened_at=when)
    spent = sum((a * prices[t] for t, a in spot.items()), Decimal(0))
    return Portfolio(cash=equity - spent, spot=spot, perps=perps, prices=dict(prices))


def reprice(portfolio: Portfolio, prices: Mapping[str, Decimal]) -> Portfolio:
    """The same holdings marked at new prices (realising nothing)."""
    perps = {t: PerpPosition(p.token, p.amount, p.entry_price, p.leverage,
                             prices.get(t, p.mark_price), p.liquidation_price, p.stop_price,
                             p.opened_at)
             for t, p in portfolio.perps.items()}
    return Portfolio(portfolio.cash, dict(portfolio.spot), perps,
                     {**portfolio.prices, **prices})


def sector_totals(weights: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for token, weight in weights.items():
        sector = SECTOR_OF.get(token, "OTHER")
        out[sector] = out.get(sector, 0.0) + weight
    return out


PLAYBOOK_START = {"BTC": 0.275, "ETH": 0.275, "SOL": 0.10, "AVAX": 0.10, "ADA": 0.10,
                  "ONDO": 0.05, "PENDLE": 0.05, "PAXG": 0.05}
"""Step 1 of the playbook: core 55 %, established L1s 30 %, RWA 15 %."""
