"""Delta method for ratio metrics, checked against raw-data linearization and a bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from xngin.stats.ratio import ratio_delta_test, ratio_variance
from xngin.stats.sufficient import RatioStats


def _orders_and_revenue(
    rng: np.random.Generator, n: int, revenue_per_order: float
) -> tuple[np.ndarray, np.ndarray]:
    # Participants with 0-9 orders and correlated revenue: the ratio's observations cluster.
    orders = rng.poisson(2.0, size=n).astype(float)
    revenue = orders * revenue_per_order * rng.gamma(4.0, 0.25, size=n) + rng.normal(0, 1, n)
    return revenue, orders


def _linearized_variance(x: np.ndarray, y: np.ndarray) -> float:
    # Influence values of R = mean(x) / mean(y): (x_i - R y_i) / mean(y), computed row by row.
    ratio = x.sum() / y.sum()
    influence = (x - ratio * y) / y.mean()
    return float(influence.var(ddof=1) / x.size)


def test_ratio_variance_equals_linearization_on_the_raw_rows() -> None:
    rng = np.random.default_rng(10)
    x, y = _orders_and_revenue(rng, 2500, 20.0)
    assert ratio_variance(RatioStats.from_values(x, y)) == pytest.approx(
        _linearized_variance(x, y), rel=1e-9
    )


def test_ratio_comparison_matches_a_direct_computation_on_raw_rows() -> None:
    rng = np.random.default_rng(11)
    xb, yb = _orders_and_revenue(rng, 3000, 20.0)
    xt, yt = _orders_and_revenue(rng, 2600, 21.0)
    result = ratio_delta_test(
        RatioStats.from_values(xb, yb), RatioStats.from_values(xt, yt), alpha=0.1
    )
    effect = xt.sum() / yt.sum() - xb.sum() / yb.sum()
    se = math.sqrt(_linearized_variance(xb, yb) + _linearized_variance(xt, yt))
    assert result.ok and result.df is None
    assert result.effect == pytest.approx(effect, rel=1e-10)
    assert result.std_error == pytest.approx(se, rel=1e-9)
    assert result.p_value == pytest.approx(2 * scipy_stats.norm.sf(abs(effect / se)), rel=1e-8)
    assert result.ci_upper == pytest.approx(effect + scipy_stats.norm.isf(0.05) * se, rel=1e-9)


def test_ratio_standard_error_agrees_with_a_participant_bootstrap() -> None:
    # Resampling participants (not orders) is the direct route to the ratio's sampling spread.
    # 1,000 resamples estimate an SD with ~2.2% relative error; allow 8%.
    rng = np.random.default_rng(12)
    x, y = _orders_and_revenue(rng, 2000, 20.0)
    draws = rng.integers(0, x.size, size=(1000, x.size))
    bootstrap_ratios = x[draws].sum(axis=1) / y[draws].sum(axis=1)
    delta_se = math.sqrt(ratio_variance(RatioStats.from_values(x, y)))
    assert delta_se == pytest.approx(bootstrap_ratios.std(ddof=1), rel=0.08)


def test_ratio_of_means_differs_from_mean_of_ratios() -> None:
    # A metric defined per order must not be averaged per participant; the means reported are
    # sum_x / sum_y.
    result = ratio_delta_test(
        RatioStats.from_values([10.0, 0.0, 30.0], [1.0, 1.0, 3.0]),
        RatioStats.from_values([4.0, 8.0, 30.0], [1.0, 2.0, 2.0]),
    )
    assert result.baseline_mean == pytest.approx(40.0 / 5.0)
    assert result.treatment_mean == pytest.approx(42.0 / 5.0)


def test_a_zero_denominator_gives_an_error_result() -> None:
    result = ratio_delta_test(
        RatioStats.from_values([0.0, 0.0], [0.0, 0.0]),
        RatioStats.from_values([1.0, 2.0], [1.0, 1.0]),
    )
    assert result.error_code == "zero_denominator"
    assert "baseline" in (result.error_message or "")


def test_a_single_participant_arm_gives_an_error_result() -> None:
    result = ratio_delta_test(
        RatioStats.from_values([1.0], [1.0]), RatioStats.from_values([1.0, 2.0], [1.0, 1.0])
    )
    assert result.error_code == "too_few_participants"


def test_ratios_with_no_spread_give_an_error_result() -> None:
    # x proportional to y in both arms: every participant has the arm's ratio exactly.
    result = ratio_delta_test(
        RatioStats.from_values([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]),
        RatioStats.from_values([3.0, 6.0], [1.0, 2.0]),
    )
    assert result.error_code == "zero_variance"
