"""One metric's power analysis, field for field what ``POST /v1/power`` reports.

:func:`analyze_metric_power` takes the warehouse's aggregates for a metric (mean, standard
deviation, counts) and the request's target, and combines the formulas of
:mod:`xngin.stats.power`: required sample size, minimum detectable effects and the power curve,
with messages in words. What the caller can fix raises
:class:`~xngin.stats.errors.StatsInputError` naming the field; what comes from the data gives a
result with ``target_possible=False`` and a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xngin.stats.errors import StatsInputError
from xngin.stats.power import (
    DetectableEffect,
    MetricBaseline,
    MetricType,
    PowerCurvePoint,
    PowerDesign,
    is_finite,
    minimum_detectable_effect,
    power_curve,
    required_sample_size,
)

__all__ = ["MetricPowerResult", "analyze_metric_power"]


@dataclass(frozen=True)
class MetricPowerResult:
    """Power analysis of one metric, field for field what ``POST /v1/power`` reports.

    Sample-size fields are None when ``target_possible`` is False; MDE fields are None when no
    effect is detectable (no usable baseline, too few participants). ``messages`` say why.
    """

    metric_type: MetricType
    baseline: float | None
    stddev: float | None
    available_n: int
    available_nonnull_n: int
    target: float | None
    effect: float | None
    n_per_arm: tuple[int, ...] | None
    target_n: int | None
    sufficient_n: bool
    target_possible: bool
    mde_available_n: DetectableEffect | None
    mde_desired_n: DetectableEffect | None
    messages: tuple[str, ...]
    power_curve: tuple[PowerCurvePoint, ...]


def _count(value: object, field: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise StatsInputError(f"{field} must be a non-negative integer, got {value!r}", field=field)
    return value


def _usable_baseline(
    metric_type: MetricType, mean: float | None, stddev: float | None, nonnull_count: int
) -> MetricBaseline | str:
    """The baseline, or why the data give none (a message, not an error: the data are to blame)."""
    if nonnull_count == 0 or mean is None or not is_finite(mean):
        return "the audience has no non-null values for this metric, so there is no baseline"
    if metric_type == "binary" and not 0 <= mean <= 1:
        return f"the mean {mean:.4g} is not a proportion; is this metric really binary?"
    if metric_type == "binary" and mean in (0, 1):
        return f"every participant has the value {mean:g}; a proportion test needs variation"
    if metric_type == "numeric" and not (nonnull_count > 1 and is_finite(stddev) and stddev):
        return "the metric does not vary in the audience (standard deviation 0)"
    return MetricBaseline(metric_type, float(mean), stddev)


def analyze_metric_power(
    *,
    metric_type: MetricType,
    mean: float | None,
    stddev: float | None,
    count: int,
    nonnull_count: int,
    metric_target: float | None = None,
    metric_pct_change: float | None = None,
    design: PowerDesign,
    desired_n: int | None = None,
    metric_field_prefix: str = "",
) -> MetricPowerResult:
    """Power analysis of one metric from warehouse aggregates: one call per metric for services.

    Parameters
    ----------
    metric_type : {"binary", "numeric"}
    mean : float or None
        Mean of the non-null values in the audience (binary: the proportion); None if none.
    stddev : float or None
        Their standard deviation (numeric); ignored for binary (``sqrt(p (1 - p))``).
    count, nonnull_count : int
        Participants in the audience, and those with a value (<= ``count``). Sufficiency and the
        MDE use ``nonnull_count``.
    metric_target, metric_pct_change : float, optional
        Exactly one: the mean to detect, or a relative change of the baseline (0.1 = +10%, != 0).
    design : PowerDesign
    desired_n : int, optional
        A total sample size the user has in mind (>= 1); adds ``mde_desired_n``.
    metric_field_prefix : str
        Put before metric-level field names in errors, e.g. ``"metrics[0]."``.

    Returns
    -------
    MetricPowerResult
        See the module docstring for which problems raise and which give
        ``target_possible=False``.
    """
    if metric_type not in ("binary", "numeric"):
        raise StatsInputError(
            f"metric_type must be 'binary' or 'numeric', got {metric_type!r}",
            field=metric_field_prefix + "metric_type",
        )
    count = _count(count, "available_n")
    nonnull_count = _count(nonnull_count, "available_nonnull_n")
    if nonnull_count > count:
        raise StatsInputError(
            f"available_nonnull_n {nonnull_count} exceeds available_n {count}",
            field="available_nonnull_n",
        )
    if desired_n is not None and _count(desired_n, "desired_n") < 1:
        raise StatsInputError("desired_n must be at least 1, got 0", field="desired_n")
    if (metric_target is None) == (metric_pct_change is None):
        given = "both" if metric_target is not None else "neither"
        raise StatsInputError(
            f"give exactly one of metric_target and metric_pct_change, got {given}",
            field=metric_field_prefix + "metric_target",
        )
    if metric_pct_change is not None and not (is_finite(metric_pct_change) and metric_pct_change):
        raise StatsInputError(
            f"metric_pct_change must be a non-zero number such as 0.1 for +10%, got "
            f"{metric_pct_change}",
            field=metric_field_prefix + "metric_pct_change",
        )
    if metric_target is not None and not (
        is_finite(metric_target) and (metric_type == "numeric" or 0 < metric_target < 1)
    ):
        accepted = "a finite number" if metric_type == "numeric" else "a proportion in (0, 1)"
        raise StatsInputError(
            f"metric_target must be {accepted}, got {metric_target}",
            field=metric_field_prefix + "metric_target",
        )

    messages: list[str] = []
    if nonnull_count < count:
        nulls = count - nonnull_count
        messages.append(
            f"{nulls:,} of {count:,} participants ({nulls / count:.0%}) have no value for this "
            "metric and are left out of the power analysis"
        )
    baseline = _usable_baseline(metric_type, mean, stddev, nonnull_count)
    if isinstance(baseline, str):
        messages.append(baseline)
        return MetricPowerResult(
            metric_type=metric_type,
            baseline=None,
            stddev=None,
            available_n=count,
            available_nonnull_n=nonnull_count,
            target=metric_target,
            effect=None,
            n_per_arm=None,
            target_n=None,
            sufficient_n=False,
            target_possible=False,
            mde_available_n=None,
            mde_desired_n=None,
            messages=tuple(messages),
            power_curve=(),
        )

    pct_change = metric_pct_change or 0.0  # validated above: set exactly when no metric_target
    target = metric_target if metric_target is not None else baseline.mean * (1 + pct_change)
    effect = target - baseline.mean
    size = None
    if effect == 0:
        messages.append(
            f"the target {target:.4g} equals the baseline; there is no effect to detect"
        )
    elif not baseline.accepts_target(target):
        messages.append(
            f"the target {target:.4g} ({pct_change:+.0%} of the baseline "
            f"{baseline.mean:.4g}) is outside the proportions 0 to 1"
        )
    else:
        size = required_sample_size(baseline=baseline, target=target, design=design)
        verdict = ", enough for the" if nonnull_count >= size.total else " but needs"
        messages.append(
            f"the audience has {nonnull_count:,} non-null values{verdict} {size.total:,}"
        )
        if desired_n is not None and desired_n < size.total:
            messages.append(f"desired_n {desired_n:,} is below the {size.total:,} needed")

    direction: Literal[1, -1] = -1 if effect < 0 else 1

    def detectable(n: int, label: str) -> DetectableEffect | None:
        found = None
        if n > 0:
            found = minimum_detectable_effect(
                baseline=baseline, n_total=n, design=design, direction=direction
            )
        if found is None:
            messages.append(f"no change of the metric is detectable with {label}")
        else:
            messages.append(
                f"with {label} the smallest detectable change is {found.effect:+.4g} "
                f"(to {found.target:.4g})"
            )
        return found

    mde_available = detectable(nonnull_count, f"the {nonnull_count:,} available participants")
    mde_desired = None
    if desired_n is not None:
        mde_desired = detectable(desired_n, f"desired_n {desired_n:,}")
    reference = effect if size is not None else (mde_available.effect if mde_available else 0)
    curve = (
        power_curve(baseline=baseline, reference_effect=reference, design=design)
        if reference
        else ()
    )
    return MetricPowerResult(
        metric_type=metric_type,
        baseline=baseline.mean,
        stddev=baseline.sd,
        available_n=count,
        available_nonnull_n=nonnull_count,
        target=target,
        effect=effect,
        n_per_arm=size.n_per_arm if size else None,
        target_n=size.total if size else None,
        sufficient_n=size is not None and nonnull_count >= size.total,
        target_possible=size is not None,
        mde_available_n=mde_available,
        mde_desired_n=mde_desired,
        messages=tuple(messages),
        power_curve=curve,
    )
