"""Every knob of the rotation engine, with the default the playbook and the research suggest.

The config layer exposes these fields as the ``[strategy]`` TOML section and validates them
with pydantic (``__pydantic_config__`` forbids unknown keys, so a typo fails loudly). This
module does not import pydantic: the invariants live in ``__post_init__`` so a hand-built
``StrategyParams`` in a test or a backtest is checked exactly like a configured one.

Scores are in z-units (cross-sectional standard deviations), so thresholds such as
``rotation_threshold`` read as "how many standard deviations ahead". Weights and fractions
are shares (0.15 = 15 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

from bot.domain.risk_limits import HARD_MAX_LEVERAGE

STOP_MODES = ("percent", "atr")


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """Strategy parameters. Field docstrings say what each knob does and why its default."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    # ---- point-in-time universe -----------------------------------------------------------
    min_history_days: int = 30
    """Daily closes a token needs before it counts (also after its listing date). Must cover
    the longest momentum lookback plus the skipped day, so every counted token has every
    price signal: a token with a week of history cannot win on noise."""
    max_price_age_days: float = 3.0
    """A token whose newest close is older than this is out (delisted or feed gap)."""
    max_metric_age_days: float = 4.0
    """A sector metric whose newest point is older than this counts as stale (DefiLlama lags
    a day or two; the replay marks a metric stale after three)."""
    benchmark_token: str = "BTC"
    """Momentum is measured against this token, and the regime filter reads its trend."""

    # ---- sector signals -------------------------------------------------------------------
    momentum_lookbacks: tuple[int, ...] = (7, 14, 28)
    """Relative-momentum horizons in days. Crypto momentum holds for 2-4 weeks and reverses
    beyond about a month (signals-notes §5), so nothing longer than ~30 days."""
    momentum_skip_days: int = 1
    """The most recent days left out of momentum, to avoid the short-term reversal."""
    basket_size: int = 5
    """A sector's index is the equal-weighted basket of its most liquid tokens (by average
    quote volume): equal weights cap any one token's influence."""
    liquidity_window_days: int = 28
    """Days of quote volume averaged to rank tokens by liquidity."""
    tvl_lookbacks: tuple[int, ...] = (7, 30)
    """TVL growth horizons in days, each net of the basket's own USD price move."""
    volume_recent_days: int = 7
    """DEX/transaction volume growth compares this recent window..."""
    volume_base_days: int = 28
    """...with the average over this many days before it."""
    dev_recent_days: int = 30
    """Developer activity trend: the recent 30 days of commits..."""
    dev_base_days: int = 90
    """...against the 90 days before them (slow on purpose: a quality filter, not a timer)."""
    fees_recent_days: int = 7
    """Protocol fees growth (DefiLlama) compares this recent window..."""
    fees_base_days: int = 28
    """...with the average over this many days before it."""
    attention_recent_days: int = 7
    """Category attention (CoinGecko category trading volume) compares this recent window..."""
    attention_base_days: int = 28
    """...with the average over this many days before it."""
    rsi_days: int = 14
    """RSI period of the sector index."""
    rsi_overbought: float = 70.0
    """RSI above this is a penalty: every 10 RSI points above it cost one z-unit."""
    funding_recent_hours: float = 24.0
    """Current funding is the average hourly rate over this window, annualised."""
    funding_history_days: float = 90.0
    """The trailing window for a token's own 90th funding percentile."""
    funding_percentile: float = 0.9
    """Funding above this trailing percentile of its own history reads as crowded."""
    funding_crowded_apr: float = 0.30
    """Funding above this APR is crowded whatever its history (signals-notes §5: no new
    leveraged long above ~30 % APR). Also the penalty scale: each such excess costs 1 z."""
    z_clip: float = 3.0
    """Normalised components and penalties are clipped to +/- this many z-units, so one
    outlier cannot dominate the composite."""

    momentum_weight: float = 0.40
    """Composite weight of relative momentum, split equally over ``momentum_lookbacks``."""
    tvl_weight: float = 0.25
    """Composite weight of TVL growth net of price, split equally over ``tvl_lookbacks``."""
    volume_weight: float = 0.10
    """Composite weight of DEX/transaction volume growth."""
    dev_weight: float = 0.05
    """Composite weight of the developer-activity trend (low: a slow quality filter)."""
    fees_weight: float = 0.0
    """Composite weight of protocol fees growth. 0: no evidence yet (the bundled data has
    fees for one sector only), and a signal without evidence gets no weight by default. The
    component is still computed and shown (explain, signals)."""
    attention_weight: float = 0.0
    """Composite weight of category attention (the growth of a sector's CoinGecko category
    volume). 0: no evidence yet (its history only exists from the day a daemon starts
    keeping it)."""
    overbought_weight: float = 0.10
    """Composite weight of the RSI overbought penalty (0 when not overbought)."""
    crowding_weight: float = 0.10
    """Composite weight of the funding crowding penalty (0 when not crowded)."""
    cycle_bonus: float = 0.15
    """Bonus (z-units) for sectors at the cycle stage after the current leader's. Must stay
    below ``rotation_threshold``: the cycle prior may tip a close call, never start a
    rotation on its own."""

    # ---- rotation -------------------------------------------------------------------------
    min_confidence: float = 0.45
    """Share of signal weight that must be available (not missing or stale) before a sector
    can lead. 0.45 lets momentum plus the RSI penalty (0.50) decide when on-chain data is
    absent, as it is after 2023-07 in the bundled sample."""
    rotation_threshold: float = 0.5
    """A rotation starts when the leader beats the most-held sector by more than this."""
    rotation_hold_margin: float = 0.2
    """A running rotation stays valid while the incoming sector leads by at least this
    (hysteresis: below the start threshold, so noise does not end it)."""
    exit_confirmations: int = 3
    """Consecutive valid decisions after the start that confirm the exit."""
    rotation_time_stop_days: int = 21
    """A rotation not confirmed within this many days has failed: overlay closed."""
    rotation_cooldown_days: int = 14
    """After a completed rotation, no new one starts until this many days after its start
    (a narrative runs for weeks). On the bundled 2021-2025 sample this cuts rotations from
    ~30 to ~20 a year without delaying the first one. 0 disables it."""
    rotation_abandon_cooldown_days: int = 7
    """After a rotation is abandoned (signals flipped, time stop), no new one starts for this
    many days: a flip is noise until shown otherwise, and the reverse rotation started in the
    same decision churned LENDING->DEX, DEX->L2, L2->DEX in four days. 0 disables it."""
    leaving_keep_fraction: float = 0.5
    """While its exit is unconfirmed, the sector being left keeps this share of its weight at
    the rotation's start (the playbook's L1 30 % -> 15 %): a transition allocation."""
    exit_residual_fraction: float = 0.10
    """Once the exit is confirmed, the sector left keeps this share of its starting weight as
    a "lottery ticket" (playbook: 5-10 % of the original allocation) until the next
    rotation."""
    rotational_sector_count: int = 1
    """How many sectors share the rotational bucket (the playbook rotates into one)."""
    speculative_sector_count: int = 1
    """How many sectors share the speculative bucket."""
    tokens_per_sector: int = 3
    """Spot tokens bought per sector (never one when two are eligible)."""

    # ---- spot buckets (shares of the spot book) -------------------------------------------
    core_min: float = 0.50
    """Core (BTC/ETH) lower bound."""
    core_max: float = 0.60
    """Core upper bound; the core sits here in a bear or unknown regime."""
    core_weight: float = 0.55
    """Core target in a bull regime."""
    rotational_min: float = 0.20
    """Rotational bucket lower bound."""
    rotational_max: float = 0.30
    """Rotational bucket upper bound for steady-state holdings (a leaving sector's transition
    allocation is tracked in this bucket but not held against this ceiling)."""
    speculative_min: float = 0.10
    """Speculative/new-narrative bucket lower bound; its weight in a bear or unknown regime."""
    speculative_max: float = 0.20
    """Speculative bucket upper bound."""
    speculative_weight: float = 0.15
    """Speculative target in a bull regime."""
    max_shift_per_rebalance: float = 0.15
    """Spot moves slowly: at most this share of the spot book changes hands per rebalance."""
    drift_band: float = 0.02
    """No trade when every token (and the cash share) is within this of its target."""
    regime_sma_days: int = 200
    """The regime filter: the benchmark above its N-day average is a bull market."""

    # ---- futures overlay ------------------------------------------------------------------
    hedge_equity_fraction: float = 0.05
    """Total short notional on the sector being left, as a share of equity."""
    hedge_tokens: int = 3
    """Tokens shorted in the sector being left (its most liquid perps)."""
    hedge_leverage: float = 2.0
    """Leverage of each hedge leg (sets the margin, not the notional)."""
    hedge_stop_distance: float = 0.08
    """Stop distance above entry for each hedge leg."""
    long_equity_fraction: float = 0.10
    """Total long notional on the incoming sector, as a share of equity."""
    long_tokens: int = 2
    """Tokens bought long in the incoming sector (its best by momentum)."""
    long_leverage: float = 2.0
    """Leverage of each long leg (signals-notes §5: cap at 2x; the playbook allows 3x)."""
    long_stop_distance: float = 0.08
    """Stop distance below entry for each long leg."""
    stop_mode: str = "percent"
    """``percent``: a leg's stop sits ``hedge_stop_distance``/``long_stop_distance`` from
    entry. ``atr``: it sits ``stop_atr_multiple`` average true ranges away, inside
    ``[stop_atr_floor, stop_atr_ceiling]``, so volatile tokens get room and calm ones a tight
    stop; a token without ``stop_atr_days`` + 1 closes falls back to the percent distance."""
    stop_atr_multiple: float = 3.0
    """ATRs between entry and stop in ``atr`` mode (3 daily ATRs: about one bad week)."""
    stop_atr_days: int = 14
    """Days averaged into the ATR (the customary 14)."""
    stop_atr_floor: float = 0.03
    """Closest an ATR stop may sit: closer, and noise alone would fire it."""
    stop_atr_ceiling: float = 0.25
    """Farthest an ATR stop may sit: farther, and it stops protecting a leveraged leg."""
    max_leverage: float = 3.0
    """No leg ever requests more. Refused above 5: that ceiling is not configurable."""
    margin_buffer: float = 0.5
    """Cash held for the overlay is its margin times (1 + this): room for fees, funding and
    adverse marks before a stop fires."""
    overlay_drift_ratio: float = 0.25
    """An existing leg within this relative distance of its target size is left alone."""
    defensive_hedge_fraction: float = 0.0
    """The playbook's defensive posture: in a bear regime, short each core token's perp for
    this share of the core spot it holds after the decision (0.5 halves the core's net
    exposure), at ``hedge_leverage`` with a stop like every leg; taken off when the regime
    turns bull. Never more than that spot, so it hedges and is never a naked short. An
    unknown regime (missing data) keeps running hedges but opens none. 0 (the default)
    turns it off: on the bundled data it has not been shown to pay (docs/strategy.md)."""
    defensive_entry_band: float = 0.03
    """A defensive hedge opens or grows only once the benchmark is this far below its
    average (3 %): around the average the regime flips back and forth for days, and each
    flip would open and close a quarter of equity in shorts."""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def bucket_minimum_total(self) -> float:
        return self.core_min + self.rotational_min + self.speculative_min

    def component_weights(self) -> dict[str, float]:
        """The composite's weight per component name (see ``bot.domain.signals``)."""
        weights: dict[str, float] = {}
        for days in self.momentum_lookbacks:
            weights[f"mom_{days}d"] = self.momentum_weight / len(self.momentum_lookbacks)
        for days in self.tvl_lookbacks:
            weights[f"tvl_{days}d"] = self.tvl_weight / len(self.tvl_lookbacks)
        weights["volume"] = self.volume_weight
        weights["dev"] = self.dev_weight
        weights["fees"] = self.fees_weight
        weights["attention"] = self.attention_weight
        weights["overbought"] = self.overbought_weight
        weights["crowding"] = self.crowding_weight
        return weights


