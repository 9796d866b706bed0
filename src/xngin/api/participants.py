"""GET /v1/filters, /v1/metrics, /v1/strata: the fields a design may use, with their values."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES
from xngin.services.audience import audience_size
from xngin.services.design import FilterIn
from xngin.services.fields import FieldRole, describe_fields

router = APIRouter(tags=["participants"], responses=ERROR_RESPONSES)

ParticipantTypeQuery = Annotated[
    str, Query(min_length=1, description="Name of a registered participant type.")
]


class FieldOut(BaseModel):
    field_name: str = Field(description="Column name.")
    data_type: str = Field(description="string, integer, float, decimal, boolean, date, ...")
    description: str = Field(description="From the config sheet.")
    values: dict[str, Any] = Field(
        description='Categorical/boolean: {"distinct": [{"value", "count"}], "complete"} '
        '(top 1,000 by count); numeric/date: {"min", "max", "null_count"}, and with '
        '?histograms=true also "histogram": {"edges", "counts", "unit"?} (20 equal-width bins; '
        "dates in epoch_days, timestamps in epoch_seconds)."
    )


class FieldsOut(BaseModel):
    participant_type: str
    fields: list[FieldOut]


HistogramsQuery = Annotated[
    bool,
    Query(description="Also draw each numeric/date field's histogram (one more warehouse query)."),
]


def _answer(
    runtime: Any, session: Any, principal: Any, name: str, role: FieldRole, histograms: bool
) -> FieldsOut:
    described = describe_fields(
        runtime, session, principal, participant_type=name, role=role, histograms=histograms
    )
    return FieldsOut(
        participant_type=name,
        fields=[
            FieldOut(
                field_name=d.field_name,
                data_type=d.data_type,
                description=d.description,
                values=d.values,
            )
            for d in described
        ],
    )


@router.get("/filters", summary="Fields usable in audience filters, with their values")
def filters(
    participant_type: ParticipantTypeQuery,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    histograms: HistogramsQuery = False,
) -> FieldsOut:
    return _answer(runtime, session, principal, participant_type, FieldRole.FILTER, histograms)


@router.get("/metrics", summary="Fields usable as metrics, with their values")
def metrics(
    participant_type: ParticipantTypeQuery,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    histograms: HistogramsQuery = False,
) -> FieldsOut:
    return _answer(runtime, session, principal, participant_type, FieldRole.METRIC, histograms)


@router.get("/strata", summary="Fields usable as strata, with their values")
def strata(
    participant_type: ParticipantTypeQuery,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    histograms: HistogramsQuery = False,
) -> FieldsOut:
    return _answer(runtime, session, principal, participant_type, FieldRole.STRATA, histograms)


class AudienceSizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_type: str = Field(description="Registered participant type.")
    filters: list[FilterIn] = Field(default_factory=list, description="Audience filters (AND).")


class AudienceSize(BaseModel):
    participant_type: str
    count: int = Field(description="Participants matching every filter.")


@router.post("/audience-size", summary="How many participants match the filters")
def audience_size_route(
    body: AudienceSizeRequest, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> AudienceSize:
    count = audience_size(
        runtime,
        session,
        principal,
        participant_type=body.participant_type,
        filters=body.filters,
    )
    return AudienceSize(participant_type=body.participant_type, count=count)
