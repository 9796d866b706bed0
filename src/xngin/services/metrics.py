"""Metric definitions: an organization's named measurements of participants.

A **metric definition** is an organization's named measurement of participants (API.md
``/v1/metric-definitions``). Its ``source`` says where the numbers come from:

* ``{"kind": "event", "event_name", "aggregation", "window_seconds"}``: each participant's outcome
  events of that name, aggregated from their first exposure (or assignment) for the window;
* ``{"kind": "ratio", "numerator": {...}, "denominator": {...}}``: two such aggregates, the arm's
  metric being the ratio of their sums (delta method);
* ``{"kind": "sheet", "participant_type", "field_name"}``: a column of the participant table
  marked ``is_metric`` in the sheet, read from the warehouse for the assigned participants.

``type`` is what the metric means and fixes the test: ``binary`` (a share; proportion test),
``count`` and ``mean`` (Welch), ``ratio`` (delta method). Which metrics an experiment is analyzed
on is :mod:`xngin.services.analysis_plan`.

"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from xngin.dwh.schema import DataType
from xngin.errors import Conflict, InvalidInput, NotFound
from xngin.events.model import Aggregation
from xngin.services.access import Principal
from xngin.services.catalog import sheet_of
from xngin.store import catalog as catalog_repo
from xngin.store.models import Experiment, ExperimentMetric, MetricDefinition
from xngin.store.named import find_named, list_named
from xngin.timestamps import as_utc

MetricType = Literal["binary", "mean", "count", "ratio"]

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_NAME = re.compile(NAME_PATTERN)

# The aggregation a type implies when none is given, and the ones that fit it.
_DEFAULT_AGGREGATION: dict[str, Aggregation] = {"binary": "binary", "count": "count", "mean": "sum"}
_FITTING_AGGREGATIONS: dict[str, tuple[str, ...]] = {
    "binary": ("binary",),
    "count": ("count",),
    "mean": ("sum", "mean"),
}
_FITTING_COLUMNS: dict[str, tuple[DataType, ...]] = {
    "binary": (DataType.BOOLEAN,),
    "count": (DataType.INTEGER,),
    "mean": (DataType.INTEGER, DataType.FLOAT, DataType.DECIMAL, DataType.BOOLEAN),
}


# Requests ---------------------------------------------------------------------------------------


class EventAggregateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_name: str = Field(
        min_length=1, max_length=256, description="Outcome event name, as sent in events[].name."
    )
    aggregation: Aggregation | None = Field(
        default=None,
        description="Per participant: sum of values, count of events, binary (any event), or "
        "mean of values. Default from the metric type (binary, count, or sum for mean).",
    )
    window_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Count events this many seconds from the participant's first exposure "
        "(else assignment); null for no limit.",
    )


class EventSourceIn(EventAggregateIn):
    kind: Literal["event"] = Field(description="An aggregate of outcome events.")


class RatioSourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["ratio"] = Field(description="The ratio of two event aggregates' sums.")
    numerator: EventAggregateIn = Field(description="Aggregation defaults to sum.")
    denominator: EventAggregateIn = Field(description="Aggregation defaults to count.")


class SheetSourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sheet"] = Field(description="A column of the participant table.")
    participant_type: str = Field(min_length=1, description="A registered participant type.")
    field_name: str = Field(min_length=1, description="A field marked is_metric in its sheet.")


MetricSourceIn = Annotated[
    EventSourceIn | RatioSourceIn | SheetSourceIn, Field(discriminator="kind")
]


class MetricDefinitionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="Unique in the organization; letters, digits, _ . and -.",
    )
    description: str = Field(default="", description="What the metric measures.")
    unit: str = Field(default="", max_length=50, description="Unit for display, e.g. KES.")
    type: MetricType = Field(
        description="binary (a share), count, mean, or ratio (of two event aggregates)."
    )
    source: MetricSourceIn = Field(description="Where the numbers come from.")
    cuped: bool = Field(
        default=False,
        description="Event sources only: adjust with the same events in the window before each "
        "participant's anchor (CUPED variance reduction).",
    )


class MetricDefinitionUpdate(BaseModel):
    """A PATCH: only the fields given change; the name is the definition's key and stays."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, description="What the metric measures.")
    unit: str | None = Field(default=None, max_length=50, description="Unit for display.")
    type: MetricType | None = Field(default=None, description="binary, count, mean or ratio.")
    source: MetricSourceIn | None = Field(default=None, description="Where the numbers come from.")
    cuped: bool | None = Field(default=None, description="CUPED adjustment (event sources).")


