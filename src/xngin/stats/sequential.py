"""Always-valid p-values and confidence sequences, so a running experiment can be watched daily.

A fixed-horizon p-value checked at every look rejects a true null far more often than alpha.
The mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis & Walsh (2017,
"Peeking at A/B Tests: Why it matters, and what to do about it", KDD; Johari, Pekelis & Walsh
2022, "Always Valid Inference", Operations Research 70(3)) averages the likelihood ratio of a
normal estimate over a normal mixing distribution ``theta ~ N(null, tau2)`` of the effect:

    Lambda = sqrt(s2 / (s2 + tau2)) * exp(tau2 * (d - null)**2 / (2 * s2 * (s2 + tau2)))

where ``d`` is the estimated difference in means and ``s2`` its variance at this look. For two
equal arms of ``n`` participants with variance ``sigma2``, ``s2 = 2 sigma2 / n`` and this is the
paper's ``sqrt(2 sigma2 / (2 sigma2 + n tau2)) exp(n**2 tau2 (d - null)**2 / (4 sigma2
(2 sigma2 + n tau2)))``; writing it with ``s2`` lets unequal arms and any estimator with a
standard error (Welch, proportions, delta method, CUPED, regression) use it, the normal-mixture
boundary of Howard, Ramdas, McAuliffe & Sekhon (2021, Ann. Statist. 49(2)) in the same
form. ``Lambda`` is a nonnegative martingale under the null, so by Ville's inequality
``P(sup_n Lambda_n >= 1 / alpha) <= alpha``:

* always-valid p-value ``p_n = min(p_{n-1}, 1 / Lambda_n)``, non-increasing over looks;
* confidence sequence ``{null : Lambda_n(null) < 1 / alpha}``, the interval
  ``d +- sqrt(s2 (s2 + tau2) / tau2 * (log((s2 + tau2) / s2) + 2 log(1 / alpha)))``,
  intersected with the earlier looks' intervals.

The variance is plugged in from the data, which makes the guarantee asymptotic rather than exact
(Waudby-Smith et al. 2023, "Time-uniform central limit theory and asymptotic confidence
sequences", Ann. Statist.); the tests check the error rate by simulation. ``tau2`` expresses how
large effects are expected to be: its scale is the effect's, so :func:`sequential_test` takes it
in participant standard deviations (``mixing_sd``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xngin.stats.errors import StatsInputError
from xngin.stats.estimators import EffectResult, check_alpha

__all__ = [
    "SequentialResult",
    "always_valid_p_values",
    "confidence_sequences",
    "log_mixture_likelihood_ratio",
    "sequential_test",
]

DEFAULT_MIXING_SD = 0.1


def _positive(values: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise StatsInputError(f"{name} must be finite and > 0", field=name)
    return array


def log_mixture_likelihood_ratio(
    effect: ArrayLike, std_error: ArrayLike, *, tau2: ArrayLike, null_effect: float = 0.0
) -> NDArray[np.float64]:
    """Logarithm of the mSPRT statistic ``Lambda`` (formula in the module docstring).

    Parameters
    ----------
    effect : array_like of float
        Estimated effect(s) ``d``.
    std_error : array_like of float
        Standard error(s) of ``d``, > 0.
    tau2 : array_like of float
        Mixing variance on the effect's scale, > 0.
    null_effect : float
        The effect under the null hypothesis.

    Returns
    -------
    ndarray of float
        ``log Lambda``, broadcast over the inputs.
    """
    d = np.asarray(effect, dtype=np.float64) - null_effect
    s2 = _positive(std_error, "std_error") ** 2
    t2 = _positive(tau2, "tau2")
    return np.asarray(0.5 * np.log(s2 / (s2 + t2)) + t2 * d**2 / (2 * s2 * (s2 + t2)))


def always_valid_p_values(
    effects: ArrayLike, std_errors: ArrayLike, *, tau2: ArrayLike, null_effect: float = 0.0
) -> NDArray[np.float64]:
    """Always-valid p-values over successive looks (last axis), non-increasing.

    Parameters
    ----------
    effects, std_errors : array_like of float, shape (..., looks)
        The estimate and its standard error at each look, in time order.
    tau2 : array_like of float
        Mixing variance (broadcastable to the looks).
    null_effect : float
        Effect under the null.

    Returns
    -------
    ndarray of float
        ``p_n = min(1, min_{k <= n} 1 / Lambda_k)`` along the last axis.
    """
    log_lr = log_mixture_likelihood_ratio(effects, std_errors, tau2=tau2, null_effect=null_effect)
    p_values = np.minimum(1.0, np.exp(-log_lr))
    return np.asarray(np.minimum.accumulate(np.atleast_1d(p_values), axis=-1))


def confidence_sequences(
    effects: ArrayLike, std_errors: ArrayLike, *, tau2: ArrayLike, alpha: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Confidence sequence bounds over successive looks (last axis), each nested in the last.

    Parameters
    ----------
    effects, std_errors : array_like of float, shape (..., looks)
        The estimate and its standard error at each look, in time order.
    tau2 : array_like of float
        Mixing variance, > 0.
    alpha : float
        In (0, 1); the true effect lies inside at every look with probability >= 1 - alpha.

    Returns
    -------
    (lower, upper) : tuple of ndarray
        Running maximum of the lower and running minimum of the upper bounds.
    """
    check_alpha(alpha)
    d = np.atleast_1d(np.asarray(effects, dtype=np.float64))
    s2 = _positive(std_errors, "std_errors") ** 2
    t2 = _positive(tau2, "tau2")
    half_width = np.sqrt(s2 * (s2 + t2) / t2 * (np.log((s2 + t2) / s2) + 2 * math.log(1 / alpha)))
    lower = np.maximum.accumulate(d - half_width, axis=-1)
    upper = np.minimum.accumulate(d + half_width, axis=-1)
    return lower, upper


