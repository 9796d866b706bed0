"""Metric definitions (/v1/metric-definitions) and features (/v1/features), by name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep, api_key_header
from xngin.api.schemas import ERROR_RESPONSES, ErrorResponse
from xngin.errors import Unauthorized
from xngin.services import features as feature_service
from xngin.services import metrics as metric_service
from xngin.services.features import FeatureCreate, FeatureUpdate
from xngin.services.metrics import MetricDefinitionCreate, MetricDefinitionUpdate

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Name taken, or still in use."},
}

metric_definitions_router = APIRouter(tags=["metric definitions"], responses=RESPONSES)
features_router = APIRouter(tags=["features"], responses=RESPONSES)


# Metric definitions -----------------------------------------------------------------------------


class MetricDefinitionOut(BaseModel):
    name: str = Field(description="Unique in the organization.")
    description: str = Field(description="What the metric measures.")
    unit: str = Field(description="Unit for display.")
    type: str = Field(description="binary, count, mean or ratio.")
    source: dict[str, Any] = Field(
        description="kind event {event_name, aggregation, window_seconds}, kind ratio "
        "{numerator, denominator}, or kind sheet {participant_type, field_name}; defaults filled."
    )
    cuped: bool = Field(description="Adjusted with the pre-period of the same events.")
    created_at: datetime = Field(description="Creation time (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")


class MetricDefinitionList(BaseModel):
    items: list[MetricDefinitionOut] = Field(description="By name.")


def _metric_out(definition: Any) -> MetricDefinitionOut:
    return MetricDefinitionOut.model_validate(metric_service.describe_metric_definition(definition))


@metric_definitions_router.post("/metric-definitions", summary="Define a metric", status_code=201)
def create_metric_definition(
    body: MetricDefinitionCreate, principal: PrincipalDep, session: SessionDep
) -> MetricDefinitionOut:
    return _metric_out(metric_service.create_metric_definition(session, principal, body))


@metric_definitions_router.get("/metric-definitions", summary="List metric definitions")
def list_metric_definitions(principal: PrincipalDep, session: SessionDep) -> MetricDefinitionList:
    found = metric_service.list_metric_definitions(session, principal)
    return MetricDefinitionList(items=[_metric_out(d) for d in found])


@metric_definitions_router.get("/metric-definitions/{name}", summary="A metric definition")
def get_metric_definition(
    name: str, principal: PrincipalDep, session: SessionDep
) -> MetricDefinitionOut:
    return _metric_out(metric_service.get_metric_definition(session, principal, name))


@metric_definitions_router.patch(
    "/metric-definitions/{name}", summary="Change fields of a metric definition"
)
def update_metric_definition(
    name: str, body: MetricDefinitionUpdate, principal: PrincipalDep, session: SessionDep
) -> MetricDefinitionOut:
    return _metric_out(metric_service.update_metric_definition(session, principal, name, body))


@metric_definitions_router.delete(
    "/metric-definitions/{name}",
    summary="Delete a metric definition no experiment is analyzed on",
    status_code=204,
)
def delete_metric_definition(name: str, principal: PrincipalDep, session: SessionDep) -> Response:
    metric_service.delete_metric_definition(session, principal, name)
    return Response(status_code=204)


# Features ---------------------------------------------------------------------------------------


class FeatureOut(BaseModel):
    name: str = Field(description="Unique in the organization.")
    description: str = Field(description="What the feature controls.")
    type: str = Field(description="boolean, string, number or json.")
    allowed_values: list[Any] | None = Field(description="Values arms may set; null: any.")
    default: Any = Field(description="The value outside any experiment.")
    created_at: datetime = Field(description="Creation time (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")


class FeatureList(BaseModel):
    items: list[FeatureOut] = Field(description="By name.")


class FeatureValueOut(BaseModel):
    feature: str = Field(description="The feature.")
    participant_id: str = Field(description="The participant.")
    value: Any = Field(description="What the participant gets.")
    source: str = Field(description="experiment (an arm set it) or default.")
    experiment_id: str | None = Field(
        description="The running experiment that has the participant, if any."
    )
    arm_id: str | None = Field(description="The participant's arm in that experiment.")
    arm_name: str | None = Field(description="Its name.")


class FeatureValueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_id: str = Field(min_length=1, max_length=200, description="The participant.")
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="The participant's attributes, for online experiments' audience filters.",
    )


def _feature_out(feature: Any) -> FeatureOut:
    return FeatureOut.model_validate(feature_service.describe_feature(feature))


@features_router.post("/features", summary="Define a feature", status_code=201)
def create_feature(body: FeatureCreate, principal: PrincipalDep, session: SessionDep) -> FeatureOut:
    return _feature_out(feature_service.create_feature(session, principal, body))


@features_router.get("/features", summary="List features")
def list_features(principal: PrincipalDep, session: SessionDep) -> FeatureList:
    return FeatureList(
        items=[_feature_out(f) for f in feature_service.list_features(session, principal)]
    )


@features_router.get("/features/{name}", summary="A feature")
def get_feature(name: str, principal: PrincipalDep, session: SessionDep) -> FeatureOut:
    return _feature_out(feature_service.get_feature(session, principal, name))


@features_router.patch("/features/{name}", summary="Change fields of a feature")
def update_feature(
    name: str, body: FeatureUpdate, principal: PrincipalDep, session: SessionDep
) -> FeatureOut:
    return _feature_out(feature_service.update_feature(session, principal, name, body))


@features_router.delete(
    "/features/{name}", summary="Delete a feature no live experiment sets", status_code=204
)
def delete_feature(name: str, principal: PrincipalDep, session: SessionDep) -> Response:
    feature_service.delete_feature(session, principal, name)
    return Response(status_code=204)


ApiKeyDep = Annotated[str | None, Depends(api_key_header)]


def _value(
    runtime: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    key: str | None,
    name: str,
    request: FeatureValueRequest,
) -> FeatureValueOut:
    if not key:  # pragma: no cover - the principal dependency refuses a missing key first
        raise Unauthorized("missing X-API-Key header", field="X-API-Key")
    found = feature_service.feature_value(
        runtime,
        session,
        principal,
        api_key=key,
        name=name,
        participant_id=request.participant_id,
        properties=request.properties,
    )
    return FeatureValueOut(
        feature=found.feature,
        participant_id=found.participant_id,
        value=found.value,
        source=found.source,
        experiment_id=found.experiment_id,
        arm_id=found.arm_id,
        arm_name=found.arm_name,
    )


@features_router.get(
    "/features/{name}/value",
    summary="The feature's value for a participant, and which experiment decided it",
    description="Asks the running experiments whose arms set the feature, oldest first; the "
    "first that has the participant (assigning online newcomers) decides. Otherwise the default.",
)
def feature_value(
    name: str,
    participant_id: Annotated[str, Query(min_length=1, max_length=200, description="Participant.")],
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    key: ApiKeyDep,
) -> FeatureValueOut:
    request = FeatureValueRequest(participant_id=participant_id)
    return _value(runtime, session, principal, key, name, request)


@features_router.post(
    "/features/{name}/value",
    summary="The feature's value for a participant with properties (online audience filters)",
)
def feature_value_with_properties(
    name: str,
    body: FeatureValueRequest,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    key: ApiKeyDep,
) -> FeatureValueOut:
    return _value(runtime, session, principal, key, name, body)
