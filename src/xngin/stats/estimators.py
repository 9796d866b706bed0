"""Treatment-versus-baseline comparisons of means and proportions from sufficient statistics.

Every estimator returns an :class:`EffectResult`. A metric whose numbers cannot support a test
(fewer than two participants in an arm, no variance at all, a zero denominator) yields a result
with ``error_code`` and ``error_message`` set and the estimates left as ``None``: one bad metric
must not sink an analysis of twenty. Caller mistakes (``alpha`` outside (0, 1)) raise
:class:`~xngin.stats.errors.StatsInputError`.

Relative effects (``treatment / baseline - 1``) get their confidence interval from the delta
method on the ratio of two independent means, with the same critical value as the absolute
effect. For an estimate ``r = m1 / m0`` with independent ``m1``, ``m0`` the first-order variance is
``Var(r) = Var(m1) / m0**2 + m1**2 * Var(m0) / m0**4`` (Casella & Berger, *Statistical Inference*,
2nd ed., sec. 5.5.4; the same form as GrowthBook's gbstats frequentist relative effect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from scipy import stats as scipy_stats

from xngin.stats.errors import StatsInputError
from xngin.stats.sufficient import MeanStats

__all__ = [
    "ComparisonHeader",
    "EffectResult",
    "check_alpha",
    "critical_value",
    "effect_result",
    "failed_effect",
    "open_comparison",
    "too_few_participants",
    "two_proportion_z_test",
    "two_sided_p_value",
    "welch_satterthwaite_df",
    "welch_t_test",
    "zero_variance",
]


@dataclass(frozen=True)
class EffectResult:
    """One treatment arm compared with the baseline arm on one metric.

    ``effect = treatment_mean - baseline_mean`` for every method; for CUPED and regression the
    means are the covariate-adjusted means. Estimates are ``None`` when ``error_code`` is set.

    Attributes
    ----------
    method : str
        ``"welch"``, ``"proportion"``, ``"delta"``, ``"cuped"`` or ``"ols_hc1"``.
    alpha : float
        Two-sided level; the confidence intervals have coverage ``1 - alpha``.
    baseline_n, treatment_n : int
        Participants in each arm.
    baseline_mean, treatment_mean : float or None
        Arm means (ratio ``sum_x / sum_y`` for ratio metrics).
    baseline_std_error, treatment_std_error : float or None
        Standard errors of those means.
    effect : float or None
        Absolute effect, treatment minus baseline.
    std_error : float or None
        Standard error of ``effect``.
    ci_lower, ci_upper : float or None
        Confidence interval for ``effect``.
    statistic : float or None
        t or z statistic of ``effect`` against 0.
    p_value : float or None
        Two-sided p-value for ``effect == 0``.
    df : float or None
        Degrees of freedom of the t reference distribution; ``None`` means standard normal.
    effect_relative, std_error_relative, ci_lower_relative, ci_upper_relative : float or None
        ``treatment_mean / baseline_mean - 1`` with its delta-method standard error and interval;
        ``None`` when the baseline mean is 0.
    variance_reduction : float or None
        CUPED only: ``1 - Var(adjusted effect) / Var(unadjusted effect)``.
    error_code, error_message : str or None
        Why the comparison could not be made.
    notes : tuple of str
        Things worth telling the reader that are not errors.
    """

    method: str
    alpha: float
    baseline_n: int
    treatment_n: int
    baseline_mean: float | None = None
    treatment_mean: float | None = None
    baseline_std_error: float | None = None
    treatment_std_error: float | None = None
    effect: float | None = None
    std_error: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    df: float | None = None
    effect_relative: float | None = None
    std_error_relative: float | None = None
    ci_lower_relative: float | None = None
    ci_upper_relative: float | None = None
    variance_reduction: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the comparison produced estimates."""
        return self.error_code is None


class ComparisonHeader(TypedDict):
    """What every result of one comparison starts with, failed or not."""

    method: str
    alpha: float
    baseline_n: int
    treatment_n: int


def check_alpha(alpha: float) -> None:
    """Raise :class:`StatsInputError` unless ``0 < alpha < 1``."""
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise StatsInputError(
            f"alpha must be between 0 and 1 (exclusive), got {alpha!r}", field="alpha"
        )


def failed_effect(
    *,
    method: str,
    alpha: float,
    baseline_n: int,
    treatment_n: int,
    code: str,
    message: str,
) -> EffectResult:
    """A result that carries only why the comparison failed."""
    return EffectResult(
        method=method,
        alpha=alpha,
        baseline_n=baseline_n,
        treatment_n=treatment_n,
        error_code=code,
        error_message=message,
    )


