"""The whole experiment analysis from per-arm sufficient statistics: one pure function.

:func:`analyze_experiment` takes what the warehouse or event store computed (per metric, per arm
sums), the arms with their weights and assigned counts, and returns the structure behind
``GET /v1/experiments/{id}/analysis`` (see shared/API.md): the sample-ratio check, and per metric
per arm the mean, the effect against the baseline with its interval and p-value, the p-value
adjusted over every metric x arm comparison, an always-valid p-value for peeking, and the
guardrail decision. A metric that cannot be analyzed yields arms with ``error_code`` set; only
caller mistakes (unknown arms, a method that does not fit the statistics) raise
:class:`~xngin.stats.errors.StatsInputError`, with ``field`` naming the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from xngin.stats.corrections import CorrectionMethod, adjust_p_values
from xngin.stats.cuped import cuped_test, pooled_theta, variance_reduction
from xngin.stats.errors import StatsInputError
from xngin.stats.estimators import (
    EffectResult,
    check_alpha,
    failed_effect,
    two_proportion_z_test,
    welch_t_test,
)
from xngin.stats.guardrails import BadDirection, GuardrailResult, check_guardrail
from xngin.stats.ratio import ratio_delta_test
from xngin.stats.sequential import DEFAULT_MIXING_SD, SequentialResult, sequential_test
from xngin.stats.srm import SrmResult, sample_ratio_mismatch
from xngin.stats.sufficient import CupedStats, MeanStats, RatioStats

__all__ = [
    "ArmAnalysis",
    "ArmSpec",
    "ExperimentAnalysis",
    "GuardrailSpec",
    "MetricAnalysis",
    "MetricInput",
    "analyze_experiment",
]

MetricKind = Literal["numeric", "binary", "ratio"]
MetricMethod = Literal["welch", "proportion", "delta", "cuped", "precomputed"]
ArmStats = MeanStats | RatioStats | CupedStats


@dataclass(frozen=True)
class ArmSpec:
    """An arm as designed: id, display name and relative assignment weight (> 0)."""

    arm_id: str
    arm_name: str
    weight: float = 1.0


@dataclass(frozen=True)
class GuardrailSpec:
    """Marks a metric as a guardrail: harm beyond ``threshold`` in ``bad_direction`` is flagged.

    See :func:`xngin.stats.guardrails.check_guardrail` for the meaning of the fields.
    """

    bad_direction: BadDirection
    threshold: float = 0.0
    relative: bool = False


@dataclass(frozen=True)
class MetricInput:
    """One metric's statistics per arm.

    Parameters
    ----------
    metric_name : str
        As shown to users.
    kind : {"numeric", "binary", "ratio"}
        What the metric measures.
    arm_stats : mapping of arm_id to MeanStats, RatioStats or CupedStats
        Sufficient statistics per arm; an arm that is missing gets an ``"no_data"`` error.
    method : {"welch", "proportion", "delta", "cuped", "precomputed"}, optional
        Default from the statistics: ``MeanStats`` -> ``"proportion"`` for binary metrics and
        ``"welch"`` otherwise, ``RatioStats`` -> ``"delta"``, ``CupedStats`` -> ``"cuped"``.
    effects : mapping of arm_id to EffectResult, optional
        Comparisons computed elsewhere (e.g. :func:`xngin.stats.regression.arm_regression`),
        keyed by treatment arm; implies ``method="precomputed"``.
    guardrail : GuardrailSpec, optional
        Judge this metric as a guardrail.
    """

    metric_name: str
    kind: MetricKind
    arm_stats: Mapping[str, ArmStats]
    method: MetricMethod | None = None
    effects: Mapping[str, EffectResult] | None = None
    guardrail: GuardrailSpec | None = None


@dataclass(frozen=True)
class ArmAnalysis:
    """One arm of one metric, in API.md's terms.

    ``mean`` and ``std_error`` describe the arm itself (the adjusted mean for CUPED and
    regression, the ratio for ratio metrics); the effect fields compare it with the baseline
    (``None`` on the baseline arm). ``always_valid_p_value`` equals
    ``sequential.always_valid_p_value``; pass ``sequential`` back as ``previous`` at the next look.
    """

    arm_id: str
    arm_name: str
    is_baseline: bool
    n: int
    mean: float | None
    std_error: float | None
    effect: float | None = None
    effect_std_error: float | None = None
    effect_relative: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    ci_lower_relative: float | None = None
    ci_upper_relative: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    always_valid_p_value: float | None = None
    sequential: SequentialResult | None = None
    guardrail: GuardrailResult | None = None
    error_code: str | None = None
    error_message: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricAnalysis:
    """All arms of one metric; ``variance_reduction`` only for CUPED (pooled over arms)."""

    metric_name: str
    kind: MetricKind
    method: str
    variance_reduction: float | None
    arms: tuple[ArmAnalysis, ...]


@dataclass(frozen=True)
class ExperimentAnalysis:
    """The experiment's analysis; the service adds ``experiment_id`` and ``computed_at``."""

    baseline_arm_id: str
    alpha: float
    correction: CorrectionMethod
    srm: SrmResult
    metrics: tuple[MetricAnalysis, ...]


