"""The pieces of an experiment design, shared by /power, /assign and /experiments.

They are pydantic models because the API accepts them as they are (API.md "shared pieces");
services convert them to the plain values ``dwh`` and ``stats`` take.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from xngin.dwh.filters import AudienceFilter, Relation
from xngin.dwh.schema import ColumnInfo

if TYPE_CHECKING:
    from xngin.services.catalog import OpenParticipantType


class FilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field_name: str = Field(min_length=1, description="A field marked is_filter in the sheet.")
    relation: Literal["includes", "excludes", "between"] = Field(
        description="includes / excludes a list of values (null allowed); between [lo, hi] "
        "inclusive, null for an open end."
    )
    value: list[Any] = Field(description="Values of the field's type.")

    def to_audience_filter(self) -> AudienceFilter:
        return AudienceFilter(
            field_name=self.field_name, relation=Relation(self.relation), value=list(self.value)
        )


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm_id: str | None = Field(default=None, description="Optional; generated when absent.")
    arm_name: str = Field(
        min_length=1, max_length=200, description="Arm name, unique in the design."
    )
    arm_description: str = Field(default="", description="What participants in this arm get.")
    weight: float = Field(
        default=1.0, gt=0, description="Relative share of participants (default: equal)."
    )
    config: dict[str, Any] | None = Field(
        default=None, description="JSON payload returned with the arm on lookup."
    )


class MetricTargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field_name: str = Field(min_length=1, description="A field marked is_metric in the sheet.")
    metric_pct_change: float | None = Field(
        default=None, description="Relative change to detect, e.g. 0.1 for +10%."
    )
    metric_target: float | None = Field(
        default=None, description="Absolute value the treatment should reach."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> MetricTargetIn:
        if (self.metric_pct_change is None) == (self.metric_target is None):
            raise ValueError("give exactly one of metric_pct_change or metric_target")
        return self


def check_arms(arms: list[ArmIn], *, field: str = "arms") -> None:
    from xngin.errors import InvalidInput

    if len(arms) < 2:
        raise InvalidInput(f"an experiment needs at least 2 arms; got {len(arms)}", field=field)
    seen: set[str] = set()
    for i, arm in enumerate(arms):
        if arm.arm_name in seen:
            raise InvalidInput(
                f"arm name {arm.arm_name!r} is used twice; arm names must be unique",
                field=f"{field}[{i}].arm_name",
            )
        seen.add(arm.arm_name)


@contextmanager
def stats_input_errors() -> Iterator[None]:
    """Turn a statistics input error into the API's 422, keeping the field it names."""
    from xngin.errors import InvalidInput
    from xngin.stats.errors import StatsInputError

    try:
        yield
    except StatsInputError as exc:
        raise InvalidInput(exc.message, field=exc.field) from exc


def audience_condition(pt: OpenParticipantType, filters: list[FilterIn]) -> sa.ColumnElement[bool]:
    """The design's filters as one SQL condition, validated against the sheet's filter fields."""
    from xngin.dwh.filters import compile_filters

    return compile_filters(
        pt.table,
        [f.to_audience_filter() for f in filters],
        allowed=pt.sheet.allowed_filter_types(),
    )


def sheet_fields(
    pt: OpenParticipantType, names: list[str], *, role: str, field: str
) -> list[ColumnInfo]:
    """Look names up among the sheet's fields marked for ``role`` (is_metric, is_strata)."""
    from xngin.errors import InvalidInput

    marked = {r.field_name: r for r in pt.sheet.fields if getattr(r, f"is_{role}")}
    out = []
    for i, name in enumerate(names):
        row = marked.get(name)
        if row is None:
            allowed = ", ".join(sorted(marked)) or "none"
            raise InvalidInput(
                f"{name!r} is not a {role} field of participant type {pt.name!r}; "
                f"{role} fields: {allowed}",
                field=f"{field}[{i}]",
            )
        out.append(ColumnInfo(name=row.field_name, data_type=row.data_type))
    return out
