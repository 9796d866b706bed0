"""An experiment's analysis (API.md "Analysis") and the metrics it is analyzed on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES
from xngin.services import analysis as service
from xngin.services import analysis_plan
from xngin.services.analysis_looks import analysis_history
from xngin.services.analysis_plan import AnalysisMetricIn

router = APIRouter(tags=["analysis"], responses=ERROR_RESPONSES)


class SrmOut(BaseModel):
    p_value: float = Field(description="Chi-square p-value of assigned counts against weights.")
    ok: bool = Field(description="False: sample ratio mismatch, the effects are not trustworthy.")
    observed: list[int] = Field(description="Assigned participants per arm.")
    expected: list[float] = Field(description="Per arm, what the weights imply for the total.")
    statistic: float = Field(description="Pearson chi-square statistic.")
    df: int = Field(description="Degrees of freedom.")
    threshold: float = Field(description="p-value below which the split is flagged.")
    message: str = Field(description="The verdict in words.")


class GuardrailOut(BaseModel):
    status: str = Field(description="worse, not_worse, inconclusive or unknown.")
    significantly_worse: bool = Field(description="The interval lies beyond the tolerance.")
    message: str = Field(description="The decision with the interval and the tolerance.")


class ArmResultOut(BaseModel):
    arm_id: str = Field(description="Arm id.")
    arm_name: str = Field(description="Arm name.")
    is_baseline: bool = Field(description="The arm the others are compared with.")
    assigned: int = Field(description="Participants assigned to the arm.")
    n: int = Field(description="Participants with a value of the metric.")
    mean: float | None = Field(
        default=None, description="Arm mean (share, ratio, or covariate-adjusted mean)."
    )
    std_error: float | None = Field(default=None, description="Standard error of the mean.")
    effect: float | None = Field(default=None, description="Mean minus the baseline's.")
    effect_std_error: float | None = Field(default=None, description="Standard error of effect.")
    effect_relative: float | None = Field(
        default=None, description="Mean over the baseline's, minus 1."
    )
    ci_lower: float | None = Field(default=None, description="Confidence interval of effect.")
    ci_upper: float | None = Field(default=None, description="Confidence interval of effect.")
    ci_lower_relative: float | None = Field(default=None, description="Of effect_relative.")
    ci_upper_relative: float | None = Field(default=None, description="Of effect_relative.")
    p_value: float | None = Field(default=None, description="Two-sided p-value of effect = 0.")
    p_value_adjusted: float | None = Field(
        default=None, description="Adjusted over every metric x arm comparison (correction)."
    )
    always_valid_p_value: float | None = Field(
        default=None, description="Valid however often the experiment is looked at (started)."
    )
    always_valid_ci_lower: float | None = Field(default=None, description="Confidence sequence.")
    always_valid_ci_upper: float | None = Field(default=None, description="Confidence sequence.")
    guardrail: GuardrailOut | None = Field(default=None, description="Guardrail decision.")
    error_code: str | None = Field(default=None, description="Why there is no result.")
    error_message: str | None = Field(default=None, description="Explanation of error_code.")
    notes: list[str] = Field(default_factory=list, description="Worth knowing, not errors.")


class ParticipationOut(BaseModel):
    arm_id: str = Field(description="Arm id.")
    assigned: int = Field(description="Participants assigned to the arm.")
    with_outcome: int = Field(description="Of them, with a value or an event of the metric.")
    without_outcome: int = Field(description="Of them, without one.")


class MetricErrorOut(BaseModel):
    code: str = Field(
        description="unknown_metric, participant_type_mismatch, unknown_field, unavailable, "
        "query_failed, invalid_metric, ..."
    )
    message: str = Field(description="What went wrong.")


class MetricResultOut(BaseModel):
    metric_name: str = Field(description="Metric definition or sheet field.")
    role: str = Field(description="primary, secondary or guardrail.")
    kind: str = Field(description="numeric, binary or ratio.")
    source: str | None = Field(description="event, ratio or sheet.")
    method: str | None = Field(description="welch, proportion, delta, cuped or ols_hc1.")
    variance_reduction: float | None = Field(
        default=None, description="CUPED: share of variance removed."
    )
    error: MetricErrorOut | None = Field(default=None, description="Set when nothing computed.")
    participation: list[ParticipationOut] | None = Field(
        default=None, description="Per arm, assigned participants with and without an outcome."
    )
    notes: list[str] = Field(default_factory=list, description="Worth knowing.")
    arms: list[ArmResultOut] = Field(description="Per arm, in design order.")


class BreachOut(BaseModel):
    metric_name: str = Field(description="The guardrail metric.")
    arm_id: str = Field(description="The arm that is worse.")
    arm_name: str = Field(description="Its name.")
    message: str = Field(description="The decision.")


class GuardrailsOut(BaseModel):
    breaches: list[BreachOut] = Field(description="Arms significantly worse on a guardrail.")
    auto_stopped: bool = Field(description="This analysis stopped the experiment.")
    stop_reason: str | None = Field(description="Why, when it did.")


class AnalysisOut(BaseModel):
    experiment_id: str = Field(description="The experiment.")
    experiment_state: str = Field(description="Its state after this analysis.")
    computed_at: datetime = Field(description="When (UTC).")
    alpha: float = Field(description="Two-sided level of intervals and tests (the design's).")
    correction: str = Field(description="Multiple-testing adjustment of p_value_adjusted.")
    method: str = Field(description="auto or regression.")
    baseline_arm_id: str = Field(description="The arm every other arm is compared with.")
    srm: SrmOut = Field(description="Sample-ratio check: read it first.")
    guardrails: GuardrailsOut = Field(description="Guardrail breaches.")
    metrics: list[MetricResultOut] = Field(description="Per metric, in the analysis order.")


class LookOut(BaseModel):
    at: datetime = Field(description="When the look was taken (UTC).")
    n: int = Field(description="Participants with a value of the metric in the arm.")
    baseline_n: int = Field(description="Participants with a value of it in the baseline arm.")
    effect: float = Field(description="Effect against the baseline at this look.")
    std_error: float = Field(description="Standard error of effect.")
    always_valid_p_value: float = Field(
        description="Always-valid p-value; never larger than at an earlier look."
    )
    cs_lower: float | None = Field(
        description="Confidence sequence lower bound, intersected over the looks."
    )
    cs_upper: float | None = Field(
        description="Confidence sequence upper bound, intersected over the looks."
    )


class LookSeriesOut(BaseModel):
    metric_name: str = Field(description="Metric definition or sheet field.")
    arm_id: str = Field(description="The arm compared with the baseline.")
    arm_name: str | None = Field(description="Its name (None if the arm no longer exists).")
    looks: list[LookOut] = Field(description="Oldest first.")


class AnalysisHistoryOut(BaseModel):
    experiment_id: str = Field(description="The experiment.")
    items: list[LookSeriesOut] = Field(
        description="Per metric and arm, the looks recorded since the experiment started "
        "(at most one a minute, by the analysis)."
    )


class AnalysisMetricOut(BaseModel):
    name: str = Field(description="Metric definition or sheet field.")
    role: str = Field(description="primary, secondary or guardrail.")
    guardrail: dict[str, Any] | None = Field(
        description="direction, threshold, relative, auto_stop."
    )


class AnalysisMetricsOut(BaseModel):
    analysis_metrics: list[AnalysisMetricOut] = Field(description="In analysis order.")
    default: bool = Field(description="None were set: the design's metrics, all primary.")


class AnalysisMetricsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analysis_metrics: list[AnalysisMetricIn] = Field(
        description="Replaces the list; empty restores the default (the design's metrics)."
    )


@router.get(
    "/experiments/{experiment_id}/analysis",
    summary="Effects per metric and arm, with the sample-ratio check and guardrails",
    description="Once the experiment has started, this GET also records a look (at most one a "
    "minute) that later analyses continue from, so always-valid p-values never rise and "
    "always-valid intervals only narrow; see `/analysis/history`.",
)
def get_analysis(
    experiment_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    correction: Annotated[
        Literal["holm", "bh", "bonferroni", "none"],
        Query(description="Adjustment of p_value_adjusted over the whole family."),
    ] = "holm",
    method: Annotated[
        Literal["auto", "regression"],
        Query(
            description="auto: Welch, proportion, delta or CUPED from per-arm sums; regression: "
            "OLS with HC1 errors and strata fixed effects."
        ),
    ] = "auto",
) -> AnalysisOut:
    report = service.analyze(
        runtime,
        session,
        principal,
        experiment_id=experiment_id,
        correction=correction,
        method=method,
    )
    return AnalysisOut.model_validate(report)


@router.get(
    "/experiments/{experiment_id}/analysis/history",
    summary="Always-valid p-values and confidence sequences over time, per metric and arm",
)
def get_analysis_history(
    experiment_id: str, principal: PrincipalDep, session: SessionDep
) -> AnalysisHistoryOut:
    history = analysis_history(session, principal, experiment_id)
    return AnalysisHistoryOut.model_validate(history)


@router.get(
    "/experiments/{experiment_id}/analysis-metrics",
    summary="The metrics the experiment is analyzed on",
)
def get_analysis_metrics(
    experiment_id: str, principal: PrincipalDep, session: SessionDep
) -> AnalysisMetricsOut:
    items, default = analysis_plan.get_analysis_metrics(session, principal, experiment_id)
    return AnalysisMetricsOut.model_validate({"analysis_metrics": items, "default": default})


@router.put(
    "/experiments/{experiment_id}/analysis-metrics",
    summary="Set the metrics the experiment is analyzed on, with roles and guardrails",
)
def put_analysis_metrics(
    experiment_id: str, body: AnalysisMetricsIn, principal: PrincipalDep, session: SessionDep
) -> AnalysisMetricsOut:
    analysis_plan.set_analysis_metrics(
        session, principal, experiment_id=experiment_id, metrics=body.analysis_metrics
    )
    items, default = analysis_plan.get_analysis_metrics(session, principal, experiment_id)
    return AnalysisMetricsOut.model_validate({"analysis_metrics": items, "default": default})