def _default_method(metric: MetricInput, field: str) -> MetricMethod:
    if metric.effects is not None:
        return "precomputed"
    kinds = {type(s) for s in metric.arm_stats.values()}
    if len(kinds) > 1:
        raise StatsInputError(
            f"metric {metric.metric_name!r} mixes statistics types "
            f"{sorted(k.__name__ for k in kinds)}; give every arm the same type",
            field=f"{field}.arm_stats",
        )
    stats_type = kinds.pop() if kinds else MeanStats
    if stats_type is RatioStats:
        return "delta"
    if stats_type is CupedStats:
        return "cuped"
    return "proportion" if metric.kind == "binary" else "welch"


_STATS_FOR_METHOD: dict[str, type] = {
    "welch": MeanStats,
    "proportion": MeanStats,
    "delta": RatioStats,
    "cuped": CupedStats,
}


def _check_metric(metric: MetricInput, index: int, arm_ids: Sequence[str]) -> MetricMethod:
    field = f"metrics[{index}]"
    unknown = sorted(set(metric.arm_stats) - set(arm_ids))
    if metric.effects is not None:
        unknown += sorted(set(metric.effects) - set(arm_ids))
    if unknown:
        raise StatsInputError(
            f"metric {metric.metric_name!r} has statistics for unknown arms {unknown}; "
            f"the arms are {list(arm_ids)}",
            field=f"{field}.arm_stats",
        )
    method = metric.method or _default_method(metric, field)
    if method == "precomputed":
        if metric.effects is None:
            raise StatsInputError(
                f"metric {metric.metric_name!r}: method 'precomputed' needs effects",
                field=f"{field}.effects",
            )
        return method
    if method not in _STATS_FOR_METHOD:
        raise StatsInputError(
            f"metric {metric.metric_name!r}: unknown method {method!r}; use one of "
            f"{sorted(_STATS_FOR_METHOD)} or 'precomputed'",
            field=f"{field}.method",
        )
    expected = _STATS_FOR_METHOD[method]
    wrong = sorted(a for a, s in metric.arm_stats.items() if not isinstance(s, expected))
    if wrong:
        raise StatsInputError(
            f"metric {metric.metric_name!r}: method {method!r} needs {expected.__name__} for "
            f"every arm; arms {wrong} have other statistics",
            field=f"{field}.method",
        )
    return method


def _compare_arms(
    metric: MetricInput, method: MetricMethod, baseline: str, arm_ids: Sequence[str], alpha: float
) -> dict[str, EffectResult]:
    """Each non-baseline arm's comparison with the baseline, keyed by arm_id."""
    theta = centre = 0.0
    if method == "cuped":
        # One theta and one centre for all arms, so every comparison adjusts the same way (and
        # agrees with the regression of the outcome on all arms and the covariate).
        everyone = [s for s in metric.arm_stats.values() if isinstance(s, CupedStats)]
        total_n = sum(s.n for s in everyone)
        theta = pooled_theta(everyone)
        centre = sum(s.sum_x for s in everyone) / total_n if total_n else 0.0
    base = metric.arm_stats.get(baseline)
    results = {}
    for arm in arm_ids:
        if arm == baseline:
            continue
        other = metric.arm_stats.get(arm)
        given = metric.effects.get(arm) if metric.effects is not None else None
        if given is not None:
            results[arm] = given
        elif base is None or other is None or method == "precomputed":
            missing = baseline if base is None else arm
            results[arm] = failed_effect(
                method=method,
                alpha=alpha,
                baseline_n=base.n if base else 0,
                treatment_n=other.n if other else 0,
                code="no_data",
                message=f"metric {metric.metric_name!r} has no result for arm {missing!r}",
            )
        elif isinstance(base, MeanStats) and isinstance(other, MeanStats):
            test = two_proportion_z_test if method == "proportion" else welch_t_test
            results[arm] = test(base, other, alpha=alpha)
        elif isinstance(base, RatioStats) and isinstance(other, RatioStats):
            results[arm] = ratio_delta_test(base, other, alpha=alpha)
        elif isinstance(base, CupedStats) and isinstance(other, CupedStats):
            results[arm] = cuped_test(base, other, alpha=alpha, theta=theta, covariate_mean=centre)
        else:  # pragma: no cover - _check_metric guarantees one statistics type per metric
            raise AssertionError("mixed statistics types")
    return results


