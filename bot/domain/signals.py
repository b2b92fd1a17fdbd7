"""Sector signals: raw readings, cross-sectional normalisation and the composite score.

Each sector's index is an equal-weighted basket of its most liquid eligible tokens. From it
and the sector metrics come the components (names as in ``SectorScore.components``):

- ``mom_<n>d``: basket log return relative to the benchmark (BTC) over ``n`` days, ending
  ``momentum_skip_days`` before the newest close (short-term reversal skipped);
- ``tvl_<n>d``: sector TVL log growth minus the basket's own USD log return, so rising
  prices alone do not read as inflows;
- ``volume``: DEX/transaction volume, recent average versus the base window before it;
- ``dev``: developer commits, recent versus base (slow, low weight);
- ``fees``: protocol fees (``fees_usd``), recent average versus the base window before it;
- ``attention``: log growth of the sector's category trading volume
  (``category_volume_usd``, CoinGecko), recent 7 days versus the 28 before. Z-scored
  across sectors, the total market's volume growth (common to every sector) cancels out:
  the component equals the growth of the sector's *share* of total category volume, i.e.
  where attention moves, not whether the market is busy;
- ``overbought``: penalty when the index's RSI is above the threshold;
- ``crowding``: penalty when the basket's perp funding is above its own trailing percentile
  or an absolute APR cap, plus leverage crowding where the source has open interest: OI
  grown more than ``OI_CROWDED_GROWTH`` over ``OI_GROWTH_DAYS`` while funding is above
  ``OI_FUNDING_MIN_APR`` (rising OI with rising funding). Without OI data the component is
  what it was; a failed OI read (``oi:<TOKEN>`` stale) leaves that token's crowding unread,
  as stale funding does;
- ``cycle_prior``: the small bonus for the stage after the current leader's (not a signal,
  so it does not count towards confidence).

Growth components are z-scored across the sectors that have them, so no unit dominates;
penalties are already in z-units (zero when nothing is wrong). A missing or stale component
is ``None``: the composite is the weighted mean of the available components and confidence
is the available share of the weight. Missing data never becomes a zero that moves money.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.market_view import MarketView
from bot.domain.models import Regime, SectorScore, SectorSpec, Universe
from bot.domain.params import StrategyParams

HOURS_PER_YEAR = 24 * 365
BASELINE_FUNDING_APR = 0.0001 / 8 * HOURS_PER_YEAR
"""The exchanges' standing 0.01 %/8h interest component (~11 % APR): paying it is normal, so
a token's own crowding threshold never drops below it."""
RSI_POINTS_PER_Z = 10.0
"""Every 10 RSI points above the overbought line cost one z-unit of score."""
MIN_FUNDING_HISTORY = 30
"""Settlements needed before a token's own funding percentile is trusted."""

Z_SCORED = ("mom", "tvl", "volume", "dev", "fees", "attention")

OI_GROWTH_DAYS = 7
"""Open-interest growth is measured over this many days (Binance serves 30 days of it)."""
OI_CROWDED_GROWTH = 0.20
"""Log growth of open interest above which leverage is building (~ +22 % in a week)."""
OI_FUNDING_MIN_APR = 0.15
"""...but only while longs pay funding above this APR, clearly over the standing ~11 %
interest component: growing OI with flat funding is hedged or two-sided, not crowded."""
OI_MAX_AGE_DAYS = 2
"""Open interest whose newest day is older than this is not read (the venue stopped)."""


@dataclass(frozen=True, slots=True)
class FundingReading:
    """A token's current annualised funding and the level above which it is crowded."""

    apr: float
    threshold: float

    @property
    def crowded(self) -> bool:
        return self.apr > self.threshold


@dataclass(frozen=True, slots=True)
class SignalReport:
    """Everything the allocation and overlay need from the signals, plus notes for reasons."""

    scores: tuple[SectorScore, ...]
    unready: Mapping[str, str]
    liquidity: Mapping[str, float]
    token_momentum: Mapping[str, float | None]
    funding: Mapping[str, FundingReading]
    notes: tuple[str, ...]
    stale: frozenset[str] = frozenset()
    atr: Mapping[str, float | None] = field(default_factory=dict)
    """Average true range as a fraction of price per ready token (sizes ATR stops)."""

    def score_of(self, sector: str) -> SectorScore | None:
        for s in self.scores:
            if s.sector == sector:
                return s
        return None

    def is_ready(self, token: str) -> bool:
        return token not in self.unready


