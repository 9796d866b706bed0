"""Always-valid inference: closed form of the mSPRT, and error rates by seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from xngin.stats.estimators import welch_t_test
from xngin.stats.sequential import (
    always_valid_p_values,
    confidence_sequences,
    log_mixture_likelihood_ratio,
    sequential_test,
)
from xngin.stats.sufficient import MeanStats

LOOKS = 20
PER_LOOK = 50  # participants per arm added between looks
SIMULATIONS = 4000
ALPHA = 0.05
# Binomial SD of a rejection rate of 0.05 over 4,000 runs is 0.0034; allow three of them.
MONTE_CARLO_TOLERANCE = 0.011


def _cumulative_looks(
    rng: np.random.Generator, kind: str, effect: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate SIMULATIONS experiments observed at LOOKS looks, vectorized.

    Exact per-look sufficient statistics are drawn instead of rows: for normal data the batch
    sum is normal and the within-batch sum of squares is sigma**2 chi2(m - 1), independent of
    it; for 0/1 data the batch sum is binomial. Returns estimated effects, Welch standard errors
    and participants per arm, each of shape (SIMULATIONS, LOOKS).
    """
    shape = (2, SIMULATIONS, LOOKS)
    m = PER_LOOK
    if kind == "normal":
        means = np.array([0.0, effect])[:, None, None]
        batch_sum = rng.normal(m * means, math.sqrt(m), size=shape)
        batch_sum_sq = rng.chisquare(m - 1, size=shape) + batch_sum**2 / m
    else:
        rates = np.array([0.1, 0.1 + effect])[:, None, None]
        batch_sum = rng.binomial(m, np.broadcast_to(rates, shape)).astype(float)
        batch_sum_sq = batch_sum
    n = m * np.arange(1, LOOKS + 1)
    total = np.cumsum(batch_sum, axis=-1)
    total_sq = np.cumsum(batch_sum_sq, axis=-1)
    mean = total / n
    variance = (total_sq - total**2 / n) / (n - 1)
    estimate = mean[1] - mean[0]
    std_error = np.sqrt(variance[0] / n + variance[1] / n)
    return estimate, std_error, np.broadcast_to(n, estimate.shape)


def _tau2(std_error: np.ndarray, n: np.ndarray, mixing_sd: float = 0.1) -> np.ndarray:
    # Same scaling sequential_test applies: mixing_sd participant SDs.
    return (mixing_sd * std_error / np.sqrt(2 / n)) ** 2


def test_statistic_equals_the_two_stream_formula_of_johari_et_al() -> None:
    # KDD 2017: Lambda = sqrt(2s^2 / (2s^2 + n tau^2)) exp(n^2 tau^2 d^2 / (4 s^2 (2s^2 + n tau^2)))
    sigma2, n, tau2, d = 4.0, 500, 0.09, 0.35
    paper = 0.5 * math.log(2 * sigma2 / (2 * sigma2 + n * tau2)) + n**2 * tau2 * d**2 / (
        4 * sigma2 * (2 * sigma2 + n * tau2)
    )
    ours = log_mixture_likelihood_ratio(d, math.sqrt(2 * sigma2 / n), tau2=tau2)
    assert float(ours) == pytest.approx(paper, rel=1e-12)


def test_p_value_below_alpha_exactly_when_the_sequence_excludes_the_null() -> None:
    effects = np.linspace(-0.5, 0.5, 41)
    p_values = always_valid_p_values(effects[:, None], np.full((41, 1), 0.1), tau2=0.04)[:, 0]
    lower, upper = confidence_sequences(
        effects[:, None], np.full((41, 1), 0.1), tau2=0.04, alpha=ALPHA
    )
    excluded = (lower[:, 0] > 0) | (upper[:, 0] < 0)
    assert np.array_equal(p_values <= ALPHA, excluded)
    assert excluded.any() and not excluded.all()


@pytest.mark.parametrize("kind", ["normal", "binary"])
def test_null_rejection_over_twenty_looks_stays_below_alpha(kind: str) -> None:
    rng = np.random.default_rng(60 if kind == "normal" else 61)
    estimate, std_error, n = _cumulative_looks(rng, kind, effect=0.0)
    p_values = always_valid_p_values(estimate, std_error, tau2=_tau2(std_error, n))
    assert np.all(np.diff(p_values, axis=-1) <= 0)
    ever_rejected = float(np.mean(p_values[:, -1] < ALPHA))
    assert ever_rejected <= ALPHA + MONTE_CARLO_TOLERANCE
    # The simulation has teeth: peeking at the fixed-horizon z p-value inflates the error.
    naive = 2 * scipy_stats.norm.sf(np.abs(estimate / std_error))
    assert float(np.mean((naive < ALPHA).any(axis=-1))) > 2.5 * ALPHA


def test_a_true_effect_is_eventually_detected() -> None:
    rng = np.random.default_rng(62)
    estimate, std_error, n = _cumulative_looks(rng, "normal", effect=0.25)
    p_values = always_valid_p_values(estimate, std_error, tau2=_tau2(std_error, n))
    assert float(np.mean(p_values[:, -1] < ALPHA)) > 0.95


def test_confidence_sequence_covers_the_true_effect_at_every_look() -> None:
    rng = np.random.default_rng(63)
    estimate, std_error, n = _cumulative_looks(rng, "normal", effect=0.15)
    lower, upper = confidence_sequences(estimate, std_error, tau2=_tau2(std_error, n), alpha=ALPHA)
    assert np.all(np.diff(lower, axis=-1) >= 0) and np.all(np.diff(upper, axis=-1) <= 0)
    always_covered = float(np.mean(((lower <= 0.15) & (upper >= 0.15)).all(axis=-1)))
    assert always_covered >= 1 - ALPHA - MONTE_CARLO_TOLERANCE


def test_sequential_test_keeps_p_values_non_increasing_across_looks() -> None:
    rng = np.random.default_rng(64)
    baseline, treatment = MeanStats.empty(), MeanStats.empty()
    previous = None
    history = []
    for _ in range(8):
        baseline = baseline + MeanStats.from_values(rng.normal(0.0, 1.0, 200))
        treatment = treatment + MeanStats.from_values(rng.normal(0.1, 1.0, 200))
        look = sequential_test(welch_t_test(baseline, treatment), previous=previous)
        assert look is not None
        if previous is not None:
            assert look.always_valid_p_value <= previous.always_valid_p_value
            assert previous.ci_lower <= look.ci_lower <= look.ci_upper <= previous.ci_upper
        history.append(look)
        previous = look
    # The always-valid interval is wider than the fixed-horizon one at the same look.
    final = welch_t_test(baseline, treatment)
    assert final.ci_lower is not None and final.ci_upper is not None
    assert history[-1].ci_upper - history[-1].ci_lower > final.ci_upper - final.ci_lower


def test_sequential_test_skips_failed_comparisons() -> None:
    assert sequential_test(welch_t_test(MeanStats(1, 1.0, 1.0), MeanStats(5, 5.0, 7.0))) is None