def _arm_summary(stats: ArmStats | None, method: str) -> tuple[int, float | None, float | None]:
    """n, mean and standard error of one arm's own statistics (when no comparison gave them)."""
    if stats is None:
        return 0, None, None
    if stats.n < 2:
        return stats.n, None, None
    if isinstance(stats, RatioStats):
        return stats.n, None, None  # needs a nonzero denominator: reported by the comparison
    outcome = stats.outcome if isinstance(stats, CupedStats) else stats
    if method == "proportion":
        p = outcome.mean
        return stats.n, p, (p * (1 - p) / stats.n) ** 0.5
    return stats.n, outcome.mean, (outcome.variance / stats.n) ** 0.5


def analyze_experiment(
    *,
    arms: Sequence[ArmSpec],
    assigned_counts: Mapping[str, int],
    metrics: Sequence[MetricInput],
    baseline_arm_id: str | None = None,
    alpha: float = 0.05,
    correction: CorrectionMethod = "holm",
    srm_threshold: float = 0.001,
    always_valid: bool = True,
    mixing_sd: float = DEFAULT_MIXING_SD,
    previous: Mapping[tuple[str, str], SequentialResult] | None = None,
) -> ExperimentAnalysis:
    """Analyze an experiment from sufficient statistics.

    Parameters
    ----------
    arms : sequence of ArmSpec
        All arms in display order, at least 2, unique ids, weights > 0.
    assigned_counts : mapping of arm_id to int
        Participants assigned per arm (for the sample-ratio check); missing arms count 0.
    metrics : sequence of MetricInput
        The metrics to analyze, in display order.
    baseline_arm_id : str, optional
        The arm every other arm is compared with; default the first arm.
    alpha : float
        Two-sided level in (0, 1) for intervals, p-value decisions and guardrails.
    correction : {"holm", "bh", "bonferroni", "none"}
        Adjustment over all metric x arm comparisons with a p-value.
    srm_threshold : float
        Sample-ratio p-value below which ``srm.ok`` is False, in (0, 1).
    always_valid : bool
        Compute always-valid p-values and confidence sequences (for running experiments).
    mixing_sd : float
        mSPRT mixing standard deviation in participant SDs, > 0; see
        :func:`xngin.stats.sequential.sequential_test`.
    previous : mapping of (metric_name, arm_id) to SequentialResult, optional
        Each comparison's ``sequential`` from the previous look.

    Returns
    -------
    ExperimentAnalysis
    """
    check_alpha(alpha)
    arm_ids = [a.arm_id for a in arms]
    if len(arm_ids) < 2 or len(set(arm_ids)) != len(arm_ids):
        raise StatsInputError(f"arms need at least 2 unique ids, got {arm_ids}", field="arms")
    baseline = baseline_arm_id if baseline_arm_id is not None else arm_ids[0]
    if baseline not in arm_ids:
        raise StatsInputError(
            f"baseline_arm_id {baseline!r} is not one of the arms {arm_ids}",
            field="baseline_arm_id",
        )
    unknown_counts = sorted(set(assigned_counts) - set(arm_ids))
    if unknown_counts:
        raise StatsInputError(
            f"assigned_counts names unknown arms {unknown_counts}", field="assigned_counts"
        )
    srm = sample_ratio_mismatch(
        [int(assigned_counts.get(a, 0)) for a in arm_ids],
        [a.weight for a in arms],
        threshold=srm_threshold,
    )
    names = [m.metric_name for m in metrics]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise StatsInputError(
            f"metric names must be unique (they key the looks of a running experiment); "
            f"repeated: {repeated}",
            field="metrics",
        )
    methods = [_check_metric(m, i, arm_ids) for i, m in enumerate(metrics)]
    comparisons = [
        _compare_arms(m, method, baseline, arm_ids, alpha)
        for m, method in zip(metrics, methods, strict=True)
    ]
    # One family: every comparison's p-value, metric by metric, arm by arm.
    keys = [(i, arm) for i, per_metric in enumerate(comparisons) for arm in per_metric]
    adjusted = dict(
        zip(
            keys,
            adjust_p_values([comparisons[i][arm].p_value for i, arm in keys], method=correction),
            strict=True,
        )
    )

    results = []
    for index, (metric, method, per_metric) in enumerate(
        zip(metrics, methods, comparisons, strict=True)
    ):
        arm_results = []
        reference = next((c for c in per_metric.values() if c.ok), None)
        for spec in arms:
            stats = metric.arm_stats.get(spec.arm_id)
            if spec.arm_id == baseline:
                n, mean, std_error = _arm_summary(stats, method)
                if reference is not None:
                    n = reference.baseline_n
                    mean, std_error = reference.baseline_mean, reference.baseline_std_error
                arm_results.append(
                    ArmAnalysis(
                        arm_id=spec.arm_id,
                        arm_name=spec.arm_name,
                        is_baseline=True,
                        n=n,
                        mean=mean,
                        std_error=std_error,
                    )
                )
                continue
            arm_results.append(
                _treatment_arm(
                    spec=spec,
                    comparison=per_metric[spec.arm_id],
                    own=_arm_summary(stats, method),
                    p_value_adjusted=adjusted[index, spec.arm_id],
                    metric=metric,
                    always_valid=always_valid,
                    mixing_sd=mixing_sd,
                    previous=(previous or {}).get((metric.metric_name, spec.arm_id)),
                )
            )
        reduction = None
        if method == "cuped":
            cuped_arms = [s for s in metric.arm_stats.values() if isinstance(s, CupedStats)]
            reduction = variance_reduction(cuped_arms)
        results.append(
            MetricAnalysis(
                metric_name=metric.metric_name,
                kind=metric.kind,
                method=reference.method if reference is not None else method,
                variance_reduction=reduction,
                arms=tuple(arm_results),
            )
        )
    return ExperimentAnalysis(
        baseline_arm_id=baseline,
        alpha=alpha,
        correction=correction,
        srm=srm,
        metrics=tuple(results),
    )


