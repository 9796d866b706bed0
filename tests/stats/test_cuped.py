"""CUPED from sufficient statistics, checked against OLS of outcome on arm and covariate."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from xngin.stats.cuped import cuped_test, pooled_theta, variance_reduction
from xngin.stats.estimators import welch_t_test
from xngin.stats.sufficient import CupedStats


def _arm(
    rng: np.random.Generator, n: int, lift: float, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    # Pre-period spend x (skewed) predicts the outcome y; the treatment adds `lift`.
    x = rng.gamma(2.0, 5.0, size=n)
    y = 3.0 + lift + 0.8 * x + rng.normal(0.0, noise, size=n)
    return y, x


def _ols(y: np.ndarray, arm: np.ndarray, x: np.ndarray, n_arms: int, cov_type: str):  # type: ignore[no-untyped-def]
    dummies = np.column_stack([(arm == a).astype(float) for a in range(1, n_arms)])
    design = sm.add_constant(np.column_stack([dummies, x - x.mean()]))
    return sm.OLS(y, design).fit(cov_type=cov_type)


def test_cuped_effect_equals_the_ols_arm_coefficient_and_its_robust_standard_error() -> None:
    rng = np.random.default_rng(20)
    yb, xb = _arm(rng, 3000, 0.0, 4.0)
    yt, xt = _arm(rng, 2000, 0.5, 5.0)
    result = cuped_test(CupedStats.from_values(yb, xb), CupedStats.from_values(yt, xt))
    arm = np.r_[np.zeros(yb.size), np.ones(yt.size)]
    fit = _ols(np.r_[yb, yt], arm, np.r_[xb, xt], 2, "HC2")
    assert result.ok
    # Same point estimate by Frisch-Waugh-Lovell: exact up to rounding.
    assert result.effect == pytest.approx(fit.params[1], rel=1e-10)
    # CUPED treats theta as known and uses per-arm n - 1 variances; HC2 estimates theta and
    # weights by leverage. The gap is O(1/n): within 0.1% at n = 5,000.
    assert result.std_error == pytest.approx(fit.bse[1], rel=1e-3)
    assert result.ci_lower == pytest.approx(fit.conf_int()[1][0], rel=2e-3)


def test_cuped_with_theta_pooled_over_three_arms_equals_multi_arm_ols() -> None:
    rng = np.random.default_rng(21)
    data = [_arm(rng, n, lift, 4.0) for n, lift in ((1500, 0.0), (1500, 0.4), (1200, -0.3))]
    arms = [CupedStats.from_values(y, x) for y, x in data]
    theta = pooled_theta(arms)
    centre = sum(a.sum_x for a in arms) / sum(a.n for a in arms)
    y = np.concatenate([d[0] for d in data])
    x = np.concatenate([d[1] for d in data])
    arm = np.repeat([0, 1, 2], [1500, 1500, 1200])
    fit = _ols(y, arm, x, 3, "HC1")
    assert theta == pytest.approx(fit.params[3], rel=1e-10)
    for index in (1, 2):
        result = cuped_test(arms[0], arms[index], theta=theta, covariate_mean=centre)
        assert result.effect == pytest.approx(fit.params[index], rel=1e-9)
        assert result.std_error == pytest.approx(fit.bse[index], rel=2e-3)
        # The adjusted baseline mean is the OLS intercept (covariate centred on all arms).
        assert result.baseline_mean == pytest.approx(fit.params[0], rel=1e-10)


def test_variance_reduction_is_the_squared_within_arm_correlation() -> None:
    # With y = x + e and Var(x) = Var(e), corr(x, y)**2 = 0.5 in theory.
    rng = np.random.default_rng(22)
    xb, xt = rng.normal(0, 1, 20000), rng.normal(0, 1, 20000)
    yb, yt = xb + rng.normal(0, 1, 20000), xt + 0.05 + rng.normal(0, 1, 20000)
    arms = [CupedStats.from_values(yb, xb), CupedStats.from_values(yt, xt)]
    within_r = np.corrcoef(
        np.r_[xb - xb.mean(), xt - xt.mean()], np.r_[yb - yb.mean(), yt - yt.mean()]
    )[0, 1]
    assert variance_reduction(arms) == pytest.approx(within_r**2, rel=1e-9)
    assert variance_reduction(arms) == pytest.approx(0.5, abs=0.02)
    result = cuped_test(*arms)
    unadjusted = welch_t_test(arms[0].outcome, arms[1].outcome)
    assert result.variance_reduction == pytest.approx(0.5, abs=0.02)
    assert result.std_error is not None and unadjusted.std_error is not None
    assert result.variance_reduction == pytest.approx(
        1 - result.std_error**2 / unadjusted.std_error**2, rel=1e-12
    )


def test_a_constant_covariate_falls_back_to_the_unadjusted_welch_test() -> None:
    rng = np.random.default_rng(23)
    yb, yt = rng.normal(5, 1, 300), rng.normal(5.2, 1, 250)
    result = cuped_test(
        CupedStats.from_values(yb, np.ones(300)), CupedStats.from_values(yt, np.ones(250))
    )
    welch = welch_t_test(
        CupedStats.from_values(yb, yb).outcome, CupedStats.from_values(yt, yt).outcome
    )
    assert result.effect == pytest.approx(welch.effect, rel=1e-12)
    assert result.p_value == pytest.approx(welch.p_value, rel=1e-9)
    assert result.variance_reduction == pytest.approx(0.0, abs=1e-12)
    assert any("unadjusted" in note for note in result.notes)


def test_cuped_bad_metrics_give_error_results() -> None:
    one = CupedStats.from_values([1.0], [1.0])
    two = CupedStats.from_values([1.0, 2.0], [1.0, 2.0])
    assert cuped_test(one, two).error_code == "too_few_participants"
    # The covariate predicts the outcome exactly: nothing left to test.
    exact = CupedStats.from_values([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    shifted = CupedStats.from_values([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])
    assert cuped_test(exact, shifted).error_code == "zero_variance"
