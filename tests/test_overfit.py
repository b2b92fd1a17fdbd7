"""The overfitting guards: deflated Sharpe ratio and probability of backtest overfitting.

Checked against the DSR paper's worked example, against independent Monte Carlo / bootstrap
estimates of the quantities the closed forms approximate, against hand-computed small cases,
and on synthetic searches whose answer is known: pure noise, a real edge, a built-in overfit.
"""

from __future__ import annotations

import math
from itertools import pairwise
from statistics import NormalDist

import numpy as np
import pytest

from bot.optimize.overfit import (
    BacktestOverfitting,
    DeflatedSharpe,
    backtest_overfitting,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
)

# --------------------------------------------------------------------------- deflated Sharpe


def test_paper_numerical_example() -> None:
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", section "A numerical
    example": 100 independent trials, V[SR] = 1/2 annualised, the best trial has an annualised
    Sharpe of 2.5 over 5 years of daily data (T = 1250, 250 days a year), skewness -3,
    kurtosis 10. The paper reports SR0 ≈ 0.1132 (per day) and DSR ≈ 0.9004."""
    sr0 = expected_max_sharpe(0.5 / 250, 100)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


@pytest.mark.parametrize(("n", "tolerance"), [(10, 0.05), (100, 0.02), (1000, 0.02)])
def test_expected_max_sharpe_matches_monte_carlo_maximum(n: int, tolerance: float) -> None:
    """SR0 approximates the expected best of N unskilled trials: the mean maximum of N draws
    from N(0, V)."""
    rng = np.random.default_rng(7)
    variance = 0.04
    simulated = float((rng.standard_normal((4000, n)) * math.sqrt(variance)).max(axis=1).mean())
    assert expected_max_sharpe(variance, n) == pytest.approx(simulated, rel=tolerance)


def test_expected_max_sharpe_single_trial_is_zero_and_grows_with_trials() -> None:
    assert expected_max_sharpe(0.01, 1) == 0.0
    values = [expected_max_sharpe(0.01, n) for n in (2, 5, 10, 100, 1000, 10_000)]
    assert all(a < b for a, b in pairwise(values))
    assert expected_max_sharpe(0.0, 1000) == 0.0


def test_reported_sample_statistics() -> None:
    result = deflated_sharpe([1.0, 2.0, 3.0, 4.0], [0.5], n_trials=1)
    assert isinstance(result, DeflatedSharpe)
    # mean 2.5, sample std sqrt(5/3): hand-computed.
    assert result.sharpe == pytest.approx(2.5 / math.sqrt(5.0 / 3.0))
    assert result.observations == 4
    assert result.n_trials == 1
    assert result.skewness == pytest.approx(0.0, abs=1e-12)
    # Population moments of 1..4: m2 = 1.25, m4 = (2·1.5⁴ + 2·0.5⁴)/4 = 2.5625.
    assert result.kurtosis == pytest.approx(2.5625 / 1.25**2)


def test_normal_sample_has_skewness_zero_and_kurtosis_three() -> None:
    rng = np.random.default_rng(3)
    result = deflated_sharpe(list(rng.normal(0.001, 0.02, 20_000)), [0.0], n_trials=1)
    assert abs(result.skewness) < 0.1
    assert abs(result.kurtosis - 3.0) < 0.2


def _edge(seed: int, mean: float = 0.002, std: float = 0.01, size: int = 1000) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, std, size))


def test_strong_edge_with_one_trial_is_significant() -> None:
    result = deflated_sharpe(_edge(1), [0.2], n_trials=1)
    assert result.expected_max_sharpe == 0.0
    assert result.probability > 0.95


def test_deflated_sharpe_falls_as_trials_grow() -> None:
    returns = _edge(2, mean=0.0008)
    trials = list(np.random.default_rng(5).normal(0.0, 0.03, 50))
    probabilities = [deflated_sharpe(returns, trials, n_trials=n).probability
                     for n in (1, 2, 10, 100, 1000, 100_000)]
    assert all(a > b for a, b in pairwise(probabilities))
    # n_trials defaults to the number of trial Sharpes given.
    assert deflated_sharpe(returns, trials).n_trials == 50
    assert (deflated_sharpe(returns, trials).probability
            == deflated_sharpe(returns, trials, n_trials=50).probability)


def test_wide_search_deflates_a_strong_edge_below_even_odds() -> None:
    """A 0.2 per-period Sharpe is overwhelming alone, but it is what the best of 1000 trials
    whose Sharpes spread with std 0.1 shows by luck (SR0 ≈ 0.33)."""
    trials = list(np.random.default_rng(9).normal(0.0, 0.1, 1000))
    result = deflated_sharpe(_edge(1), trials)
    assert result.expected_max_sharpe > result.sharpe
    assert result.probability < 0.5


def _crash_prone(seed: int, size: int = 1000) -> np.ndarray:
    """Small steady gains and rare large losses: negatively skewed, fat-tailed."""
    rng = np.random.default_rng(seed)
    crashes = rng.random(size) < 0.02
    return rng.normal(0.0011, 0.01, size) - 0.04 * crashes


def test_single_trial_matches_bootstrap_probabilistic_sharpe() -> None:
    """With one trial the DSR is the probabilistic Sharpe ratio Φ(SR / σ(SR)). Its σ(SR)
    formula (skewness and kurtosis terms) is checked against the bootstrap standard error of
    the Sharpe of the same non-normal sample."""
    returns = _crash_prone(11)
    result = deflated_sharpe(list(returns), [0.0], n_trials=1)
    assert result.skewness < -0.5 and result.kurtosis > 4.0
    assert 0.6 < result.probability < 0.99  # not saturated: the comparison means something

    rng = np.random.default_rng(12)
    samples = returns[rng.integers(0, returns.size, size=(4000, returns.size))]
    sharpes = samples.mean(axis=1) / samples.std(axis=1, ddof=1)
    bootstrap = NormalDist().cdf(result.sharpe / float(sharpes.std(ddof=1)))
    assert result.probability == pytest.approx(bootstrap, abs=0.02)


def test_negative_skew_lowers_the_deflated_sharpe() -> None:
    """Mirroring around the mean keeps mean, std and kurtosis but flips the skew: the
    crash-prone version earns the same Sharpe with less confidence. Less confidence means
    closer to 1/2 on either side: above the bar (one trial, SR0 = 0) the DSR drops, below the
    bar (SR0 > SR after a search) it rises towards 1/2."""
    returns = _crash_prone(11)
    mirrored = 2.0 * returns.mean() - returns
    negative = deflated_sharpe(list(returns), [0.0], n_trials=1)
    positive = deflated_sharpe(list(mirrored), [0.0], n_trials=1)
    assert negative.skewness == pytest.approx(-positive.skewness)
    assert negative.sharpe == pytest.approx(positive.sharpe)
    assert negative.kurtosis == pytest.approx(positive.kurtosis)
    assert negative.skewness < 0
    assert 0.5 < negative.probability < positive.probability

    trials = [0.01, -0.02, 0.03, 0.0]
    negative = deflated_sharpe(list(returns), trials)
    positive = deflated_sharpe(list(mirrored), trials)
    assert negative.sharpe < negative.expected_max_sharpe
    assert positive.probability < negative.probability < 0.5


def test_losing_returns_have_low_probability() -> None:
    result = deflated_sharpe(_edge(4, mean=-0.001), [0.0], n_trials=1)
    assert result.sharpe < 0
    assert result.probability < 0.01


def test_two_point_returns_stay_a_probability() -> None:
    """A two-point distribution at SR = 2/skew makes the PSR variance term (1 - skew·SR/2)²
    vanish; the result must still be a finite probability, not a math domain error."""
    returns = [1.125] * 10 + [0.125] * 90  # p = 0.1: skew 8/3, SR ≈ 0.75 = 2/skew
    result = deflated_sharpe(returns, [0.0, 0.1, 0.2])
    assert 0.0 <= result.probability <= 1.0
    assert math.isfinite(result.probability)
    # Moments made up by a caller can push the term below zero: clamped, sign decides.
    assert probabilistic_sharpe(1.0, 0.0, 100, 5.0, 1.0) == pytest.approx(1.0)
    assert probabilistic_sharpe(1.0, 2.0, 100, 5.0, 1.0) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("returns", "trials", "n_trials", "message"),
    [
        ([0.01], [0.1], None, "at least 2 returns"),
        ([], [0.1], None, "at least 2 returns"),
        ([0.01, 0.02], [0.1], 0, "n_trials must be >= 1"),
        ([0.01, 0.02], [0.1], -3, "n_trials must be >= 1"),
        ([0.01, 0.02], [], None, "n_trials must be >= 1"),
        ([0.01] * 50, [0.1], None, "zero variance"),
        ([0.0, 0.0, 0.0], [0.1], None, "zero variance"),
        ([0.01, math.nan, 0.02], [0.1], None, "NaN or infinite"),
        ([0.01, 0.02], [0.1, math.inf], None, "NaN or infinite"),
        ([0.01, 0.02, 0.03], [0.1], 5, "at least 2 trial_sharpes"),
    ],
)
def test_deflated_sharpe_rejects_bad_input(returns: list[float], trials: list[float],
                                           n_trials: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        deflated_sharpe(returns, trials, n_trials)


def test_probability_helpers_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0.1, 0)
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_max_sharpe(-0.1, 5)
    with pytest.raises(ValueError, match="observations"):
        probabilistic_sharpe(0.1, 0.0, 1, 0.0, 3.0)


# ------------------------------------------------------------- probability of overfitting


def test_hand_computed_two_block_case() -> None:
    """Two blocks of two rows, three trials; each split's Sharpes worked out by hand.

    Block 0 Sharpes: a √2, b 1.5√2, c 0.5√2. Block 1: a 0.5√2, b 1.5√2, c 5.5√2.
    In sample block 0: b wins, ranks 2 of 3 out of sample → ω = 2/4, λ = 0.
    In sample block 1: c wins, ranks 1 of 3 out of sample → ω = 1/4, λ = ln(1/3).
    """
    returns = [[1.0, 1.0, 0.0],
               [3.0, 2.0, 1.0],
               [0.0, 2.0, 5.0],
               [2.0, 4.0, 6.0]]
    result = backtest_overfitting(returns, blocks=2)
    assert isinstance(result, BacktestOverfitting)
    assert result.splits == 2
    assert result.blocks == 2
    assert result.logits == pytest.approx((0.0, math.log(1.0 / 3.0)), abs=1e-12)
    assert result.probability == 1.0
    assert result.probability_oos_loss == 0.0
    # (IS, OOS) of the winner: (1.5√2, 1.5√2) and (5.5√2, 0.5√2) → slope -1/4.
    assert result.degradation_slope == pytest.approx(-0.25)


def test_sixteen_blocks_evaluate_every_half_split() -> None:
    returns = np.random.default_rng(0).normal(0.0, 0.01, (160, 4))
    result = backtest_overfitting(returns)
    assert result.blocks == 16
    assert result.splits == math.comb(16, 8) == 12_870
    assert len(result.logits) == result.splits
    assert all(math.isfinite(x) for x in result.logits)
    # Each split's complement is also a split; the probabilities are shares.
    assert 0.0 <= result.probability <= 1.0
    assert 0.0 <= result.probability_oos_loss <= 1.0


def test_pure_noise_overfits_about_half_the_time() -> None:
    """With no skill anywhere the in-sample winner is a random pick out of sample: PBO near
    1/2. One seed's PBO moves a lot (the splits share their data), so several are averaged."""
    probabilities = []
    for seed in range(8):
        returns = np.random.default_rng(seed).normal(0.0, 0.01, (1600, 50))
        result = backtest_overfitting(returns, blocks=16)
        assert 0.1 < result.probability < 0.9
        probabilities.append(result.probability)
    assert 0.3 < float(np.mean(probabilities)) < 0.7