def tolerance(params: StrategyParams) -> int:
    """Days a price lookup may fall back to an earlier close."""
    return max(0, int(params.max_price_age_days))


def basket_for(sector: SectorSpec, ready: set[str], liquidity: Mapping[str, float],
               size: int) -> tuple[str, ...]:
    """The sector's index members: its ``size`` most liquid eligible tokens, equal weight."""
    members = [(i, t.symbol) for i, t in enumerate(sector.tokens) if t.symbol in ready]
    members.sort(key=lambda item: (-liquidity.get(item[1], 0.0), item[0]))
    return tuple(symbol for _, symbol in members[:size])


def basket_log_return(view: MarketView, basket: tuple[str, ...], days_back_start: int,
                      days_back_end: int, params: StrategyParams) -> float | None:
    """Mean member log return between two days counted back from the anchor."""
    start = view.anchor - timedelta(days=days_back_start)
    end = view.anchor - timedelta(days=days_back_end)
    returns = [r for t in basket
               if (r := view.log_return(t, start, end, tolerance(params))) is not None]
    return sum(returns) / len(returns) if returns else None


def index_rsi(view: MarketView, basket: tuple[str, ...], days: int) -> float | None:
    """RSI (simple averages) of the equal-weighted index over its last ``days`` daily moves."""
    # Each member's closes of the window, read once (a lookup per member and day was a
    # fifth of a backtest's decision time); a day counts only with both closes positive.
    first = view.anchor - timedelta(days=days)
    members = [view.closes_by_day(t, first, view.anchor) for t in basket]
    moves: list[float] = []
    for back in range(days):
        day = view.anchor - timedelta(days=back)
        prev = day - timedelta(days=1)
        rets = [math.log(last / before) for closes in members
                if (before := closes.get(prev, 0.0)) > 0 and (last := closes.get(day, 0.0)) > 0]
        if rets:
            moves.append(sum(rets) / len(rets))
    if len(moves) < max(2, days - 2):
        return None
    gains = sum(m for m in moves if m > 0)
    losses = -sum(m for m in moves if m < 0)
    if gains + losses <= 0:
        return 50.0
    return 100.0 * gains / (gains + losses)


def _point_time(point: tuple[datetime, float]) -> datetime:
    return point[0]


def funding_reading(view: MarketView, token: str, params: StrategyParams) -> FundingReading | None:
    """Current funding APR and its crowding threshold, or None when unknown or stale."""
    if "funding" in view.stale or f"funding:{token}" in view.stale:
        return None
    points = view.funding.get(token, ())
    recent_from = view.as_of - timedelta(hours=params.funding_recent_hours)
    history_from = view.as_of - timedelta(days=params.funding_history_days)
    # Points are time-ordered (a Series guarantees it): two bisections find both windows
    # instead of two scans of the whole lookback for every token of every decision.
    cut = bisect.bisect_right(points, recent_from, key=_point_time)
    recent = [rate for _when, rate in points[cut:]]
    if not recent:
        return None
    apr = sum(recent) / len(recent) * HOURS_PER_YEAR
    first = bisect.bisect_right(points, history_from, key=_point_time)
    history = sorted(rate for _when, rate in points[first:cut])
    threshold = params.funding_crowded_apr
    if len(history) >= MIN_FUNDING_HISTORY:
        rank = max(0, math.ceil(params.funding_percentile * len(history)) - 1)
        own = max(history[rank] * HOURS_PER_YEAR, BASELINE_FUNDING_APR)
        threshold = min(threshold, own)
    return FundingReading(apr=apr, threshold=threshold)


def oi_growth(view: MarketView, token: str) -> float | None:
    """Log growth of ``token``'s open interest over ``OI_GROWTH_DAYS`` to its newest day, or
    None without (recent enough) data."""
    if f"oi:{token}" in view.stale:
        return None
    series = view.open_interest.get(token)
    if series is None or series.last_day is None:
        return None
    end = series.last_day
    if (view.as_of.date() - end).days > OI_MAX_AGE_DAYS:
        return None
    now = series.on_or_before(end, 0)
    then = series.on_or_before(end - timedelta(days=OI_GROWTH_DAYS), 1)
    if not now or not then or now <= 0 or then <= 0:
        return None
    return math.log(now / then)