# Definitions ------------------------------------------------------------------------------------


def _check_type_and_source(
    session: Session, principal: Principal, *, metric_type: str, source: Any, cuped: bool
) -> dict[str, Any]:
    """Check that type, source and cuped fit together; return the source with defaults filled."""
    kind = source.kind
    if (metric_type == "ratio") != (kind == "ratio"):
        raise InvalidInput(
            f"a metric of type {metric_type!r} cannot have a source of kind {kind!r}; type ratio "
            "goes with source kind ratio, the other types with event or sheet",
            field="source.kind",
        )
    if cuped and kind != "event":
        raise InvalidInput(
            f"cuped needs a source of kind event (the pre-period is read from the same events); "
            f"this source is of kind {kind!r}",
            field="cuped",
        )
    stored: dict[str, Any] = source.model_dump(mode="json")
    if kind == "event":
        fitting = _FITTING_AGGREGATIONS[metric_type]
        aggregation = source.aggregation or _DEFAULT_AGGREGATION[metric_type]
        if aggregation not in fitting:
            raise InvalidInput(
                f"aggregation {aggregation!r} does not fit a metric of type {metric_type!r}; "
                f"use {' or '.join(fitting)}",
                field="source.aggregation",
            )
        stored["aggregation"] = aggregation
    elif kind == "ratio":
        stored["numerator"]["aggregation"] = source.numerator.aggregation or "sum"
        stored["denominator"]["aggregation"] = source.denominator.aggregation or "count"
    else:
        _check_sheet_column(
            session,
            principal,
            participant_type=source.participant_type,
            field_name=source.field_name,
            metric_type=metric_type,
        )
    return stored


def _check_sheet_column(
    session: Session,
    principal: Principal,
    *,
    participant_type: str,
    field_name: str,
    metric_type: str,
) -> None:
    pt = catalog_repo.get_participant_type(
        session, organization_id=principal.organization_id, name=participant_type
    )
    if pt is None:
        raise InvalidInput(
            f"participant type {participant_type!r} does not exist in your organization",
            field="source.participant_type",
        )
    marked = {row.field_name: row for row in sheet_of(pt).metrics()}
    row = marked.get(field_name)
    if row is None:
        raise InvalidInput(
            f"{field_name!r} is not marked is_metric in participant type {participant_type!r}; "
            f"metric fields: {', '.join(sorted(marked)) or 'none'}",
            field="source.field_name",
        )
    fitting = _FITTING_COLUMNS[metric_type]
    if row.data_type not in fitting:
        raise InvalidInput(
            f"field {field_name!r} is of type {row.data_type}; a {metric_type} metric needs "
            f"{' or '.join(t.value for t in fitting)}",
            field="source.field_name",
        )


def find_metric_definition(
    session: Session, principal: Principal, name: str
) -> MetricDefinition | None:
    return find_named(
        session, MetricDefinition, organization_id=principal.organization_id, name=name
    )


def get_metric_definition(session: Session, principal: Principal, name: str) -> MetricDefinition:
    """The caller's metric definition named ``name``, or 404."""
    found = find_metric_definition(session, principal, name)
    if found is None:
        raise NotFound(f"metric definition {name!r} does not exist", field="name")
    return found