def test_a_real_edge_is_not_overfit() -> None:
    rng = np.random.default_rng(21)
    returns = rng.normal(0.0, 0.01, (1600, 50))
    returns[:, 17] += 0.002  # per-period Sharpe ≈ 0.2, persistent
    result = backtest_overfitting(returns, blocks=16)
    assert result.probability < 0.1
    assert result.probability_oos_loss < 0.01
    assert float(np.mean(result.logits)) > 2.0


def test_regime_fitted_strategies_are_overfit() -> None:
    """Each strategy's gains are concentrated in some blocks and given back in the others
    (zero edge overall): whichever looks best in sample is, by construction, in its losing
    regime out of sample."""
    rng = np.random.default_rng(33)
    blocks, rows, trials = 16, 100, 30
    offsets = rng.normal(0.0, 0.004, (blocks, trials))
    offsets -= offsets.mean(axis=0)
    returns = rng.normal(0.0, 0.01, (blocks * rows, trials)) + np.repeat(offsets, rows, axis=0)
    result = backtest_overfitting(returns, blocks=blocks)
    assert result.probability > 0.9
    assert result.probability_oos_loss > 0.8
    assert result.degradation_slope < 0


def test_ties_use_first_in_sample_winner_and_average_rank() -> None:
    """Identical trials: the winner ties with everyone out of sample, average rank (N+1)/2,
    ω = 1/2, λ = 0, which counts as overfit."""
    column = np.random.default_rng(4).normal(0.001, 0.01, 64)
    returns = np.column_stack([column] * 5)
    result = backtest_overfitting(returns, blocks=4)
    assert result.logits == (0.0,) * 6
    assert result.probability == 1.0


