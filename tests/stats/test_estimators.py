"""Welch and two-proportion comparisons agree with scipy/statsmodels on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion

from xngin.stats.errors import StatsInputError
from xngin.stats.estimators import two_proportion_z_test, welch_t_test
from xngin.stats.sufficient import MeanStats


@pytest.mark.parametrize(
    ("seed", "n_baseline", "n_treatment", "sd_treatment", "alpha"),
    [(0, 400, 400, 1.0, 0.05), (1, 50, 900, 3.0, 0.05), (2, 7, 12, 0.2, 0.1), (3, 2, 2, 1.0, 0.01)],
)
def test_welch_matches_scipy_ttest_ind_on_raw_values(
    seed: int, n_baseline: int, n_treatment: int, sd_treatment: float, alpha: float
) -> None:
    rng = np.random.default_rng(seed)
    baseline = rng.normal(10.0, 1.0, size=n_baseline)
    treatment = rng.normal(10.3, sd_treatment, size=n_treatment)
    result = welch_t_test(
        MeanStats.from_values(baseline), MeanStats.from_values(treatment), alpha=alpha
    )
    reference = scipy_stats.ttest_ind(treatment, baseline, equal_var=False)
    interval = reference.confidence_interval(confidence_level=1 - alpha)
    assert result.ok
    assert result.effect == pytest.approx(treatment.mean() - baseline.mean(), rel=1e-10)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-8)
    assert result.df == pytest.approx(reference.df, rel=1e-9)
    assert result.ci_lower == pytest.approx(interval.low, rel=1e-9)
    assert result.ci_upper == pytest.approx(interval.high, rel=1e-9)
    assert result.treatment_std_error == pytest.approx(scipy_stats.sem(treatment), rel=1e-9)


@pytest.mark.parametrize(
    ("successes_b", "n_b", "successes_t", "n_t", "alpha"),
    [
        (120, 1000, 150, 1000, 0.05),
        (3, 40, 11, 35, 0.05),
        (0, 200, 5, 180, 0.1),
        (990, 1000, 1000, 1000, 0.01),
    ],
)
# statsmodels also computes the odds ratio of the counts and warns when a proportion is 0 or 1.
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_two_proportion_test_matches_statsmodels_wald(
    successes_b: int, n_b: int, successes_t: int, n_t: int, alpha: float
) -> None:
    result = two_proportion_z_test(
        MeanStats(n_b, successes_b, successes_b),
        MeanStats(n_t, successes_t, successes_t),
        alpha=alpha,
    )
    reference = sm_proportion.test_proportions_2indep(
        successes_t, n_t, successes_b, n_b, method="wald", compare="diff", correction=False
    )
    low, high = sm_proportion.confint_proportions_2indep(
        successes_t, n_t, successes_b, n_b, method="wald", compare="diff", alpha=alpha
    )
    assert result.ok
    assert result.df is None
    assert result.effect == pytest.approx(successes_t / n_t - successes_b / n_b, rel=1e-12)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-8)
    assert result.ci_lower == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert result.ci_upper == pytest.approx(high, rel=1e-9, abs=1e-12)


def test_two_proportion_test_is_not_the_pooled_test() -> None:
    # Documented choice: unpooled SE for both test and interval. The pooled z-test gives another
    # p-value on the same counts, so this pins which one we return.
    result = two_proportion_z_test(MeanStats(100, 10, 10), MeanStats(100, 20, 20))
    _, pooled_p = sm_proportion.proportions_ztest([20, 10], [100, 100])
    assert result.p_value is not None
    assert abs(result.p_value - pooled_p) > 1e-3


def _delta_relative_variance(
    mean_t: float, var_mean_t: float, mean_b: float, var_mean_b: float
) -> float:
    # First-order Taylor expansion of g(m_t, m_b) = m_t / m_b: gradient times covariance (diagonal,
    # arms independent) times gradient.
    gradient = np.array([1 / mean_b, -mean_t / mean_b**2])
    covariance = np.diag([var_mean_t, var_mean_b])
    return float(gradient @ covariance @ gradient)


def test_relative_effect_interval_is_the_delta_method_on_the_ratio_of_means() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.exponential(4.0, size=600)
    treatment = rng.exponential(4.6, size=500)
    result = welch_t_test(MeanStats.from_values(baseline), MeanStats.from_values(treatment))
    variance = _delta_relative_variance(
        treatment.mean(), treatment.var(ddof=1) / 500, baseline.mean(), baseline.var(ddof=1) / 600
    )
    critical = scipy_stats.t.isf(0.025, result.df)
    assert result.effect_relative == pytest.approx(
        treatment.mean() / baseline.mean() - 1, rel=1e-10
    )
    assert result.std_error_relative == pytest.approx(math.sqrt(variance), rel=1e-10)
    assert result.ci_lower_relative == pytest.approx(
        result.effect_relative - critical * math.sqrt(variance), rel=1e-10
    )


def test_relative_effect_interval_covers_the_true_lift_at_the_nominal_rate() -> None:
    # 2,000 seeded experiments with a true 10% lift on a skewed metric: the 90% delta-method
    # interval must cover the truth about 90% of the time (binomial SD of the rate 0.0067).
    rng = np.random.default_rng(6)
    covered = 0
    simulations = 2000
    for _ in range(simulations):
        baseline = rng.gamma(2.0, 2.5, size=300)
        treatment = rng.gamma(2.0, 2.75, size=300)
        result = welch_t_test(
            MeanStats.from_values(baseline), MeanStats.from_values(treatment), alpha=0.1
        )
        assert result.ci_lower_relative is not None and result.ci_upper_relative is not None
        covered += result.ci_lower_relative <= 0.1 <= result.ci_upper_relative
    assert abs(covered / simulations - 0.9) < 0.025


def test_an_arm_with_fewer_than_two_participants_gives_an_error_result() -> None:
    result = welch_t_test(MeanStats(1, 3.0, 9.0), MeanStats(10, 30.0, 100.0))
    assert not result.ok
    assert result.error_code == "too_few_participants"
    assert "baseline has 1" in (result.error_message or "")
    assert result.effect is None and result.p_value is None


def test_a_metric_without_variation_gives_an_error_result() -> None:
    assert welch_t_test(MeanStats(5, 10.0, 20.0), MeanStats(5, 10.0, 20.0)).error_code == (
        "zero_variance"
    )
    assert two_proportion_z_test(MeanStats(50, 0, 0), MeanStats(60, 0, 0)).error_code == (
        "zero_variance"
    )


def test_proportion_test_refuses_non_binary_statistics_with_an_error_result() -> None:
    result = two_proportion_z_test(MeanStats(10, 5.0, 9.0), MeanStats(10, 5.0, 5.0))
    assert result.error_code == "not_binary"
    result = two_proportion_z_test(MeanStats(10, 12.0, 12.0), MeanStats(10, 5.0, 5.0))
    assert result.error_code == "not_binary"


def test_zero_baseline_mean_reports_no_relative_effect_but_keeps_the_absolute_one() -> None:
    result = two_proportion_z_test(MeanStats(100, 0, 0), MeanStats(100, 4, 4))
    assert result.ok
    assert result.effect == pytest.approx(0.04)
    assert result.effect_relative is None and result.ci_lower_relative is None
    assert any("baseline mean is 0" in note for note in result.notes)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 5])
def test_alpha_outside_the_unit_interval_raises_with_the_field(alpha: float) -> None:
    with pytest.raises(StatsInputError) as raised:
        welch_t_test(MeanStats(5, 5.0, 7.0), MeanStats(5, 6.0, 9.0), alpha=alpha)
    assert raised.value.field == "alpha"