def critical_value(alpha: float, df: float | None) -> float:
    """Two-sided critical value: t quantile with ``df`` degrees of freedom, or normal if None."""
    if df is None:
        return float(scipy_stats.norm.isf(alpha / 2))
    return float(scipy_stats.t.isf(alpha / 2, df))


def two_sided_p_value(statistic: float, df: float | None) -> float:
    """P(|T| >= |statistic|) under a t(df) or, with ``df`` None, a standard normal."""
    if df is None:
        return float(2 * scipy_stats.norm.sf(abs(statistic)))
    return float(2 * scipy_stats.t.sf(abs(statistic), df))


def welch_satterthwaite_df(var_mean_a: float, n_a: int, var_mean_b: float, n_b: int) -> float:
    """Welch–Satterthwaite degrees of freedom from the variances of two means.

    ``df = (v_a + v_b)**2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))`` with ``v = s**2 / n``
    (Welch 1947, Biometrika 34, eq. 9; Satterthwaite 1946).
    """
    denominator = var_mean_a**2 / (n_a - 1) + var_mean_b**2 / (n_b - 1)
    return (var_mean_a + var_mean_b) ** 2 / denominator


def effect_result(
    *,
    method: str,
    alpha: float,
    baseline_n: int,
    treatment_n: int,
    baseline_mean: float,
    treatment_mean: float,
    baseline_var_mean: float,
    treatment_var_mean: float,
    df: float | None,
    variance_reduction: float | None = None,
    notes: tuple[str, ...] = (),
) -> EffectResult:
    """Assemble absolute and relative inference for two independent arm means.

    Parameters
    ----------
    baseline_var_mean, treatment_var_mean : float
        Variances of the two mean estimates (already divided by n), >= 0, not both 0.
    df : float or None
        t degrees of freedom, or None for the normal reference.
    """
    effect = treatment_mean - baseline_mean
    std_error = math.sqrt(baseline_var_mean + treatment_var_mean)
    crit = critical_value(alpha, df)
    statistic = effect / std_error
    effect_relative = se_relative = lower_relative = upper_relative = None
    if baseline_mean != 0:
        effect_relative = treatment_mean / baseline_mean - 1
        se_relative = math.sqrt(
            treatment_var_mean / baseline_mean**2
            + treatment_mean**2 * baseline_var_mean / baseline_mean**4
        )
        lower_relative = effect_relative - crit * se_relative
        upper_relative = effect_relative + crit * se_relative
    else:
        notes = (*notes, "baseline mean is 0, so no relative effect is reported")
    return EffectResult(
        method=method,
        alpha=alpha,
        baseline_n=baseline_n,
        treatment_n=treatment_n,
        baseline_mean=baseline_mean,
        treatment_mean=treatment_mean,
        baseline_std_error=math.sqrt(baseline_var_mean),
        treatment_std_error=math.sqrt(treatment_var_mean),
        effect=effect,
        std_error=std_error,
        ci_lower=effect - crit * std_error,
        ci_upper=effect + crit * std_error,
        statistic=statistic,
        p_value=two_sided_p_value(statistic, df),
        df=df,
        variance_reduction=variance_reduction,
        effect_relative=effect_relative,
        std_error_relative=se_relative,
        ci_lower_relative=lower_relative,
        ci_upper_relative=upper_relative,
        notes=notes,
    )


def too_few_participants(
    *, method: str, alpha: float, baseline_n: int, treatment_n: int, minimum: int = 2
) -> EffectResult | None:
    """The failed result when an arm has fewer than ``minimum`` participants, else None."""
    if baseline_n >= minimum and treatment_n >= minimum:
        return None
    return failed_effect(
        method=method,
        alpha=alpha,
        baseline_n=baseline_n,
        treatment_n=treatment_n,
        code="too_few_participants",
        message=(
            f"each arm needs at least {minimum} participants with a value; baseline has "
            f"{baseline_n}, treatment has {treatment_n}"
        ),
    )


def open_comparison(
    *, method: str, alpha: float, baseline_n: int, treatment_n: int, minimum: int = 2
) -> tuple[ComparisonHeader, EffectResult | None]:
    """Start a comparison: check ``alpha``, build the shared header, and fail small arms.

    Returns
    -------
    (header, failed)
        ``failed`` is the ``"too_few_participants"`` result when an arm has fewer than
        ``minimum`` participants, else None.
    """
    check_alpha(alpha)
    header = ComparisonHeader(
        method=method, alpha=alpha, baseline_n=baseline_n, treatment_n=treatment_n
    )
    return header, too_few_participants(**header, minimum=minimum)


