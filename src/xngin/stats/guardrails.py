"""Guardrail metrics: is a treatment significantly worse than we are willing to tolerate?

A guardrail (error rate, unsubscribes, page load time) is not meant to improve; it must not get
worse by more than a tolerated amount. The decision reads the comparison's two-sided ``1 - alpha``
confidence interval: when it lies entirely beyond the tolerance in the bad direction the arm is
significantly worse (a one-sided test at level ``alpha / 2``); when it lies entirely on the good
side of the tolerance the harm is ruled out (a non-inferiority conclusion); otherwise the data
cannot tell yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from xngin.stats.errors import StatsInputError
from xngin.stats.estimators import EffectResult

__all__ = ["BadDirection", "GuardrailResult", "GuardrailStatus", "check_guardrail"]

BadDirection = Literal["increase", "decrease"]
GuardrailStatus = Literal["worse", "not_worse", "inconclusive", "unknown"]


@dataclass(frozen=True)
class GuardrailResult:
    """The guardrail decision for one treatment arm.

    Attributes
    ----------
    significantly_worse : bool
        True only when the whole confidence interval lies beyond the tolerance in the bad
        direction.
    status : {"worse", "not_worse", "inconclusive", "unknown"}
        ``"not_worse"``: the whole interval is on the good side of the tolerance;
        ``"unknown"``: the comparison has no interval (it failed).
    message : str
        One sentence for people, with the interval and the tolerance.
    """

    significantly_worse: bool
    status: GuardrailStatus
    message: str


def _format(value: float, relative: bool) -> str:
    return f"{value:.2%}" if relative else f"{value:.4g}"


def check_guardrail(
    result: EffectResult,
    *,
    bad_direction: BadDirection,
    threshold: float = 0.0,
    relative: bool = False,
) -> GuardrailResult:
    """Decide whether a treatment arm is significantly worse on a guardrail metric.

    Parameters
    ----------
    result : EffectResult
        The arm's comparison with the baseline.
    bad_direction : {"increase", "decrease"}
        Which change of the metric is harmful.
    threshold : float
        Tolerated change in the bad direction, >= 0, in the metric's units or, with
        ``relative=True``, as a fraction of the baseline (0.02 = 2%). 0 flags any significant
        harm.
    relative : bool
        Judge the relative effect's interval instead of the absolute one.

    Returns
    -------
    GuardrailResult
    """
    if bad_direction not in ("increase", "decrease"):
        raise StatsInputError(
            f"bad_direction must be 'increase' or 'decrease', got {bad_direction!r}",
            field="bad_direction",
        )
    if not (math.isfinite(threshold) and threshold >= 0):
        raise StatsInputError(
            f"threshold must be a tolerated change >= 0, got {threshold!r}", field="threshold"
        )
    lower, upper = (
        (result.ci_lower_relative, result.ci_upper_relative)
        if relative
        else (result.ci_lower, result.ci_upper)
    )
    if lower is None or upper is None:
        reason = result.error_message or "the baseline mean is 0, so there is no relative effect"
        return GuardrailResult(
            significantly_worse=False,
            status="unknown",
            message=f"the guardrail cannot be judged: {reason}",
        )
    level = f"{1 - result.alpha:.0%}"
    interval = f"{level} CI {_format(lower, relative)} to {_format(upper, relative)}"
    tolerance = f"the tolerated {bad_direction} of {_format(threshold, relative)}"
    if bad_direction == "increase":
        worse, safe = lower > threshold, upper < threshold
    else:
        worse, safe = upper < -threshold, lower > -threshold
    if worse:
        return GuardrailResult(
            significantly_worse=True,
            status="worse",
            message=f"significantly worse: the whole {interval} is beyond {tolerance}",
        )
    if safe:
        return GuardrailResult(
            significantly_worse=False,
            status="not_worse",
            message=f"not worse: the whole {interval} is within {tolerance}",
        )
    return GuardrailResult(
        significantly_worse=False,
        status="inconclusive",
        message=f"inconclusive: the {interval} straddles {tolerance}",
    )
