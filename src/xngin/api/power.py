"""POST /v1/power: is the audience big enough to detect the effects we care about?"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES
from xngin.services.design import ArmIn, FilterIn, MetricTargetIn
from xngin.services.power import analyze_power

router = APIRouter(tags=["design"], responses=ERROR_RESPONSES)


class PowerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_type: str = Field(description="Registered participant type.")
    filters: list[FilterIn] = Field(default_factory=list, description="Audience filters (AND).")
    arms: list[ArmIn] = Field(min_length=2, description="Arms, control first, with weights.")
    metrics: list[MetricTargetIn] = Field(min_length=1, description="Metrics and their targets.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Two-sided significance level.")
    power: float = Field(default=0.8, gt=0, lt=1, description="Power per comparison.")
    desired_n: int | None = Field(default=None, ge=1, description="A total n to evaluate.")
    multiple_comparison: Literal["none", "bonferroni"] = Field(
        default="none", description="Bonferroni across the comparisons with control."
    )


class PowerCurvePoint(BaseModel):
    effect: float = Field(description="Absolute effect.")
    target: float = Field(description="Metric value the treatment would reach.")
    n: int = Field(description="Total participants needed for that effect.")


class MetricPower(BaseModel):
    field_name: str
    metric_type: Literal["binary", "numeric"]
    baseline: float | None = Field(description="Audience mean (proportion for binary).")
    stddev: float | None = Field(description="Audience standard deviation.")
    available_n: int = Field(description="Participants matching the filters.")
    available_nonnull_n: int = Field(description="Of those, with a value for the metric.")
    target: float | None = Field(description="Metric value to detect.")
    effect: float | None = Field(description="target - baseline.")
    target_n: int | None = Field(description="Total participants needed.")
    n_per_arm: list[int] | None = Field(description="Needed per arm, in request order.")
    sufficient_n: bool = Field(description="available non-null n >= target_n.")
    target_possible: bool = Field(description="False when the target cannot be tested.")
    mde_available_n: float | None = Field(
        description="Smallest effect detectable with the audience."
    )
    mde_available_n_target: float | None = Field(description="The metric value at that effect.")
    mde_desired_n: float | None = Field(description="Smallest effect detectable with desired_n.")
    messages: list[str] = Field(description="Explanations and warnings, in words.")
    power_curve: list[PowerCurvePoint] = Field(description="Required n against effect size.")


class PowerResponse(BaseModel):
    analyses: list[MetricPower]


@router.post("/power", summary="Power analysis for a design")
def power(
    body: PowerRequest, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> PowerResponse:
    analyses: list[dict[str, Any]] = analyze_power(
        runtime,
        session,
        principal,
        participant_type=body.participant_type,
        filters=body.filters,
        arms=body.arms,
        metrics=body.metrics,
        alpha=body.alpha,
        power=body.power,
        desired_n=body.desired_n,
        multiple_comparison=body.multiple_comparison,
    )
    return PowerResponse.model_validate({"analyses": analyses})