def _problems(p: StrategyParams) -> list[str]:
    """Every violated invariant as ``field: reason``; empty when the params are coherent."""
    out: list[str] = []

    def need(ok: bool, name: str, reason: str) -> None:
        if not ok:
            out.append(f"{name}: {reason}")

    for f in fields(p):
        value = getattr(p, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"{f.name}: must be a finite number (got {value})")
    if out:
        return out

    ints = ("min_history_days", "momentum_skip_days", "basket_size", "liquidity_window_days",
            "volume_recent_days", "volume_base_days", "dev_recent_days", "dev_base_days",
            "fees_recent_days", "fees_base_days", "attention_recent_days",
            "attention_base_days",
            "rsi_days", "exit_confirmations", "rotation_time_stop_days", "rotation_cooldown_days",
            "rotation_abandon_cooldown_days",
            "rotational_sector_count", "speculative_sector_count", "tokens_per_sector",
            "regime_sma_days", "hedge_tokens", "long_tokens", "stop_atr_days")
    for name in ints:
        minimum = 0 if name in ("momentum_skip_days", "rotation_cooldown_days",
                                "rotation_abandon_cooldown_days") else 1
        need(getattr(p, name) >= minimum, name, f"must be at least {minimum}")
    need(bool(p.momentum_lookbacks), "momentum_lookbacks", "needs at least one lookback")
    need(all(d >= 1 for d in p.momentum_lookbacks), "momentum_lookbacks",
         "every lookback must be at least 1 day")
    need(all(d >= 1 for d in p.tvl_lookbacks), "tvl_lookbacks",
         "every lookback must be at least 1 day")
    longest = max(p.momentum_lookbacks, default=0) + p.momentum_skip_days + 1
    need(p.min_history_days >= longest, "min_history_days",
         f"{p.min_history_days} is shorter than the longest momentum window plus skip "
         f"({longest} closes)")
    need(p.rsi_days + 1 <= p.min_history_days, "rsi_days",
         "the RSI window must fit in min_history_days")
    need(p.tokens_per_sector >= 2, "tokens_per_sector",
         "must be at least 2 (never one token when a sector has two)")
    need(p.max_price_age_days > 0, "max_price_age_days", "must be positive")
    need(p.max_metric_age_days > 0, "max_metric_age_days", "must be positive")
    need(bool(p.benchmark_token), "benchmark_token", "must name a token")
    need(0 < p.rsi_overbought < 100, "rsi_overbought", "must be inside (0, 100)")
    need(p.funding_recent_hours > 0, "funding_recent_hours", "must be positive")
    need(p.funding_history_days * 24 > p.funding_recent_hours, "funding_history_days",
         "must be longer than funding_recent_hours")
    need(0 < p.funding_percentile < 1, "funding_percentile", "must be inside (0, 1)")
    need(p.funding_crowded_apr > 0, "funding_crowded_apr", "must be positive")
    need(p.z_clip > 0, "z_clip", "must be positive")

    weight_names = ("momentum_weight", "tvl_weight", "volume_weight", "dev_weight",
                    "fees_weight", "attention_weight", "overbought_weight", "crowding_weight")
    for name in weight_names:
        need(getattr(p, name) >= 0, name, "must not be negative")
    need(sum(getattr(p, n) for n in weight_names) > 0, "momentum_weight",
         "at least one component weight must be positive")
    need(p.cycle_bonus >= 0, "cycle_bonus", "must not be negative")
    need(p.cycle_bonus < p.rotation_threshold, "cycle_bonus",
         f"{p.cycle_bonus} must stay below rotation_threshold {p.rotation_threshold}: the "
         "cycle prior alone must never start a rotation")

    need(0 <= p.min_confidence <= 1, "min_confidence", "must be inside [0, 1]")
    need(p.rotation_threshold > 0, "rotation_threshold", "must be positive")
    need(0 <= p.rotation_hold_margin <= p.rotation_threshold, "rotation_hold_margin",
         "must be inside [0, rotation_threshold] (hysteresis)")
    need(0 <= p.leaving_keep_fraction <= 1, "leaving_keep_fraction", "must be inside [0, 1]")
    need(0 <= p.exit_residual_fraction <= p.leaving_keep_fraction, "exit_residual_fraction",
         "must be inside [0, leaving_keep_fraction]: the residual only ever shrinks")

    for bucket in ("core", "rotational", "speculative"):
        low, high = getattr(p, f"{bucket}_min"), getattr(p, f"{bucket}_max")
        need(0 <= low <= high <= 1, f"{bucket}_min",
             f"bounds [{low}, {high}] must satisfy 0 <= min <= max <= 1")
    need(p.core_min <= p.core_weight <= p.core_max, "core_weight",
         "must lie inside [core_min, core_max]")
    need(p.speculative_min <= p.speculative_weight <= p.speculative_max, "speculative_weight",
         "must lie inside [speculative_min, speculative_max]")
    need(p.bucket_minimum_total <= 1 + 1e-12, "core_min",
         f"bucket minimums sum to {p.bucket_minimum_total:.4f} > 1: bounds cannot sum to 100 %")
    maximum_total = p.core_max + p.rotational_max + p.speculative_max
    need(maximum_total >= 1 - 1e-12, "core_max",
         f"bucket maximums sum to {maximum_total:.4f} < 1: bounds cannot sum to 100 %")
    need(0 < p.max_shift_per_rebalance <= 1, "max_shift_per_rebalance",
         "must be inside (0, 1]")
    need(0 <= p.drift_band < 1, "drift_band", "must be inside [0, 1)")
    need(p.regime_sma_days >= 2, "regime_sma_days", "must be at least 2")

    need(0 < p.max_leverage <= HARD_MAX_LEVERAGE, "max_leverage",
         f"{p.max_leverage} is outside (0, {HARD_MAX_LEVERAGE}]: the ceiling of "
         f"{HARD_MAX_LEVERAGE:g}x is not configurable")
    for side in ("hedge", "long"):
        lev = getattr(p, f"{side}_leverage")
        need(0 < lev <= p.max_leverage, f"{side}_leverage",
             f"{lev} must be inside (0, max_leverage {p.max_leverage}]")
        need(0 < getattr(p, f"{side}_stop_distance") < 1, f"{side}_stop_distance",
             "must be inside (0, 1): every leg needs a stop")
        need(0 <= getattr(p, f"{side}_equity_fraction") <= 1, f"{side}_equity_fraction",
             "must be inside [0, 1]")
    need(p.stop_mode in STOP_MODES, "stop_mode", f"must be one of {', '.join(STOP_MODES)}")
    need(p.stop_atr_multiple > 0, "stop_atr_multiple", "must be positive")
    need(0 < p.stop_atr_floor <= p.stop_atr_ceiling < 1, "stop_atr_floor",
         f"[{p.stop_atr_floor}, {p.stop_atr_ceiling}] must satisfy 0 < floor <= ceiling < 1")
    need(p.margin_buffer >= 0, "margin_buffer", "must not be negative")
    need(p.overlay_drift_ratio >= 0, "overlay_drift_ratio", "must not be negative")
    need(0 <= p.defensive_hedge_fraction <= 1, "defensive_hedge_fraction",
         "must be inside [0, 1]: a share of the core spot held, never more")
    need(0 <= p.defensive_entry_band < 1, "defensive_entry_band", "must be inside [0, 1)")
    if p.hedge_leverage > 0 and p.long_leverage > 0:
        # The worst case: every leg at once, the defensive hedge on a core at its maximum.
        reserve = (p.hedge_equity_fraction / p.hedge_leverage
                   + p.long_equity_fraction / p.long_leverage
                   + p.core_max * p.defensive_hedge_fraction / p.hedge_leverage
                   ) * (1 + p.margin_buffer)
        need(reserve < 0.5, "long_equity_fraction",
             f"the overlay would hold {reserve:.1%} of equity as margin; keep it under 50 %")
    return out