def zero_variance(*, method: str, alpha: float, baseline_n: int, treatment_n: int) -> EffectResult:
    return failed_effect(
        method=method,
        alpha=alpha,
        baseline_n=baseline_n,
        treatment_n=treatment_n,
        code="zero_variance",
        message="the metric has the same value for every participant in both arms; "
        "there is no variation to test",
    )


def welch_t_test(baseline: MeanStats, treatment: MeanStats, *, alpha: float = 0.05) -> EffectResult:
    """Welch's unequal-variances t-test of the difference in means.

    Standard error ``sqrt(s1**2/n1 + s0**2/n0)`` with sample variances, Welch–Satterthwaite
    degrees of freedom (see :func:`welch_satterthwaite_df`); equals
    ``scipy.stats.ttest_ind(treatment, baseline, equal_var=False)`` on the raw values.

    Parameters
    ----------
    baseline, treatment : MeanStats
        Sufficient statistics of the two arms.
    alpha : float
        Two-sided level in (0, 1); the interval has coverage ``1 - alpha``.

    Returns
    -------
    EffectResult
        ``method="welch"``; ``error_code`` ``"too_few_participants"`` (n < 2 in an arm) or
        ``"zero_variance"`` (both arms constant).
    """
    common, failed = open_comparison(
        method="welch", alpha=alpha, baseline_n=baseline.n, treatment_n=treatment.n
    )
    if failed is not None:
        return failed
    var_b = baseline.variance / baseline.n
    var_t = treatment.variance / treatment.n
    if var_b + var_t == 0:
        return zero_variance(**common)
    return effect_result(
        **common,
        baseline_mean=baseline.mean,
        treatment_mean=treatment.mean,
        baseline_var_mean=var_b,
        treatment_var_mean=var_t,
        df=welch_satterthwaite_df(var_b, baseline.n, var_t, treatment.n),
    )


def _binary_problem(stats: MeanStats, arm: str) -> str | None:
    # A binary metric's values are 0/1, so each squared value equals the value.
    tolerance = 1e-9 * max(1.0, abs(stats.sum))
    if abs(stats.sum_sq - stats.sum) > tolerance:
        return (
            f"{arm} arm: sum_sq ({stats.sum_sq}) differs from sum ({stats.sum}); values are not 0/1"
        )
    if not 0 <= stats.sum <= stats.n:
        return f"{arm} arm: {stats.sum} successes out of {stats.n} participants"
    return None


def two_proportion_z_test(
    baseline: MeanStats, treatment: MeanStats, *, alpha: float = 0.05
) -> EffectResult:
    """Wald z-test and interval for a difference of two independent proportions.

    Both the interval and the test use the unpooled standard error
    ``sqrt(p1 (1 - p1) / n1 + p0 (1 - p0) / n0)`` (maximum-likelihood variances, divisor n), so a
    95% interval excludes 0 exactly when p < 0.05. Equals statsmodels
    ``test_proportions_2indep(..., method="wald", compare="diff", correction=False)`` and
    ``confint_proportions_2indep(..., method="wald")``. The pooled-variance test of
    ``proportions_ztest`` differs slightly near the boundary and could disagree with the interval.

    Parameters
    ----------
    baseline, treatment : MeanStats
        Counts of the two arms: ``sum`` successes out of ``n``, with ``sum_sq == sum``.
    alpha : float
        Two-sided level in (0, 1).

    Returns
    -------
    EffectResult
        ``method="proportion"``, ``df=None``; ``error_code`` ``"too_few_participants"``,
        ``"not_binary"`` or ``"zero_variance"`` (both proportions 0, or both 1, or each 0/1).
    """
    common, failed = open_comparison(
        method="proportion", alpha=alpha, baseline_n=baseline.n, treatment_n=treatment.n, minimum=1
    )
    if failed is not None:
        return failed
    problem = _binary_problem(baseline, "baseline") or _binary_problem(treatment, "treatment")
    if problem is not None:
        return failed_effect(**common, code="not_binary", message=problem)
    p_b, p_t = baseline.mean, treatment.mean
    var_b = p_b * (1 - p_b) / baseline.n
    var_t = p_t * (1 - p_t) / treatment.n
    if var_b + var_t == 0:
        return zero_variance(**common)
    return effect_result(
        **common,
        baseline_mean=p_b,
        treatment_mean=p_t,
        baseline_var_mean=var_b,
        treatment_var_mean=var_t,
        df=None,
    )