def _treatment_arm(
    *,
    spec: ArmSpec,
    comparison: EffectResult,
    own: tuple[int, float | None, float | None],
    p_value_adjusted: float | None,
    metric: MetricInput,
    always_valid: bool,
    mixing_sd: float,
    previous: SequentialResult | None,
) -> ArmAnalysis:
    sequential = (
        sequential_test(comparison, mixing_sd=mixing_sd, previous=previous)
        if always_valid
        else None
    )
    guardrail = None
    if metric.guardrail is not None:
        guardrail = check_guardrail(
            comparison,
            bad_direction=metric.guardrail.bad_direction,
            threshold=metric.guardrail.threshold,
            relative=metric.guardrail.relative,
        )
    n, mean, std_error = own
    if comparison.ok:
        n = comparison.treatment_n
        mean, std_error = comparison.treatment_mean, comparison.treatment_std_error
    return ArmAnalysis(
        arm_id=spec.arm_id,
        arm_name=spec.arm_name,
        is_baseline=False,
        n=n,
        mean=mean,
        std_error=std_error,
        effect=comparison.effect,
        effect_std_error=comparison.std_error,
        effect_relative=comparison.effect_relative,
        ci_lower=comparison.ci_lower,
        ci_upper=comparison.ci_upper,
        ci_lower_relative=comparison.ci_lower_relative,
        ci_upper_relative=comparison.ci_upper_relative,
        p_value=comparison.p_value,
        p_value_adjusted=p_value_adjusted,
        always_valid_p_value=sequential.always_valid_p_value if sequential else None,
        sequential=sequential,
        guardrail=guardrail,
        error_code=comparison.error_code,
        error_message=comparison.error_message,
        notes=comparison.notes,
    )