def _metric_growth(view: MarketView, sector: str, metric: str, recent_days: int,
                   base_days: int, smoothing: float) -> float | None:
    """log((mean recent + s) / (mean base + s)) over two adjacent windows of the metric."""
    series = view.metric_series(sector, metric)
    if series is None or series.last_day is None:
        return None
    end = series.last_day
    recent = series.window(end - timedelta(days=recent_days), end)
    base = series.window(end - timedelta(days=recent_days + base_days),
                         end - timedelta(days=recent_days))
    if len(recent) < math.ceil(recent_days / 2) or len(base) < math.ceil(base_days / 2):
        return None
    if min(recent + base) < 0:
        return None
    top = sum(recent) / len(recent) + smoothing
    bottom = sum(base) / len(base) + smoothing
    if top <= 0 or bottom <= 0:
        return None
    return math.log(top / bottom)


def _metric_unusable(view: MarketView, sector: str, metric: str, params: StrategyParams,
                     notes: list[str]) -> bool:
    """True when the metric is flagged stale or its newest point is too old."""
    if f"metric:{metric}" in view.stale or f"metric:{metric}:{sector}" in view.stale:
        return True
    series = view.metric_series(sector, metric)
    if series is None or series.last_time is None:
        return True
    age = view.as_of - series.last_time
    if age > timedelta(days=params.max_metric_age_days):
        notes.append(f"stale: metric:{metric}:{sector} (newest point {age.days} days old)")
        return True
    return False


def raw_sector_signals(view: MarketView, sector: SectorSpec, basket: tuple[str, ...],
                       params: StrategyParams, notes: list[str]) -> dict[str, float | None]:
    """The un-normalised components of one sector (see the module docstring)."""
    raw: dict[str, float | None] = {}
    skip = params.momentum_skip_days
    bench = params.benchmark_token
    prices_ok = not view.prices_stale and bool(basket)
    bench_ok = bench not in view.stale and f"prices:{bench}" not in view.stale
    for days in params.momentum_lookbacks:
        value: float | None = None
        if prices_ok and bench_ok:
            sector_ret = basket_log_return(view, basket, skip + days, skip, params)
            bench_ret = basket_log_return(view, (bench,), skip + days, skip, params)
            if sector_ret is not None and bench_ret is not None:
                value = sector_ret - bench_ret
        raw[f"mom_{days}d"] = value

    tvl_ok = not _metric_unusable(view, sector.name, "tvl_usd", params, notes)
    tvl = view.metric_series(sector.name, "tvl_usd")
    for days in params.tvl_lookbacks:
        value = None
        if tvl_ok and prices_ok and tvl is not None and tvl.last_day is not None:
            end = tvl.last_day
            now = tvl.on_or_before(end, 0)
            then = tvl.on_or_before(end - timedelta(days=days), tolerance(params))
            back_end = (view.anchor - end).days
            price_ret = basket_log_return(view, basket, back_end + days, back_end, params)
            if now and then and now > 0 and then > 0 and price_ret is not None:
                value = math.log(now / then) - price_ret
        raw[f"tvl_{days}d"] = value

    raw["volume"] = (None if _metric_unusable(view, sector.name, "volume_usd", params, notes)
                     else _metric_growth(view, sector.name, "volume_usd",
                                         params.volume_recent_days, params.volume_base_days, 0.0))
    raw["dev"] = (None if _metric_unusable(view, sector.name, "dev_commits", params, notes)
                  else _metric_growth(view, sector.name, "dev_commits",
                                      params.dev_recent_days, params.dev_base_days, 1.0))
    # Components without weight are computed (explain and signals show them) but say
    # nothing in the decision's reasons: a note about a signal that moves nothing is noise.
    weights = params.component_weights()
    fees_notes = notes if weights["fees"] > 0 else []
    raw["fees"] = (None if _metric_unusable(view, sector.name, "fees_usd", params, fees_notes)
                   else _metric_growth(view, sector.name, "fees_usd", params.fees_recent_days,
                                       params.fees_base_days, 0.0))
    attention_notes = notes if weights["attention"] > 0 else []
    raw["attention"] = (
        None if _metric_unusable(view, sector.name, "category_volume_usd", params,
                                 attention_notes)
        else _metric_growth(view, sector.name, "category_volume_usd",
                            params.attention_recent_days, params.attention_base_days, 0.0))

    rsi = index_rsi(view, basket, params.rsi_days) if prices_ok else None
    raw["rsi"] = rsi
    if rsi is None:
        raw["overbought"] = None
    else:
        excess = max(0.0, rsi - params.rsi_overbought) / RSI_POINTS_PER_Z
        raw["overbought"] = -min(params.z_clip, excess)
        if excess > 0:
            notes.append(f"overbought: {sector.name} RSI {rsi:.1f} > {params.rsi_overbought:g}")

    penalties: list[float] = []
    for symbol in basket:
        token = next(t for t in sector.tokens if t.symbol == symbol)
        reading = funding_reading(view, symbol, params) if token.perp else None
        if reading is None or f"oi:{symbol}" in view.stale:
            continue  # unknown funding, or OI the venue serves but could not be read
        excess = max(0.0, reading.apr - reading.threshold) / params.funding_crowded_apr
        growth = oi_growth(view, symbol)
        leverage = 0.0
        if growth is not None and growth > OI_CROWDED_GROWTH and reading.apr > OI_FUNDING_MIN_APR:
            leverage = (growth - OI_CROWDED_GROWTH) / OI_CROWDED_GROWTH
            notes.append(f"leverage crowding: {symbol} open interest "
                         f"{math.expm1(growth):+.0%} in {OI_GROWTH_DAYS}d with funding "
                         f"{reading.apr:.0%} APR")
        penalties.append(-min(params.z_clip, excess + leverage))
        if reading.crowded:
            oi = (f", open interest {math.expm1(growth):+.0%} in {OI_GROWTH_DAYS}d"
                  if growth is not None else "")
            notes.append(f"crowded: {symbol} funding {reading.apr:.0%} APR > "
                         f"{reading.threshold:.0%}{oi}")
    raw["crowding"] = sum(penalties) / len(penalties) if penalties else None
    return raw


