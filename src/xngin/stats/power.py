"""Power analysis: how many participants an experiment needs, and what it can detect.

Each comparison is a two-sided, two-sample test of one treatment arm against the control arm (the
first arm). With ``k`` arms there are ``k - 1`` comparisons and every one must reach the requested
power: the required total is the largest of their totals and the minimum detectable effect (MDE)
the largest of their MDEs, which makes the two modes exact inverses of each other.

Formulas
--------
numeric metrics
    Pooled-variance t-test on Cohen's ``d = (target - baseline) / stddev``. With ``n0`` control and
    ``n1`` treatment participants the power is ``P(|T| > t_{1-a/2, df})``, ``T`` noncentral t with
    ``df = n0 + n1 - 2`` and noncentrality ``|d| sqrt(n0 n1 / (n0 + n1))`` (Cohen 1988, ch. 2;
    statsmodels ``TTestIndPower`` with ``nobs1 = n0``, ``ratio = n1 / n0``).
binary metrics
    Normal test on Cohen's ``h = 2 asin(sqrt(target)) - 2 asin(sqrt(baseline))`` (Cohen 1988,
    eq. 6.2.1), power ``Phi(|h| sqrt(m) - z) + Phi(-|h| sqrt(m) - z)``, ``m = n0 n1 / (n0 + n1)``,
    ``z = z_{1-a/2}`` (statsmodels ``NormalIndPower`` fed by ``proportion_effectsize``). The arcsine
    scale makes the variance free of the proportion, so an MDE converts back to a target exactly.

Both modes solve this one power function with ``scipy.optimize.brentq`` on a bracket widened
until it holds the root. The sample size is solved as a continuous total, then each arm gets
``ceil(total * weight / sum(weights))``. Bonferroni tests each comparison at ``alpha / (k - 1)``.

Public API
----------
``PowerDesign(alpha, power, arm_weights, multiple_comparison)``
    validated design shared by all metrics of a request.
``MetricBaseline(metric_type, mean, stddev)``
    validated control-arm baseline of one metric.
``required_sample_size(*, baseline, target, design) -> SampleSize``
``minimum_detectable_effect(*, baseline, n_total, design, direction) -> DetectableEffect | None``
``power_curve(*, baseline, reference_effect, design, multiples) -> tuple[PowerCurvePoint, ...]``
``comparison_power(*, metric_type, effect_size, n_control, n_treatment, alpha) -> float``
``standardized_effect(baseline, target) -> float``

``xngin.stats.power_report.analyze_metric_power`` turns these into everything ``POST /v1/power``
reports for one metric.

What the caller can fix by editing the request (alpha, power, arms, the target specification,
desired_n) raises :class:`~xngin.stats.errors.StatsInputError` naming the field. What comes from
the data (no non-null values, no variation, a baseline proportion of 0 or 1, a relative change
pushing a proportion out of (0, 1), a target equal to the baseline) gives a result with
``target_possible=False`` and a message, so one bad metric does not sink the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import integrate, optimize, special

from xngin.stats.errors import StatsInputError

__all__ = [
    "DEFAULT_CURVE_MULTIPLES",
    "MIN_ARM_N",
    "DetectableEffect",
    "MetricBaseline",
    "MetricType",
    "MultipleComparison",
    "PowerCurvePoint",
    "PowerDesign",
    "SampleSize",
    "comparison_power",
    "is_finite",
    "minimum_detectable_effect",
    "power_curve",
    "required_sample_size",
    "standardized_effect",
]

MetricType = Literal["binary", "numeric"]
MultipleComparison = Literal["none", "bonferroni"]

# A t-test needs a variance estimate from each arm; fewer than two participants per arm is no
# experiment, so sample sizes never go below this and an MDE needs at least this many per arm.
MIN_ARM_N = 2.0
# Effects from a tenth to twice the reference: enough to see the 1/effect^2 shape of n.
DEFAULT_CURVE_MULTIPLES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 21))


def is_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class PowerDesign:
    """The parts of a power analysis shared by all metrics; validated on creation.

    Parameters
    ----------
    alpha : float, default 0.05
        Two-sided significance level, in (0, 1).
    power : float, default 0.8
        Probability that each treatment-vs-control comparison detects the effect, in (alpha, 1).
    arm_weights : tuple of float, default (1, 1)
        Relative allocation, control first; at least two arms, all > 0.
    multiple_comparison : {"none", "bonferroni"}
        Bonferroni tests each of the ``k - 1`` comparisons at ``alpha / (k - 1)``.
    """

    alpha: float = 0.05
    power: float = 0.8
    arm_weights: tuple[float, ...] = (1.0, 1.0)
    multiple_comparison: MultipleComparison = "none"

    def __post_init__(self) -> None:
        # a list from a request body would make the frozen value unhashable and mutable
        object.__setattr__(self, "arm_weights", tuple(self.arm_weights))
        for name in ("alpha", "power"):
            value = getattr(self, name)
            if not (is_finite(value) and 0 < value < 1):
                raise StatsInputError(f"{name} must be between 0 and 1, got {value}", field=name)
        if self.power <= self.alpha:
            # An unbiased test rejects with probability alpha even without an effect.
            raise StatsInputError(
                f"power {self.power} must exceed alpha {self.alpha}: a test already rejects with "
                "probability alpha when there is no effect",
                field="power",
            )
        if len(self.arm_weights) < 2:
            raise StatsInputError(
                f"an experiment needs at least 2 arms (control first), got {len(self.arm_weights)}",
                field="arms",
            )
        for i, weight in enumerate(self.arm_weights):
            if not (is_finite(weight) and weight > 0):
                raise StatsInputError(
                    f"arm weights must be positive numbers, got {weight}", field=f"arms[{i}].weight"
                )
        if self.multiple_comparison not in ("none", "bonferroni"):
            raise StatsInputError(
                "multiple_comparison must be 'none' or 'bonferroni', got "
                f"{self.multiple_comparison!r}",
                field="multiple_comparison",
            )

    @property
    def fractions(self) -> tuple[float, ...]:
        """Share of the total each arm gets, control first."""
        total = float(sum(self.arm_weights))
        return tuple(w / total for w in self.arm_weights)

    @property
    def comparison_alpha(self) -> float:
        """Significance level of each treatment-vs-control comparison."""
        if self.multiple_comparison == "bonferroni":
            return self.alpha / (len(self.arm_weights) - 1)
        return self.alpha

    def comparisons(self) -> list[tuple[float, float]]:
        """(control share, treatment share), one per distinct treatment weight."""
        shares = self.fractions
        return [(shares[0], share) for share in sorted(set(shares[1:]))]


@dataclass(frozen=True)
class MetricBaseline:
    """A metric's control-arm mean and spread; validated on creation.

    Parameters
    ----------
    metric_type : {"binary", "numeric"}
    mean : float
        Binary: a proportion strictly between 0 and 1.
    stddev : float, optional
        Numeric: standard deviation > 0, assumed equal in all arms. Binary: ignored; ``sd`` is
        ``sqrt(p (1 - p))``.
    """

    metric_type: MetricType
    mean: float
    stddev: float | None = None

    def __post_init__(self) -> None:
        if self.metric_type not in ("binary", "numeric"):
            raise StatsInputError(
                f"metric_type must be 'binary' or 'numeric', got {self.metric_type!r}",
                field="metric_type",
            )
        if self.metric_type == "binary" and not (is_finite(self.mean) and 0 < self.mean < 1):
            raise StatsInputError(
                f"a binary baseline must be a proportion between 0 and 1, got {self.mean}",
                field="baseline",
            )
        if not is_finite(self.mean):
            raise StatsInputError(
                f"the baseline must be a number, got {self.mean}", field="baseline"
            )
        if self.metric_type == "numeric" and not (is_finite(self.stddev) and self.sd > 0):
            raise StatsInputError(
                f"a numeric metric needs a positive standard deviation, got {self.stddev}",
                field="stddev",
            )

    @property
    def sd(self) -> float:
        """Standard deviation used by the formulas."""
        if self.metric_type == "binary":
            return math.sqrt(self.mean * (1 - self.mean))
        return float(self.stddev or 0.0)

    def accepts_target(self, target: float) -> bool:
        """Whether the metric can take the value ``target`` (binary: inside (0, 1))."""
        return is_finite(target) and (self.metric_type == "numeric" or 0 < target < 1)


@dataclass(frozen=True)
class SampleSize:
    """Participants needed to detect one effect.

    ``n_per_arm`` is in arm order; ``total`` is their sum; ``total_exact`` the smallest continuous
    total before each arm is rounded up; ``effect_size`` is ``d`` or ``h``.
    """

    n_per_arm: tuple[int, ...]
    total: int
    total_exact: float
    effect_size: float


@dataclass(frozen=True)
class DetectableEffect:
    """A minimum detectable effect: signed absolute change, resulting target, ``d`` or ``h``."""

    effect: float
    target: float
    effect_size: float


@dataclass(frozen=True)
class PowerCurvePoint:
    """Required total ``n`` to detect an absolute ``effect`` (reaching ``target``)."""

    effect: float
    target: float
    n: int


def standardized_effect(baseline: MetricBaseline, target: float) -> float:
    """Standardized effect of moving a metric from its baseline to ``target``.

    Parameters
    ----------
    baseline : MetricBaseline
    target : float
        Mean to detect; binary: in (0, 1).

    Returns
    -------
    float
        Signed Cohen's ``d = (target - mean) / sd`` (numeric) or Cohen's
        ``h = 2 asin(sqrt(target)) - 2 asin(sqrt(mean))`` (binary; Cohen 1988, eq. 6.2.1).
    """
    if not baseline.accepts_target(target):
        accepted = "a proportion between 0 and 1" if baseline.metric_type == "binary" else "finite"
        raise StatsInputError(
            f"metric_target must be {accepted}, got {target}", field="metric_target"
        )
    if baseline.metric_type == "numeric":
        return (target - baseline.mean) / baseline.sd
    return 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline.mean))


def _noncentral_t_cdf(df: float, noncentrality: float, t: float) -> float:
    value = float(special.nctdtr(df, noncentrality, t))
    if math.isnan(value):
        # scipy's series returns nan far in the tails (large noncentrality). Use the definition
        # T = (Z + nc) / sqrt(V / df), V ~ chi2(df): average Phi(t sqrt(V / df) - nc) over the
        # quantiles of V, a bounded integrand on (0, 1).
        def conditional(u: float) -> float:
            v = float(special.chdtri(df, 1 - u))
            return float(special.ndtr(t * math.sqrt(v / df) - noncentrality))

        value = float(integrate.quad(conditional, 0.0, 1.0, limit=200, epsabs=1e-12)[0])
    return value


def _power(metric_type: str, effect_size: float, n0: float, n1: float, alpha: float) -> float:
    shift = abs(effect_size) * math.sqrt(n0 * n1 / (n0 + n1))
    if metric_type == "binary":
        crit = -float(special.ndtri(alpha / 2))
        return float(special.ndtr(shift - crit) + special.ndtr(-shift - crit))
    df = n0 + n1 - 2
    crit = -float(special.stdtrit(df, alpha / 2))
    # power = P(T > crit) + P(T < -crit)
    return 1 - _noncentral_t_cdf(df, shift, crit) + _noncentral_t_cdf(df, shift, -crit)


def comparison_power(
    *,
    metric_type: MetricType,
    effect_size: float,
    n_control: float,
    n_treatment: float,
    alpha: float,
) -> float:
    """Power of one two-sided treatment-vs-control test (formulas in the module docstring).

    Parameters
    ----------
    metric_type : {"binary", "numeric"}
        Binary: normal test on Cohen's ``h``; numeric: pooled t-test on Cohen's ``d``.
    effect_size : float
        ``d`` or ``h``; the sign does not matter.
    n_control, n_treatment : float
        Participants per arm, each >= 1, together > 2; may be fractional.
    alpha : float
        Significance level of this comparison, in (0, 1).

    Returns
    -------
    float
        Probability of rejecting the null hypothesis, in [alpha, 1].
    """
    if not (n_control >= 1 and n_treatment >= 1 and n_control + n_treatment > 2):
        raise StatsInputError(
            f"each arm needs at least 1 participant and both together more than 2, got "
            f"{n_control} and {n_treatment}",
            field="n",
        )
    return _power(metric_type, effect_size, n_control, n_treatment, alpha)


def _solve_increasing(rises: Callable[[float], float], low: float, guess: float) -> float:
    """Root of an increasing function above ``low``: widen the bracket, then brentq."""
    high = max(guess, low * 2, 1e-12)
    for _ in range(2000):
        if rises(high) >= 0:
            return float(optimize.brentq(rises, low, high, xtol=1e-14, rtol=1e-13))
        high *= 2
    raise ArithmeticError("power never reaches the target; the effect is too small to represent")


def _z_sum(design: PowerDesign) -> float:
    return float(-special.ndtri(design.comparison_alpha / 2) - special.ndtri(1 - design.power))


def _comparison_total(
    metric_type: str, effect_size: float, shares: tuple[float, float], design: PowerDesign
) -> float:
    """Smallest continuous total at which one comparison reaches the power."""
    f0, f1 = shares

    def shortfall(total: float) -> float:
        n0, n1 = total * f0, total * f1
        return _power(metric_type, effect_size, n0, n1, design.comparison_alpha) - design.power

    low = MIN_ARM_N / min(f0, f1)
    if shortfall(low) >= 0:
        return low
    # normal approximation with unequal shares as the first guess (Cohen 1988, eq. 12.2.1)
    guess = _z_sum(design) ** 2 * (1 / f0 + 1 / f1) / effect_size**2
    return _solve_increasing(shortfall, low, guess * 1.05)


def _comparison_effect_size(metric_type: str, n0: float, n1: float, design: PowerDesign) -> float:
    """Smallest ``|d|`` or ``|h|`` one comparison detects with ``n0`` and ``n1`` participants."""

    def shortfall(effect_size: float) -> float:
        return _power(metric_type, effect_size, n0, n1, design.comparison_alpha) - design.power

    guess = _z_sum(design) * math.sqrt(1 / n0 + 1 / n1)
    return _solve_increasing(shortfall, 0.0, guess * 1.05)


def required_sample_size(
    *, baseline: MetricBaseline, target: float, design: PowerDesign
) -> SampleSize:
    """Participants per arm and in total to detect a change from the baseline to ``target``.

    Parameters
    ----------
    baseline : MetricBaseline
    target : float
        Treatment mean to detect; differs from the baseline; binary: in (0, 1).
    design : PowerDesign

    Returns
    -------
    SampleSize
        The smallest continuous total at which every comparison reaches the power, each arm's
        share rounded up (formulas and sources in the module docstring).
    """
    effect_size = standardized_effect(baseline, target)
    if effect_size == 0:
        raise StatsInputError(
            f"metric_target {target} equals the baseline; no sample size detects no change",
            field="metric_target",
        )
    total = max(
        _comparison_total(baseline.metric_type, effect_size, shares, design)
        for shares in design.comparisons()
    )
    n_per_arm = tuple(math.ceil(total * share) for share in design.fractions)
    return SampleSize(n_per_arm, sum(n_per_arm), total, effect_size)


def minimum_detectable_effect(
    *,
    baseline: MetricBaseline,
    n_total: float,
    design: PowerDesign,
    direction: Literal[1, -1] = 1,
) -> DetectableEffect | None:
    """Smallest change every comparison detects with ``n_total`` participants split by weight.

    The exact inverse of :func:`required_sample_size`: its ``total_exact`` for the returned
    ``target`` is ``n_total`` (up to solver tolerance).

    Parameters
    ----------
    baseline : MetricBaseline
    n_total : float
        Participants in all arms together, > 0.
    design : PowerDesign
    direction : {1, -1}
        Look for an increase (1) or a decrease (-1) of the metric.

    Returns
    -------
    DetectableEffect or None
        None when an arm would get fewer than ``MIN_ARM_N`` participants, or (binary) when even
        moving the proportion to 1 (or 0) is not detectable.
    """
    if not (is_finite(n_total) and n_total > 0):
        raise StatsInputError(f"n must be a positive number, got {n_total}", field="n")
    if direction not in (1, -1):
        raise StatsInputError(f"direction must be 1 or -1, got {direction}", field="direction")
    if n_total * min(design.fractions) < MIN_ARM_N:
        return None
    effect_size = direction * max(
        _comparison_effect_size(baseline.metric_type, n_total * f0, n_total * f1, design)
        for f0, f1 in design.comparisons()
    )
    if baseline.metric_type == "numeric":
        effect = effect_size * baseline.sd
        return DetectableEffect(effect, baseline.mean + effect, effect_size)
    angle = math.asin(math.sqrt(baseline.mean)) + effect_size / 2  # Cohen's h solved for target
    if not 0 <= angle <= math.pi / 2:
        return None
    target = math.sin(angle) ** 2
    return DetectableEffect(target - baseline.mean, target, effect_size)


def power_curve(
    *,
    baseline: MetricBaseline,
    reference_effect: float,
    design: PowerDesign,
    multiples: Sequence[float] = DEFAULT_CURVE_MULTIPLES,
) -> tuple[PowerCurvePoint, ...]:
    """Required total sample size against the absolute effect, for drawing.

    Parameters
    ----------
    baseline : MetricBaseline
    reference_effect : float
        Signed, non-zero absolute effect to draw around, usually the target effect.
    design : PowerDesign
    multiples : sequence of float, default 0.1, 0.2, ..., 2.0
        Positive multiples of ``reference_effect`` to evaluate.

    Returns
    -------
    tuple of PowerCurvePoint
        In the order of ``multiples``; points whose target the metric cannot take are left out.
    """
    points = []
    for multiple in multiples:
        effect = reference_effect * multiple
        target = baseline.mean + effect
        if effect == 0 or not baseline.accepts_target(target):
            continue
        size = required_sample_size(baseline=baseline, target=target, design=design)
        points.append(PowerCurvePoint(effect, target, size.total))
    return tuple(points)
