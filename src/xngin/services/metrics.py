"""Metric definitions, and which metrics an experiment is analyzed on.

A **metric definition** is an organization's named measurement of participants (API.md
``/v1/metric-definitions``). Its ``source`` says where the numbers come from:

* ``{"kind": "event", "event_name", "aggregation", "window_seconds"}``: each participant's outcome
  events of that name, aggregated from their first exposure (or assignment) for the window;
* ``{"kind": "ratio", "numerator": {...}, "denominator": {...}}``: two such aggregates, the arm's
  metric being the ratio of their sums (delta method);
* ``{"kind": "sheet", "participant_type", "field_name"}``: a column of the participant table
  marked ``is_metric`` in the sheet, read from the warehouse for the assigned participants.

``type`` is what the metric means and fixes the test: ``binary`` (a share; proportion test),
``count`` and ``mean`` (Welch), ``ratio`` (delta method).

An experiment is analyzed on its **analysis metrics**: by default the design's ``metrics`` (sheet
fields with power targets), all primary; :func:`set_analysis_metrics` replaces them with names of
metric definitions or sheet metric fields, each with a role (``primary``, ``secondary``,
``guardrail``) and, for guardrails, the harmful direction and the tolerated change. They are kept
in ``experiment_metrics`` because the experiment design has no field for them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from xngin.dwh.schema import DataType
from xngin.errors import Conflict, InvalidInput, NotFound
from xngin.events.model import Aggregation, EventMetric
from xngin.services.access import Principal
from xngin.services.catalog import sheet_of
from xngin.services.lifecycle import load_experiment
from xngin.stats.guardrails import BadDirection
from xngin.store import catalog as catalog_repo
from xngin.store import experiments as experiments_repo
from xngin.store.models import Experiment, ExperimentMetric, MetricDefinition
from xngin.store.named import find_named, list_named

MetricType = Literal["binary", "mean", "count", "ratio"]
MetricRole = Literal["primary", "secondary", "guardrail"]
StatsKind = Literal["numeric", "binary", "ratio"]

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
_NAME = re.compile(NAME_PATTERN)
MAX_ANALYSIS_METRICS = 50

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


class GuardrailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: BadDirection = Field(description="The harmful direction: increase or decrease.")
    threshold: float = Field(
        default=0.0,
        ge=0,
        description="Tolerated change in the harmful direction (absolute, or a fraction of the "
        "baseline with relative=true) before an arm counts as worse.",
    )
    relative: bool = Field(default=False, description="threshold is relative to the baseline.")
    auto_stop: bool = Field(
        default=False,
        description="Stop a running experiment when an arm is worse beyond the threshold even by "
        "its always-valid interval (safe under repeated looks).",
    )


class AnalysisMetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        description="A metric definition, else a field marked is_metric in the experiment's "
        "participant type sheet.",
    )
    role: MetricRole = Field(default="primary", description="primary, secondary or guardrail.")
    guardrail: GuardrailIn | None = Field(
        default=None, description="Required for role guardrail, refused otherwise."
    )


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


def _find_definition(session: Session, principal: Principal, name: str) -> MetricDefinition | None:
    return find_named(
        session, MetricDefinition, organization_id=principal.organization_id, name=name
    )


def get_metric_definition(session: Session, principal: Principal, name: str) -> MetricDefinition:
    """The caller's metric definition named ``name``, or 404."""
    found = _find_definition(session, principal, name)
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
    if _find_definition(session, principal, spec.name) is not None:
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
        "created_at": _utc(definition.created_at).isoformat(),
        "updated_at": _utc(definition.updated_at).isoformat(),
    }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# What an experiment is analyzed on --------------------------------------------------------------


@dataclass(frozen=True)
class EventSource:
    """Per-participant values from outcome events."""

    metric: EventMetric


@dataclass(frozen=True)
class RatioSource:
    """Numerator and denominator per participant, both from outcome events."""

    numerator: EventMetric
    denominator: EventMetric


@dataclass(frozen=True)
class SheetSource:
    """A column of the experiment's participant table."""

    field_name: str
    data_type: DataType


MetricSource = EventSource | RatioSource | SheetSource