def zscores(values: Mapping[str, float | None], clip: float) -> dict[str, float | None]:
    """Cross-sectional z-scores (population SD), clipped; None stays None.

    Fewer than two sectors with a value carry no cross-sectional information, so they stay
    None (missing), not zero.
    """
    present = {k: v for k, v in values.items() if v is not None}
    if len(present) < 2:
        return {k: None for k in values}
    mean = sum(present.values()) / len(present)
    sd = math.sqrt(sum((v - mean) ** 2 for v in present.values()) / len(present))
    out: dict[str, float | None] = {}
    for key, value in values.items():
        if value is None:
            out[key] = None
        elif sd <= 1e-12 * max(1.0, abs(mean)):
            out[key] = 0.0
        else:
            out[key] = max(-clip, min(clip, (value - mean) / sd))
    return out


def composite(components: Mapping[str, float | None],
              weights: Mapping[str, float]) -> tuple[float | None, float]:
    """Weighted mean over available components, and the available share of the weight."""
    total = sum(w for w in weights.values() if w > 0)
    used = [(weights[k], v) for k, v in components.items()
            if k in weights and weights[k] > 0 and v is not None]
    available = sum(w for w, _ in used)
    if available <= 0 or total <= 0:
        return None, 0.0
    return sum(w * v for w, v in used) / available, available / total


def benchmark_trend(view: MarketView, params: StrategyParams) -> tuple[float, float] | None:
    """The benchmark's last close and its N-day average, or None without fresh prices or the
    full window of closes."""
    bench = params.benchmark_token
    series = view.closes.get(bench)
    if view.prices_stale or f"prices:{bench}" in view.stale or series is None:
        return None
    closes = [c for c in series.tail(params.regime_sma_days, view.anchor) if c > 0]
    if len(closes) < params.regime_sma_days:
        return None
    return closes[-1], sum(closes) / len(closes)


def regime_of(view: MarketView, params: StrategyParams) -> tuple[Regime, str]:
    """Bull when the benchmark closes above its N-day average; UNKNOWN without the history."""
    bench = params.benchmark_token
    series = view.closes.get(bench)
    if view.prices_stale or f"prices:{bench}" in view.stale or series is None:
        return Regime.UNKNOWN, f"regime unknown: no fresh {bench} prices (treated as bear)"
    trend = benchmark_trend(view, params)
    if trend is None:
        count = len([c for c in series.tail(params.regime_sma_days, view.anchor) if c > 0])
        return Regime.UNKNOWN, (f"regime unknown: {count} {bench} closes < "
                                f"{params.regime_sma_days} (treated as bear)")
    last, sma = trend
    window = f"SMA{params.regime_sma_days}"
    if last >= sma:
        return Regime.BULL, f"regime bull: {bench} {last:.6g} >= {window} {sma:.6g}"
    return Regime.BEAR, f"regime bear: {bench} {last:.6g} < {window} {sma:.6g}"


