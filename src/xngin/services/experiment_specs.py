"""What a caller sends to create or change a saved experiment (API.md "Experiments").

Request models live in services, like the design pieces they are made of, because the service
takes them as they are; responses are shaped in ``api.experiments``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from xngin.services.design import ArmIn, FilterIn, MetricTargetIn

ExperimentType = Literal["preassigned", "online"]
MultipleComparison = Literal["none", "bonferroni"]

SEED_RANGE = (-(2**63), 2**63)
#: Fields a PATCH may set to null (to clear them).
NULLABLE_FIELDS = frozenset({"desired_n", "start_at", "end_at"})


class RampStepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(description="When this step begins (naive times are taken as UTC).")
    allocation: float = Field(
        ge=0, le=100, description="Percent of eligible participants included from then on."
    )


class ExperimentCreate(BaseModel):
    """A new experiment's design (API.md "Experiments")."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300, description="Experiment name.")
    description: str = Field(default="", description="What the experiment is about.")
    hypothesis: str = Field(default="", description="What the team expects to happen and why.")
    type: ExperimentType = Field(
        description="preassigned: the audience is drawn from the warehouse and assigned up "
        "front; online: participants are assigned when first seen."
    )
    participant_type: str = Field(description="A registered participant type.")
    filters: list[FilterIn] = Field(default_factory=list, description="Audience filters (AND).")
    arms: list[ArmIn] = Field(description="At least two arms, control first, with weights.")
    metrics: list[MetricTargetIn] = Field(
        default_factory=list, description="Outcome metrics and the effect to detect."
    )
    strata: list[str] = Field(default_factory=list, description="Fields marked is_strata.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level.")
    power: float = Field(default=0.8, gt=0, lt=1, description="Power to detect the target.")
    multiple_comparison: MultipleComparison = Field(
        default="none", description="Alpha correction across arms in the power analysis."
    )
    desired_n: int | None = Field(
        default=None, ge=1, description="Participants to sample (default: the whole audience)."
    )
    seed: int | None = Field(
        default=None,
        ge=SEED_RANGE[0],
        lt=SEED_RANGE[1],
        description="Randomization seed (default: drawn at random and saved).",
    )
    start_at: datetime | None = Field(
        default=None, description="When a committed experiment starts running by itself."
    )
    end_at: datetime | None = Field(
        default=None, description="When a running or paused experiment completes by itself."
    )
    traffic_allocation: float = Field(
        default=100.0, ge=0, le=100, description="Percent of eligible participants included."
    )
    ramp_schedule: list[RampStepIn] = Field(
        default_factory=list,
        description="Online experiments only: allocation steps over time, non-decreasing and "
        "at most traffic_allocation; before the first step its allocation applies.",
    )


class ExperimentUpdate(BaseModel):
    """A PATCH: only the fields given change. After commit only description and end_at may."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=300, description="Name.")
    description: str | None = Field(default=None, description="What the experiment is about.")
    hypothesis: str | None = Field(default=None, description="Expected effect and why.")
    type: ExperimentType | None = Field(default=None, description="preassigned or online.")
    participant_type: str | None = Field(default=None, description="A participant type.")
    filters: list[FilterIn] | None = Field(default=None, description="Audience filters (AND).")
    arms: list[ArmIn] | None = Field(
        default=None,
        description="The whole arm list; an arm without arm_id keeps the id of the arm of the "
        "same name.",
    )
    metrics: list[MetricTargetIn] | None = Field(default=None, description="Metrics, targets.")
    strata: list[str] | None = Field(default=None, description="Fields marked is_strata.")
    alpha: float | None = Field(default=None, gt=0, lt=1, description="Significance level.")
    power: float | None = Field(default=None, gt=0, lt=1, description="Power.")
    multiple_comparison: MultipleComparison | None = Field(
        default=None, description="none or bonferroni."
    )
    desired_n: int | None = Field(default=None, ge=1, description="Sample size, or null.")
    seed: int | None = Field(
        default=None, ge=SEED_RANGE[0], lt=SEED_RANGE[1], description="Randomization seed."
    )
    start_at: datetime | None = Field(default=None, description="Scheduled start, or null.")
    end_at: datetime | None = Field(default=None, description="Scheduled end, or null.")
    traffic_allocation: float | None = Field(default=None, ge=0, le=100, description="Percent.")
    ramp_schedule: list[RampStepIn] | None = Field(default=None, description="Ramp-up steps.")

    @field_validator("*", mode="after")
    @classmethod
    def _no_null_for_required(cls, value: object, info: ValidationInfo) -> object:
        # Runs only for given fields (defaults are not validated): null clears what may be
        # empty; for the rest it is a mistake, not "unchanged".
        if value is None and info.field_name not in NULLABLE_FIELDS:
            raise ValueError(f"{info.field_name} cannot be null; leave it out to keep its value")
        return value