@dataclass(frozen=True)
class GuardrailRule:
    """How a guardrail metric is judged: harm in ``direction`` beyond ``threshold``."""

    direction: BadDirection
    threshold: float = 0.0
    relative: bool = False
    auto_stop: bool = False


@dataclass(frozen=True)
class AnalysisMetric:
    """One metric an experiment is analyzed on, resolved to where its numbers come from.

    ``source`` is None when the metric cannot be analyzed; ``error`` then says why as
    ``(code, message)``, and the analysis reports it for this metric alone.
    """

    name: str
    role: MetricRole
    kind: StatsKind
    source: MetricSource | None
    cuped: bool = False
    guardrail: GuardrailRule | None = None
    error: tuple[str, str] | None = None


def _event_metric(stored: dict[str, Any]) -> EventMetric:
    return EventMetric(
        event_name=stored["event_name"],
        aggregation=stored["aggregation"],
        window_seconds=stored.get("window_seconds"),
    )


def _kind_of(metric_type: str) -> StatsKind:
    if metric_type == "ratio":
        return "ratio"
    return "binary" if metric_type == "binary" else "numeric"


def _from_definition(
    definition: MetricDefinition, experiment: Experiment, role: MetricRole
) -> AnalysisMetric:
    stored = definition.source
    kind = _kind_of(definition.type)
    source: MetricSource
    if stored["kind"] == "event":
        source = EventSource(_event_metric(stored))
    elif stored["kind"] == "ratio":
        source = RatioSource(
            _event_metric(stored["numerator"]), _event_metric(stored["denominator"])
        )
    else:
        own_type = experiment.participant_type.name
        if stored["participant_type"] != own_type:
            return AnalysisMetric(
                definition.name,
                role,
                kind,
                None,
                error=(
                    "participant_type_mismatch",
                    f"metric {definition.name!r} reads participant type "
                    f"{stored['participant_type']!r}; this experiment's participants are "
                    f"{own_type!r}",
                ),
            )
        row = _sheet_metric_fields(experiment).get(stored["field_name"])
        if row is None:
            return AnalysisMetric(
                definition.name,
                role,
                kind,
                None,
                error=(
                    "unknown_field",
                    f"field {stored['field_name']!r} is no longer marked is_metric in the sheet "
                    f"of participant type {own_type!r}",
                ),
            )
        source = SheetSource(stored["field_name"], row)
    return AnalysisMetric(definition.name, role, kind, source, cuped=definition.cuped)


def _sheet_metric_fields(experiment: Experiment) -> dict[str, DataType]:
    return {
        row.field_name: row.data_type for row in sheet_of(experiment.participant_type).metrics()
    }


def _resolve(
    session: Session, principal: Principal, experiment: Experiment, name: str, role: MetricRole
) -> AnalysisMetric:
    definition = _find_definition(session, principal, name)
    if definition is not None:
        return _from_definition(definition, experiment, role)
    data_type = _sheet_metric_fields(experiment).get(name)
    if data_type is not None:
        kind: StatsKind = "binary" if data_type is DataType.BOOLEAN else "numeric"
        return AnalysisMetric(name, role, kind, SheetSource(name, data_type))
    return AnalysisMetric(
        name,
        role,
        "numeric",
        None,
        error=(
            "unknown_metric",
            f"{name!r} is neither a metric definition nor a metric field of participant type "
            f"{experiment.participant_type.name!r}",
        ),
    )


def _stored_rows(session: Session, experiment_id: str) -> list[ExperimentMetric]:
    return list(
        session.scalars(
            sa.select(ExperimentMetric)
            .where(ExperimentMetric.experiment_id == experiment_id)
            .order_by(ExperimentMetric.position)
        )
    )