def list_metric_definitions(session: Session, principal: Principal) -> list[MetricDefinition]:
    """The caller's metric definitions by name."""
    return list_named(session, MetricDefinition, organization_id=principal.organization_id)


def create_metric_definition(
    session: Session, principal: Principal, spec: MetricDefinitionCreate
) -> MetricDefinition:
    """Validate and save a metric definition.

    Raises
    ------
    xngin.errors.InvalidInput
        Naming ``source.kind``, ``source.aggregation``, ``source.participant_type``,
        ``source.field_name`` or ``cuped`` when they do not fit ``type``.
    xngin.errors.Conflict
        ``name`` is taken in the organization.
    """
    if find_metric_definition(session, principal, spec.name) is not None:
        raise Conflict(
            f"a metric definition named {spec.name!r} already exists; change it with PATCH",
            field="name",
        )
    source = _check_type_and_source(
        session, principal, metric_type=spec.type, source=spec.source, cuped=spec.cuped
    )
    now = datetime.now(UTC)
    definition = MetricDefinition(
        organization_id=principal.organization_id,
        name=spec.name,
        description=spec.description,
        unit=spec.unit,
        type=spec.type,
        source=source,
        cuped=spec.cuped,
        created_at=now,
        updated_at=now,
    )
    session.add(definition)
    session.flush()
    return definition


def update_metric_definition(
    session: Session, principal: Principal, name: str, changes: MetricDefinitionUpdate
) -> MetricDefinition:
    """Change the given fields; type, source and cuped are checked together as on create."""
    definition = get_metric_definition(session, principal, name)
    given = changes.model_fields_set
    for key in ("type", "source", "cuped"):
        if key in given and getattr(changes, key) is None:
            raise InvalidInput(f"{key} cannot be null; leave it out to keep it", field=key)
    metric_type = changes.type if "type" in given else definition.type
    source_in = changes.source if "source" in given else _source_model(definition.source)
    cuped = changes.cuped if "cuped" in given else definition.cuped
    assert metric_type is not None and cuped is not None
    definition.source = _check_type_and_source(
        session, principal, metric_type=metric_type, source=source_in, cuped=cuped
    )
    definition.type = metric_type
    definition.cuped = cuped
    if changes.description is not None:
        definition.description = changes.description
    if changes.unit is not None:
        definition.unit = changes.unit
    definition.updated_at = datetime.now(UTC)
    session.flush()
    return definition


def _source_model(stored: dict[str, Any]) -> EventSourceIn | RatioSourceIn | SheetSourceIn:
    if stored["kind"] == "event":
        return EventSourceIn.model_validate(stored)
    if stored["kind"] == "ratio":
        return RatioSourceIn.model_validate(stored)
    return SheetSourceIn.model_validate(stored)


def delete_metric_definition(session: Session, principal: Principal, name: str) -> None:
    """Delete a definition no experiment is analyzed on (409 naming the experiments otherwise)."""
    definition = get_metric_definition(session, principal, name)
    users = session.scalars(
        sa.select(Experiment.id)
        .join(ExperimentMetric, ExperimentMetric.experiment_id == Experiment.id)
        .where(
            Experiment.organization_id == principal.organization_id,
            ExperimentMetric.metric_name == name,
        )
        .order_by(Experiment.id)
    ).all()
    if users:
        raise Conflict(
            f"metric definition {name!r} is an analysis metric of experiment(s) "
            f"{', '.join(users)}; remove it from their analysis metrics first",
            field="name",
        )
    session.delete(definition)
    session.flush()


def describe_metric_definition(definition: MetricDefinition) -> dict[str, Any]:
    """The definition as plain JSON values (the API's reply)."""
    return {
        "name": definition.name,
        "description": definition.description,
        "unit": definition.unit,
        "type": definition.type,
        "source": dict(definition.source),
        "cuped": definition.cuped,
        "created_at": as_utc(definition.created_at).isoformat(),
        "updated_at": as_utc(definition.updated_at).isoformat(),
    }