def test_zero_variance_in_a_split_has_sharpe_zero() -> None:
    """Trial 0 is constant (0.01, not exactly representable) in the first half and loses in
    the second; trial 1 has a steady edge. Were the constant half's Sharpe taken as huge
    (0.01 / rounding noise), trial 0 would win that in-sample half and rank last out of
    sample; with Sharpe 0 trial 1 wins both splits and ranks first: λ = ln(2) twice."""
    rng = np.random.default_rng(8)
    first = np.full(100, 0.01)
    second = rng.normal(-0.02, 0.01, 100)
    edge = rng.normal(0.01, 0.01, 200)
    returns = np.column_stack([np.concatenate([first, second]), edge])
    result = backtest_overfitting(returns, blocks=2)
    assert result.logits == pytest.approx((math.log(2.0), math.log(2.0)))
    assert result.probability == 0.0


def test_remainder_rows_are_used() -> None:
    """T = 35 over 4 blocks: the 3 extra rows are distributed (blocks of 9, 9, 9, 8), not
    dropped, so the very last row still moves the result."""
    returns = np.random.default_rng(13).normal(0.0, 0.01, (35, 4))
    before = backtest_overfitting(returns, blocks=4)
    changed = returns.copy()
    changed[-1, 0] = 0.5
    after = backtest_overfitting(changed, blocks=4)
    assert before.logits != after.logits


def test_sequences_are_accepted() -> None:
    rows = np.random.default_rng(2).normal(0.0, 0.01, (20, 3)).tolist()
    assert backtest_overfitting(rows, blocks=4) == backtest_overfitting(np.array(rows), blocks=4)


@pytest.mark.parametrize(
    ("returns", "blocks", "message"),
    [
        (np.zeros((20, 3)), 3, "even"),
        (np.zeros((20, 3)), 0, "even"),
        (np.zeros((20, 3)), -2, "even"),
        (np.zeros((20, 1)), 4, "at least 2 trials"),
        (np.zeros((3, 3)), 4, "at least as many periods"),
        (np.zeros(20), 4, "T×N matrix"),
        (np.zeros((2, 3, 4)), 2, "T×N matrix"),
        (np.array([[0.0, math.nan]] * 8), 4, "NaN or infinite"),
        (np.array([[0.0, math.inf]] * 8), 4, "NaN or infinite"),
    ],
)
def test_backtest_overfitting_rejects_bad_input(returns: np.ndarray, blocks: int,
                                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backtest_overfitting(returns, blocks=blocks)