def analysis_plan(
    session: Session, principal: Principal, experiment: Experiment
) -> list[AnalysisMetric]:
    """The metrics ``experiment`` is analyzed on, in display order, each resolved or failed.

    The stored analysis metrics when there are any, else the design's ``metrics`` (sheet fields)
    as primary metrics.
    """
    rows = _stored_rows(session, experiment.id)
    if not rows:
        # Design metrics are sheet fields by definition: a metric definition of the same name
        # must not take their place.
        fields = _sheet_metric_fields(experiment)
        plan = []
        for target in (experiment.design or {}).get("metrics", []):
            name = target["field_name"]
            data_type = fields.get(name)
            if data_type is None:
                plan.append(_resolve(session, principal, experiment, name, "primary"))
            else:
                kind: StatsKind = "binary" if data_type is DataType.BOOLEAN else "numeric"
                plan.append(AnalysisMetric(name, "primary", kind, SheetSource(name, data_type)))
        return plan
    plan = []
    for row in rows:
        metric = _resolve(session, principal, experiment, row.metric_name, row.role)  # type: ignore[arg-type]
        if row.guardrail is not None:
            metric = AnalysisMetric(
                metric.name,
                metric.role,
                metric.kind,
                metric.source,
                metric.cuped,
                GuardrailRule(**row.guardrail),
                metric.error,
            )
        plan.append(metric)
    return plan


def get_analysis_metrics(
    session: Session, principal: Principal, experiment_id: str
) -> tuple[list[dict[str, Any]], bool]:
    """The experiment's analysis metrics as JSON values, and whether they are the default
    (the design's metrics, because none were set)."""
    experiment = load_experiment(session, principal, experiment_id)
    rows = _stored_rows(session, experiment.id)
    if not rows:
        names = [m["field_name"] for m in (experiment.design or {}).get("metrics", [])]
        return [{"name": n, "role": "primary", "guardrail": None} for n in names], True
    return [{"name": r.metric_name, "role": r.role, "guardrail": r.guardrail} for r in rows], False


def set_analysis_metrics(
    session: Session,
    principal: Principal,
    *,
    experiment_id: str,
    metrics: Sequence[AnalysisMetricIn],
) -> list[dict[str, Any]]:
    """Replace the metrics an experiment is analyzed on, and record the change in its audit log.

    Parameters
    ----------
    session, principal
        The request's transaction (not committed here) and the caller.
    experiment_id : str
        The caller's experiment (any state: guardrails may be added to a running experiment; the
        audit log keeps every version).
    metrics : sequence of AnalysisMetricIn
        At most 50, unique names; an empty list restores the default (the design's metrics).

    Returns
    -------
    list of dict
        The stored metrics, as :func:`get_analysis_metrics` shows them.

    Raises
    ------
    xngin.errors.InvalidInput
        Naming ``analysis_metrics[i].name`` (unknown, repeated, or another participant type's
        sheet metric) or ``analysis_metrics[i].guardrail``.
    """
    experiment = load_experiment(session, principal, experiment_id, for_update=True)
    if len(metrics) > MAX_ANALYSIS_METRICS:
        raise InvalidInput(
            f"{len(metrics)} analysis metrics given; at most {MAX_ANALYSIS_METRICS} are accepted",
            field="analysis_metrics",
        )
    seen: set[str] = set()
    for i, item in enumerate(metrics):
        where = f"analysis_metrics[{i}]"
        if item.name in seen:
            raise InvalidInput(f"{item.name!r} is listed twice", field=f"{where}.name")
        seen.add(item.name)
        resolved = _resolve(session, principal, experiment, item.name, item.role)
        if resolved.error is not None:
            raise InvalidInput(resolved.error[1], field=f"{where}.name")
        if (item.role == "guardrail") != (item.guardrail is not None):
            raise InvalidInput(
                "a guardrail metric needs guardrail {direction, threshold}; other roles take none"
                f" (role is {item.role!r})",
                field=f"{where}.guardrail",
            )
    before, _ = get_analysis_metrics(session, principal, experiment_id)
    session.execute(
        sa.delete(ExperimentMetric).where(ExperimentMetric.experiment_id == experiment.id)
    )
    for position, item in enumerate(metrics):
        session.add(
            ExperimentMetric(
                experiment_id=experiment.id,
                metric_name=item.name,
                position=position,
                role=item.role,
                guardrail=item.guardrail.model_dump() if item.guardrail else None,
            )
        )
    session.flush()
    after, _ = get_analysis_metrics(session, principal, experiment_id)
    experiments_repo.add_audit_entry(
        session,
        experiment_id=experiment.id,
        actor=principal.api_key_id,
        action="analysis_metrics",
        changes={"analysis_metrics": {"before": before, "after": after}},
        at=datetime.now(UTC),
    )
    session.flush()
    return after