def score_sectors(view: MarketView, universe: Universe, params: StrategyParams) -> SignalReport:
    """Eligibility, baskets, components, composites, the cycle prior and ranks."""
    notes: list[str] = [f"stale: {key}" for key in sorted(view.stale)]
    unready: dict[str, str] = {}
    for token in universe.all_tokens():
        why = view.token_unready_reason(token, params)
        if why is not None:
            unready[token.symbol] = why
    ready = {t.symbol for t in universe.all_tokens() if t.symbol not in unready}
    liquidity = {t.symbol: view.liquidity(t.symbol, params.liquidity_window_days)
                 for t in universe.all_tokens()}
    skip, longest = params.momentum_skip_days, max(params.momentum_lookbacks)
    bench = basket_log_return(view, (params.benchmark_token,), skip + longest, skip, params)
    token_momentum: dict[str, float | None] = {}
    for symbol in sorted(ready):
        own = basket_log_return(view, (symbol,), skip + longest, skip, params)
        usable = not view.prices_stale
        token_momentum[symbol] = (own - bench if usable and own is not None and bench is not None
                                  else None)
    funding = {symbol: reading for symbol in sorted(ready)
               if (reading := funding_reading(view, symbol, params)) is not None}

    raw: dict[str, dict[str, float | None]] = {}
    for sector in universe.sectors:
        basket = basket_for(sector, ready, liquidity, params.basket_size)
        raw[sector.name] = raw_sector_signals(view, sector, basket, params, notes)

    weights = params.component_weights()
    normalised: dict[str, dict[str, float | None]] = {s.name: {} for s in universe.sectors}
    for name in weights:
        column = {sector_name: raw[sector_name].get(name) for sector_name in raw}
        if name.split("_")[0] in Z_SCORED:
            column = zscores(column, params.z_clip)
        for sector_name, value in column.items():
            normalised[sector_name][name] = value

    base: dict[str, tuple[float | None, float]] = {
        s: composite(normalised[s], weights) for s in normalised
    }
    bonus = _cycle_bonus(universe, base, params)
    scored: list[tuple[str, float | None, float, dict[str, float | None]]] = []
    for sector in universe.sectors:
        score, confidence = base[sector.name]
        components = dict(normalised[sector.name])
        components["cycle_prior"] = bonus.get(sector.name, 0.0) if score is not None else None
        if score is not None:
            score += bonus.get(sector.name, 0.0)
        scored.append((sector.name, score, confidence, components))
    order = sorted((s for s in scored if s[1] is not None),
                   key=lambda item: (-(item[1] or 0.0), item[0]))
    ranks = {name: i + 1 for i, (name, *_rest) in enumerate(order)}
    scores = tuple(SectorScore(name, score, confidence, components, ranks.get(name))
                   for name, score, confidence, components in scored)
    leader_bonus = sorted(name for name, b in bonus.items() if b > 0)
    if leader_bonus:
        notes.append(f"cycle prior: +{params.cycle_bonus:g} to {', '.join(leader_bonus)} "
                     "(next stage after the leader)")
    atr = {symbol: view.atr(symbol, params.stop_atr_days) for symbol in sorted(ready)}
    return SignalReport(scores, unready, liquidity, token_momentum, funding, tuple(notes),
                        view.stale, atr)


def _cycle_bonus(universe: Universe, base: Mapping[str, tuple[float | None, float]],
                 params: StrategyParams) -> dict[str, float]:
    """The bonus for sectors at the stage after the current leader's (1->2->3->4->1).

    The leader is the best composite among confident sectors. The bonus is below the rotation
    threshold by validation, so it can break a near-tie but never start a rotation alone.
    """
    stages = [s.cycle_stage for s in universe.sectors if s.cycle_stage is not None]
    if not stages or params.cycle_bonus <= 0:
        return {}
    confident = [(score, name) for name, (score, conf) in base.items()
                 if score is not None and conf >= params.min_confidence]
    if not confident:
        return {}
    _, leader = min(confident, key=lambda item: (-item[0], item[1]))
    stage = universe.sector(leader).cycle_stage
    if stage is None:
        return {}
    following = stage % max(stages) + 1
    return {s.name: params.cycle_bonus for s in universe.sectors
            if s.cycle_stage == following and s.name != leader
            and base[s.name][0] is not None}

