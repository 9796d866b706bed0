"""Which metrics an experiment is analyzed on.

An experiment is analyzed on its **analysis metrics**: by default the design's ``metrics`` (sheet
fields with power targets), all primary; :func:`set_analysis_metrics` replaces them with names of
metric definitions or sheet metric fields, each with a role (``primary``, ``secondary``,
``guardrail``) and, for guardrails, the harmful direction and the tolerated change. They are kept
in ``experiment_metrics`` because the experiment design has no field for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from xngin.dwh.schema import DataType
from xngin.errors import InvalidInput
from xngin.events.model import EventMetric
from xngin.services.access import Principal
from xngin.services.catalog import sheet_of
from xngin.services.lifecycle import load_experiment
from xngin.services.metrics import find_metric_definition
from xngin.stats.guardrails import BadDirection
from xngin.store import experiments as experiments_repo
from xngin.store.models import Experiment, ExperimentMetric, MetricDefinition

MetricRole = Literal["primary", "secondary", "guardrail"]
StatsKind = Literal["numeric", "binary", "ratio"]
MAX_ANALYSIS_METRICS = 50


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
    definition = find_metric_definition(session, principal, name)
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
