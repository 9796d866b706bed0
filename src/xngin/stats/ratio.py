"""Ratio metrics (sum of x over sum of y per arm) compared with the delta method.

A ratio metric such as revenue per order divides two per-participant totals, so its participants
are the randomization units while the ratio's "observations" (orders) are not independent. The
delta method linearizes the arm's ratio ``R = mean_x / mean_y`` around the means:

``n Var(R) ~= Var(x) / mean_y**2 - 2 mean_x Cov(x, y) / mean_y**3 + mean_x**2 Var(y) / mean_y**4``

(Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD; equally
the sample variance of the influence values ``(x_i - R y_i) / mean_y`` divided by n). Arms are
independent, so the variance of the difference is the sum, and inference uses the normal
reference because the ratio's distribution is only asymptotically known.
"""

from __future__ import annotations

from xngin.stats.estimators import (
    EffectResult,
    effect_result,
    failed_effect,
    open_comparison,
    zero_variance,
)
from xngin.stats.sufficient import RatioStats

__all__ = ["ratio_delta_test", "ratio_variance"]


def ratio_variance(stats: RatioStats) -> float:
    """Delta-method variance of one arm's ratio ``sum_x / sum_y`` (formula in the module doc).

    Parameters
    ----------
    stats : RatioStats
        The arm's sums; needs ``n >= 2`` and ``sum_y != 0``.

    Returns
    -------
    float
        Variance of the ratio estimate (not of a participant's value), >= 0.
    """
    mean_x, mean_y = stats.mean_x, stats.mean_y
    variance = (
        stats.variance_x / mean_y**2
        - 2 * mean_x * stats.covariance_xy / mean_y**3
        + mean_x**2 * stats.variance_y / mean_y**4
    ) / stats.n
    # The three terms can cancel to a tiny negative number when x is proportional to y.
    return max(0.0, variance)


def ratio_delta_test(
    baseline: RatioStats, treatment: RatioStats, *, alpha: float = 0.05
) -> EffectResult:
    """Compare a ratio metric between arms: delta-method z-test and intervals.

    Parameters
    ----------
    baseline, treatment : RatioStats
        Sums of numerator and denominator per arm, participant-level.
    alpha : float
        Two-sided level in (0, 1).

    Returns
    -------
    EffectResult
        ``method="delta"``, means are the arm ratios, ``df=None``. ``error_code``
        ``"too_few_participants"`` (n < 2), ``"zero_denominator"`` (an arm's denominator sums to
        0) or ``"zero_variance"``.
    """
    common, failed = open_comparison(
        method="delta", alpha=alpha, baseline_n=baseline.n, treatment_n=treatment.n
    )
    if failed is not None:
        return failed
    for arm, stats in (("baseline", baseline), ("treatment", treatment)):
        if stats.sum_y == 0:
            return failed_effect(
                **common,
                code="zero_denominator",
                message=f"the {arm} arm's denominator sums to 0, so its ratio is undefined",
            )
    var_b, var_t = ratio_variance(baseline), ratio_variance(treatment)
    if var_b + var_t == 0:
        return zero_variance(**common)
    return effect_result(
        **common,
        baseline_mean=baseline.ratio,
        treatment_mean=treatment.ratio,
        baseline_var_mean=var_b,
        treatment_var_mean=var_t,
        df=None,
    )
