"""CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013).

Each participant's outcome ``y`` is adjusted by their pre-period covariate ``x`` (typically the
same metric before the experiment): ``y - theta (x - mean_x)``. Because ``x`` was fixed before
randomization the adjustment cannot bias the effect, and with ``theta`` chosen to minimize the
variance it removes the share of ``Var(y)`` explained by ``x``.

``theta`` is pooled across arms as the within-arm regression slope
``sum_a Sxy_a / sum_a Sxx_a`` with ``Sxy_a = sum(x y) - sum(x) sum(y) / n`` per arm. With this
choice the adjusted difference equals exactly the arm coefficient of the OLS regression of ``y`` on
arm indicators and ``x`` (Frisch–Waugh–Lovell), which is how the tests check it. The adjusted
variance of an arm is ``Var(y) - 2 theta Cov(x, y) + theta**2 Var(x)`` (Deng et al. 2013,
sec. 3.2), treating ``theta`` as known: its estimation error is of order ``1/n`` and is ignored, as
in the paper and in GrowthBook's gbstats.
"""

from __future__ import annotations

from collections.abc import Sequence

from xngin.stats.estimators import (
    EffectResult,
    effect_result,
    open_comparison,
    welch_satterthwaite_df,
    zero_variance,
)
from xngin.stats.sufficient import CupedStats

__all__ = ["adjusted_variance", "cuped_test", "pooled_theta", "variance_reduction"]


def _centered_cross(stats: CupedStats) -> tuple[float, float, float]:
    """Within-arm centered sums of squares and products: (Sxx, Sxy, Syy)."""
    if stats.n == 0:
        return 0.0, 0.0, 0.0
    sxx = stats.sum_x_sq - stats.sum_x**2 / stats.n
    sxy = stats.sum_xy - stats.sum_x * stats.sum_y / stats.n
    syy = stats.sum_y_sq - stats.sum_y**2 / stats.n
    return max(0.0, sxx), sxy, max(0.0, syy)


def pooled_theta(arms: Sequence[CupedStats]) -> float:
    """Within-arm pooled regression slope of outcome on covariate.

    Parameters
    ----------
    arms : sequence of CupedStats
        All arms the adjustment is shared by (use every arm of the experiment so all comparisons
        adjust the same way).

    Returns
    -------
    float
        ``sum_a Sxy_a / sum_a Sxx_a``; 0 when the covariate does not vary within any arm.
    """
    sxx = sxy = 0.0
    for stats in arms:
        arm_sxx, arm_sxy, _ = _centered_cross(stats)
        sxx += arm_sxx
        sxy += arm_sxy
    return sxy / sxx if sxx > 0 else 0.0


def variance_reduction(arms: Sequence[CupedStats], theta: float | None = None) -> float | None:
    """Share of the within-arm outcome variance removed by the adjustment, pooled over arms.

    ``1 - sum_a S(y - theta x)_a / sum_a Syy_a``; with the pooled ``theta`` this is the squared
    within-arm correlation of outcome and covariate.

    Returns
    -------
    float or None
        In [0, 1] for the pooled ``theta`` (can be negative for a poor explicit ``theta``);
        None when the outcome does not vary.
    """
    if theta is None:
        theta = pooled_theta(arms)
    syy_total = residual_total = 0.0
    for stats in arms:
        sxx, sxy, syy = _centered_cross(stats)
        syy_total += syy
        residual_total += max(0.0, syy - 2 * theta * sxy + theta**2 * sxx)
    if syy_total == 0:
        return None
    return 1 - residual_total / syy_total


def adjusted_variance(stats: CupedStats, theta: float) -> float:
    """Sample variance of ``y - theta x`` within one arm (divisor n - 1), >= 0."""
    variance = stats.variance_y - 2 * theta * stats.covariance_xy + theta**2 * stats.variance_x
    return max(0.0, variance)


def cuped_test(
    baseline: CupedStats,
    treatment: CupedStats,
    *,
    alpha: float = 0.05,
    theta: float | None = None,
    covariate_mean: float | None = None,
) -> EffectResult:
    """Covariate-adjusted comparison of means (CUPED) with Welch-style inference.

    Parameters
    ----------
    baseline, treatment : CupedStats
        Outcome and pre-period covariate sums per arm.
    alpha : float
        Two-sided level in (0, 1).
    theta : float, optional
        Adjustment slope; default :func:`pooled_theta` of these two arms. Pass the value pooled
        over all arms when comparing several treatments with one baseline.
    covariate_mean : float, optional
        Centre of the adjustment; default the covariate mean of these two arms. It shifts both
        adjusted means equally, so it changes ``effect_relative`` but never ``effect``.

    Returns
    -------
    EffectResult
        ``method="cuped"``; the means are adjusted means ``mean_y - theta (mean_x - centre)`` and
        ``variance_reduction`` is ``1 - Var(adjusted effect) / Var(unadjusted effect)``. The
        p-value uses a t reference with Welch–Satterthwaite degrees of freedom from the adjusted
        variances. ``error_code`` ``"too_few_participants"`` or ``"zero_variance"``.
    """
    common, failed = open_comparison(
        method="cuped", alpha=alpha, baseline_n=baseline.n, treatment_n=treatment.n
    )
    if failed is not None:
        return failed
    notes: tuple[str, ...] = ()
    if theta is None:
        theta = pooled_theta([baseline, treatment])
        if theta == 0:
            notes = ("the covariate does not vary within arms; the comparison is unadjusted",)
    if covariate_mean is None:
        covariate_mean = (baseline.sum_x + treatment.sum_x) / (baseline.n + treatment.n)
    var_b = adjusted_variance(baseline, theta) / baseline.n
    var_t = adjusted_variance(treatment, theta) / treatment.n
    if var_b + var_t == 0:
        return zero_variance(**common)
    raw_var = baseline.variance_y / baseline.n + treatment.variance_y / treatment.n
    return effect_result(
        **common,
        baseline_mean=baseline.mean_y - theta * (baseline.mean_x - covariate_mean),
        treatment_mean=treatment.mean_y - theta * (treatment.mean_x - covariate_mean),
        baseline_var_mean=var_b,
        treatment_var_mean=var_t,
        df=welch_satterthwaite_df(var_b, baseline.n, var_t, treatment.n),
        variance_reduction=1 - (var_b + var_t) / raw_var if raw_var > 0 else None,
        notes=notes,
    )
