"""Two overfitting guards for a parameter search: the deflated Sharpe ratio and the
probability of backtest overfitting.

A search that tries many parameter sets and keeps the best one reports a Sharpe ratio that is
the *maximum* of many noisy estimates. Even when no trial has any skill, that maximum grows
with the number of trials, so the chosen parameters always look better than they are. Two
complementary checks say how much of the winner's edge survives the search:

- **Deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", 2014): the probability that the
  chosen trial's true Sharpe is positive, tested not against zero but against the Sharpe the
  best of ``n_trials`` *unskilled* trials would show by luck alone, and with the standard error
  of the Sharpe widened for skewed and fat-tailed returns. It deflates the winner by the number
  of trials.
- **Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu, "The
  Probability of Backtest Overfitting", 2017), by combinatorially symmetric cross-validation:
  cut the history into blocks, and for every way of choosing half of them as in-sample, pick
  the in-sample winner and see where it ranks among all trials on the other half. PBO is how
  often the in-sample winner is at or below the out-of-sample median: a selection process that
  picks noise has PBO near one half (or above), one that picks a real edge near zero.

Both are pure functions of returns (numpy and the standard library, no I/O), so the search can
report them for its chosen parameters and a test can pin them on synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = [
    "BacktestOverfitting",
    "DeflatedSharpe",
    "backtest_overfitting",
    "deflated_sharpe",
    "expected_max_sharpe",
    "probabilistic_sharpe",
]

EULER_MASCHERONI = 0.5772156649015329
"""γ in the expected maximum of N standard normals (Bailey & López de Prado 2014, eq. for SR0)."""

_MIN_VARIANCE_TERM = 1e-12
"""Floor of the Sharpe standard-error term ``1 - skew·SR + (kurt-1)/4·SR²`` (see
:func:`probabilistic_sharpe`)."""

_ZERO_VARIANCE_RELATIVE = 1e-10
"""A split's sum of squared deviations at or below this share of its sum of squares is
rounding noise of a constant series: that trial's Sharpe there is 0, not ±huge."""

_CHUNK_CELLS = 4_000_000
"""Upper bound on splits × trials per chunk in :func:`backtest_overfitting`, so 12,870 splits
of a few hundred trials stay within a few tens of MB."""

_NORMAL = NormalDist()

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    sharpe: float
    """Per-period (non-annualised) Sharpe of the chosen returns (sample std, ddof=1)."""
    expected_max_sharpe: float
    """SR0, per period: the Sharpe the best of ``n_trials`` unskilled trials would show."""
    probability: float
    """DSR = P(true Sharpe > 0 | selected as the best of ``n_trials``), in [0, 1]."""
    n_trials: int
    observations: int
    skewness: float
    kurtosis: float
    """Non-excess (a normal distribution has 3)."""