@dataclass(frozen=True)
class SequentialResult:
    """Always-valid inference for one comparison at the current look.

    Attributes
    ----------
    always_valid_p_value : float
        In [0, 1]; no larger than at any earlier look that was passed in.
    ci_lower, ci_upper : float
        Confidence sequence for the absolute effect, intersected with the earlier look's.
    tau2 : float
        Mixing variance used, on the effect's scale.
    """

    always_valid_p_value: float
    ci_lower: float
    ci_upper: float
    tau2: float


def sequential_test(
    result: EffectResult,
    *,
    mixing_sd: float = DEFAULT_MIXING_SD,
    previous: SequentialResult | None = None,
) -> SequentialResult | None:
    """Always-valid p-value and confidence sequence for a comparison's current estimate.

    Parameters
    ----------
    result : EffectResult
        Current fixed-horizon comparison (any method); its ``alpha`` sets the sequence's level.
    mixing_sd : float
        Standard deviation of the mixing distribution in participant standard deviations, > 0:
        the standardized effect size the test is most sensitive to. The participant standard
        deviation is recovered as ``std_error / sqrt(1 / n_treatment + 1 / n_baseline)``.
    previous : SequentialResult, optional
        The same comparison's result at the previous look, to keep the p-value non-increasing
        and the interval nested.

    Returns
    -------
    SequentialResult or None
        None when the comparison has no estimate (``result.error_code`` set).
    """
    if not (math.isfinite(mixing_sd) and mixing_sd > 0):
        raise StatsInputError(f"mixing_sd must be > 0, got {mixing_sd!r}", field="mixing_sd")
    if result.effect is None or result.std_error is None or not result.std_error > 0:
        return None
    unit_sd = result.std_error / math.sqrt(1 / result.treatment_n + 1 / result.baseline_n)
    tau2 = (mixing_sd * unit_sd) ** 2
    p_value = float(always_valid_p_values([result.effect], [result.std_error], tau2=tau2)[-1])
    lower, upper = confidence_sequences(
        [result.effect], [result.std_error], tau2=tau2, alpha=result.alpha
    )
    ci_lower, ci_upper = float(lower[-1]), float(upper[-1])
    if previous is not None:
        p_value = min(p_value, previous.always_valid_p_value)
        ci_lower = max(ci_lower, previous.ci_lower)
        ci_upper = min(ci_upper, previous.ci_upper)
    return SequentialResult(
        always_valid_p_value=p_value, ci_lower=ci_lower, ci_upper=ci_upper, tau2=tau2
    )