@dataclass(frozen=True, slots=True)
class BacktestOverfitting:
    probability: float
    """PBO: share of splits whose in-sample best ranks at or below the out-of-sample median
    (logit <= 0)."""
    logits: tuple[float, ...]
    """λ = ln(ω / (1 - ω)) per split, ω the in-sample best's relative out-of-sample rank."""
    splits: int
    """Number of in-sample/out-of-sample combinations evaluated: C(blocks, blocks/2)."""
    blocks: int
    degradation_slope: float
    """Least-squares slope of the chosen trial's out-of-sample Sharpe on its in-sample Sharpe
    across splits: negative means the better it looked in sample, the worse it did out of
    sample. NaN when the in-sample Sharpes do not vary (the slope is undefined)."""
    probability_oos_loss: float
    """Share of splits where the in-sample best has an out-of-sample Sharpe below zero."""


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """SR0: the expected maximum Sharpe of ``n_trials`` independent trials with no skill whose
    Sharpe estimates have variance ``sharpe_variance``.

    This is the bar the chosen trial must clear: beating zero means nothing when the best of N
    coin flips beats zero too. Uses the paper's approximation of the expected maximum of N
    standard normals, ``(1-γ) Φ⁻¹(1-1/N) + γ Φ⁻¹(1-1/(N e))``. With a single trial there is no
    selection, so SR0 = 0 (the formula itself would take Φ⁻¹(0) = -inf).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if not math.isfinite(sharpe_variance) or sharpe_variance < 0:
        raise ValueError(f"sharpe_variance must be finite and >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    z = ((1.0 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1.0 - 1.0 / n)
         + EULER_MASCHERONI * _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e)))
    return math.sqrt(sharpe_variance) * z


def probabilistic_sharpe(sharpe: float, benchmark: float, observations: int, skewness: float,
                         kurtosis: float) -> float:
    """PSR: the probability that the true per-period Sharpe exceeds ``benchmark``, given an
    estimate ``sharpe`` from ``observations`` returns with the given skewness and (non-excess)
    kurtosis.

    The Sharpe estimate's standard error is ``sqrt((1 - skew·SR + (kurt-1)/4·SR²) / (T-1))``:
    negative skew and fat tails make a high Sharpe less trustworthy than the normal case.

    The term under the square root is never negative for moments of an actual sample: any
    distribution has kurt >= 1 + skew², so the term is >= (1 - skew·SR/2)² >= 0. It reaches
    zero only for a two-point distribution at one particular Sharpe (and can dip a hair below
    zero by rounding, or for moments a caller made up). There the standard error vanishes, so
    the term is clamped to a tiny positive number: the probability then goes to 0 or 1 by the
    sign of ``sharpe - benchmark`` instead of failing on a square root of a negative number.
    """
    if observations < 2:
        raise ValueError(f"observations must be >= 2, got {observations}")
    term = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    term = max(term, _MIN_VARIANCE_TERM)
    z = (sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(term)
    return _NORMAL.cdf(z)


def deflated_sharpe(returns: Sequence[float], trial_sharpes: Sequence[float],
                    n_trials: int | None = None) -> DeflatedSharpe:
    """The deflated Sharpe ratio of the chosen trial's per-period ``returns``.

    ``trial_sharpes`` are the per-period Sharpe ratios of every trial the search tried
    (including the chosen one); their sample variance (ddof=1) is V[SR], the spread of luck
    the maximum is drawn from. ``n_trials`` defaults to ``len(trial_sharpes)``; a caller that
    knows its trials are correlated may pass a smaller effective number.

    Sharpe uses the sample std (ddof=1). Skewness and kurtosis are the plain sample moments
    (population form, m3/m2^1.5 and m4/m2²): for them kurt >= 1 + skew² holds exactly, which
    keeps the PSR standard error real (see :func:`probabilistic_sharpe`).
    """
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {values.shape}")
    if values.size < 2:
        raise ValueError(f"need at least 2 returns to estimate a Sharpe ratio, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("returns contain NaN or infinite values")
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    if trials.ndim != 1:
        raise ValueError(f"trial_sharpes must be one-dimensional, got shape {trials.shape}")
    if not np.all(np.isfinite(trials)):
        raise ValueError("trial_sharpes contain NaN or infinite values")
    n = int(trials.size) if n_trials is None else int(n_trials)
    if n < 1:
        raise ValueError(f"n_trials must be >= 1, got {n}"
                         + (" (trial_sharpes is empty)" if n_trials is None else ""))

    mean = float(values.mean())
    deviations = values - mean
    m2 = float(np.mean(deviations**2))
    std = float(values.std(ddof=1))
    if m2 == 0.0 or std == 0.0 or std <= abs(mean) * 1e-12:
        raise ValueError("returns have zero variance: the Sharpe ratio is undefined")
    sharpe = mean / std
    skewness = float(np.mean(deviations**3)) / m2**1.5
    kurtosis = float(np.mean(deviations**4)) / m2**2

    if n == 1:
        variance = 0.0
    elif trials.size < 2:
        raise ValueError(f"n_trials={n} needs at least 2 trial_sharpes to estimate their "
                         f"variance, got {trials.size}")
    else:
        variance = float(trials.var(ddof=1))
    benchmark = expected_max_sharpe(variance, n)
    probability = probabilistic_sharpe(sharpe, benchmark, int(values.size), skewness, kurtosis)
    return DeflatedSharpe(sharpe=sharpe, expected_max_sharpe=benchmark, probability=probability,
                          n_trials=n, observations=int(values.size), skewness=skewness,
                          kurtosis=kurtosis)


def backtest_overfitting(returns: npt.ArrayLike | Sequence[Sequence[float]],
                         blocks: int = 16) -> BacktestOverfitting:
    """PBO by combinatorially symmetric cross-validation over a T×N matrix of ``returns``
    (rows: the same T periods for every trial; columns: the N trials).

    The rows are cut into ``blocks`` contiguous blocks. When T is not a multiple of
    ``blocks`` the remainder is *distributed*, not dropped: the first ``T % blocks`` blocks get
    one row more (``numpy.array_split``), so every period counts — dropping the tail would
    silently discard the most recent data. Each of the C(blocks, blocks/2) choices of half the
    blocks is one in-sample set, its complement the out-of-sample set.

    Per split, each trial's Sharpe (mean / sample std) comes from per-block aggregates (count,
    sum and sum of squares, of returns centred on the trial's full-period mean for numerical
    stability), so a split costs two small matrix products rather than a pass over the data.
    A trial with (numerically) zero variance in a split, or a single row, has Sharpe 0 there.

    Rules for ties, so the result is deterministic: the in-sample best is the first column
    among equals (``argmax``); its out-of-sample rank is the *average* rank among equals
    (rank 1 = worst, N = best), so a trial tied with everyone sits exactly at the median,
    ω = 1/2, λ = 0, which counts as overfit (λ <= 0).
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if isinstance(blocks, bool) or not isinstance(blocks, int | np.integer):
        raise ValueError(f"blocks must be an integer, got {blocks!r}")
    blocks = int(blocks)
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be even and >= 2, got {blocks}")
    if matrix.ndim != 2:
        raise ValueError(f"returns must be a T×N matrix (periods × trials), got shape "
                         f"{matrix.shape}")
    periods, trials = matrix.shape
    if trials < 2:
        raise ValueError(f"need at least 2 trials (columns) to rank, got {trials}")
    if periods < blocks:
        raise ValueError(f"need at least as many periods (rows) as blocks: {periods} < {blocks}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("returns contain NaN or infinite values")

    centre = matrix.mean(axis=0)
    centred = matrix - centre
    bounds = np.array_split(np.arange(periods), blocks)
    starts = np.array([b[0] for b in bounds])
    counts = np.array([b.size for b in bounds], dtype=np.float64)
    sums = np.add.reduceat(centred, starts, axis=0)              # blocks × N
    squares = np.add.reduceat(centred * centred, starts, axis=0)  # blocks × N

    chosen = np.array(list(combinations(range(blocks), blocks // 2)), dtype=np.intp)
    splits = chosen.shape[0]
    in_sample = np.zeros((splits, blocks), dtype=np.float64)
    in_sample[np.arange(splits)[:, None], chosen] = 1.0
    out_sample = 1.0 - in_sample

    logits = np.empty(splits, dtype=np.float64)
    is_best = np.empty(splits, dtype=np.float64)
    oos_best = np.empty(splits, dtype=np.float64)
    step = max(1, _CHUNK_CELLS // trials)
    rows = np.arange(step)
    for first in range(0, splits, step):
        last = min(first + step, splits)
        mask_in = in_sample[first:last]
        mask_out = out_sample[first:last]
        sharpe_in = _split_sharpes(mask_in, counts, sums, squares, centre)
        sharpe_out = _split_sharpes(mask_out, counts, sums, squares, centre)
        index = rows[: last - first]
        best = np.argmax(sharpe_in, axis=1)
        best_oos = sharpe_out[index, best]
        below = np.sum(sharpe_out < best_oos[:, None], axis=1)
        equal = np.sum(sharpe_out == best_oos[:, None], axis=1)  # includes the best itself
        rank = below + (equal + 1) / 2.0
        omega = rank / (trials + 1.0)
        logits[first:last] = np.log(omega / (1.0 - omega))
        is_best[first:last] = sharpe_in[index, best]
        oos_best[first:last] = best_oos

    return BacktestOverfitting(
        probability=float(np.mean(logits <= 0.0)),
        logits=tuple(float(x) for x in logits),
        splits=splits,
        blocks=blocks,
        degradation_slope=_slope(is_best, oos_best),
        probability_oos_loss=float(np.mean(oos_best < 0.0)),
    )


def _split_sharpes(mask: FloatArray, counts: FloatArray, sums: FloatArray, squares: FloatArray,
                   centre: FloatArray) -> FloatArray:
    """Per-trial Sharpe for each split (rows of ``mask`` select blocks) from block aggregates
    of centred returns; 0 where the variance is zero or undefined."""
    n = mask @ counts                       # splits
    s = mask @ sums                         # splits × N
    ss = mask @ squares                     # splits × N
    n_col = n[:, None]
    deviation = ss - s * s / n_col          # sum of squared deviations from the split mean
    defined = (n_col >= 2) & (deviation > _ZERO_VARIANCE_RELATIVE * ss)
    variance = np.where(defined, deviation, 1.0) / np.maximum(n_col - 1.0, 1.0)
    mean = centre[None, :] + s / n_col
    result: FloatArray = np.where(defined, mean / np.sqrt(variance), 0.0)
    return result


def _slope(x: FloatArray, y: FloatArray) -> float:
    """Least-squares slope of ``y`` on ``x``; NaN when ``x`` does not vary."""
    dx = x - x.mean()
    spread = float(np.dot(dx, dx))
    if spread <= 0.0 or not math.isfinite(spread):
        return math.nan
    return float(np.dot(dx, y - y.mean())) / spread
