"""Saved experiments: the design, its lifecycle actions and its audit log (API.md "Experiments").

Lists are paged with a cursor: ``GET /v1/experiments?limit=50`` returns ``next_cursor``; pass it
back as ``cursor`` for the next page (newest first; experiments created meanwhile never shift a
page). ``DELETE`` removes an experiment that never ran (draft, assigned, abandoned) together with
its audit log; committed experiments are stopped, not deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES, ErrorResponse
from xngin.services import experiments as service
from xngin.services import lifecycle
from xngin.services.assign import RerandomizeIn
from xngin.services.design import FilterIn, MetricTargetIn
from xngin.services.experiment_specs import ExperimentCreate, ExperimentUpdate
from xngin.timestamps import as_utc

if TYPE_CHECKING:
    from xngin.store.models import AuditEntry, Experiment

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Not allowed in the experiment's current state."},
}

router = APIRouter(tags=["experiments"], responses=RESPONSES)


class ArmOut(BaseModel):
    arm_id: str = Field(description="The arm's id, used in assignments and analysis.")
    arm_name: str = Field(description="Arm name.")
    arm_description: str = Field(description="What participants in this arm get.")
    weight: float = Field(description="Relative share of participants.")
    config: dict[str, Any] | None = Field(description="JSON payload returned with the arm.")


class RampStepOut(BaseModel):
    at: datetime = Field(description="When this step begins (UTC).")
    allocation: float = Field(description="Percent of eligible participants from then on.")


class ExperimentOut(BaseModel):
    id: str = Field(description="Experiment id.")
    name: str = Field(description="Experiment name.")
    description: str = Field(description="What the experiment is about.")
    hypothesis: str = Field(description="Expected effect and why.")
    type: str = Field(description="preassigned or online.")
    state: str = Field(
        description="draft, assigned, committed, running, paused, completed, stopped, abandoned."
    )
    participant_type: str = Field(description="Participant type name.")
    filters: list[FilterIn] = Field(description="Audience filters (AND).")
    arms: list[ArmOut] = Field(description="Arms in design order, with ids.")
    metrics: list[MetricTargetIn] = Field(description="Metrics and the effects to detect.")
    strata: list[str] = Field(description="Strata fields.")
    alpha: float = Field(description="Significance level.")
    power: float = Field(description="Power.")
    multiple_comparison: str = Field(description="none or bonferroni.")
    desired_n: int | None = Field(description="Participants to sample (null: whole audience).")
    seed: int = Field(description="Randomization seed.")
    start_at: datetime | None = Field(description="Scheduled start (UTC).")
    end_at: datetime | None = Field(description="Scheduled end (UTC).")
    traffic_allocation: float = Field(description="Percent of eligible participants included.")
    ramp_schedule: list[RampStepOut] = Field(description="Online ramp-up steps.")
    current_allocation: float = Field(
        description="Percent of eligible participants included right now by the allocation and "
        "ramp schedule (whatever the state)."
    )
    power_analyses: list[dict[str, Any]] = Field(
        description="Per metric, as POST /v1/power's analyses (computed on save)."
    )
    assign_summary: dict[str, Any] | None = Field(
        description="After /assign: sample_size, arm_sizes, balance_check, strata_counts."
    )
    stop_reason: str = Field(description="Why the experiment was stopped, if it was.")
    allowed_actions: list[str] = Field(description="Lifecycle actions allowed now.")
    created_at: datetime = Field(description="Creation time (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")


class ExperimentList(BaseModel):
    items: list[ExperimentOut] = Field(description="Experiments, newest first.")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at end.")


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why the experiment is stopped early.")


class AuditItem(BaseModel):
    at: datetime = Field(description="When (UTC).")
    actor: str = Field(description="API key id, or 'scheduler' for scheduled moves.")
    action: str = Field(description="create, update, a lifecycle action, or complete.")
    changes: dict[str, Any] = Field(description="Changed fields with before/after values.")


class AuditList(BaseModel):
    items: list[AuditItem] = Field(description="Oldest first.")


def _out(experiment: Experiment) -> ExperimentOut:
    view = service.describe(experiment)
    view["current_allocation"] = lifecycle.current_allocation(experiment, datetime.now(UTC))
    return ExperimentOut.model_validate(view)


def _audit_item(entry: AuditEntry) -> AuditItem:
    return AuditItem(
        at=as_utc(entry.at), actor=entry.actor, action=entry.action, changes=entry.changes
    )


@router.post("/experiments", summary="Save an experiment design (draft)", status_code=201)
def create_experiment(
    body: ExperimentCreate, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ExperimentOut:
    return _out(service.create_experiment(runtime, session, principal, body))


@router.get("/experiments", summary="List experiments, newest first")
def list_experiments(
    principal: PrincipalDep,
    session: SessionDep,
    state: Annotated[
        list[str] | None, Query(description="Only these states (repeat the parameter).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE, description="Page size.")] = (
        service.DEFAULT_PAGE_SIZE
    ),
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> ExperimentList:
    page, next_cursor = service.list_experiments(
        session, principal, states=state or [], limit=limit, cursor=cursor
    )
    return ExperimentList(items=[_out(e) for e in page], next_cursor=next_cursor)


@router.get("/experiments/{experiment_id}", summary="An experiment")
def get_experiment(
    experiment_id: str, principal: PrincipalDep, session: SessionDep
) -> ExperimentOut:
    return _out(service.get_experiment(session, principal, experiment_id))


@router.patch("/experiments/{experiment_id}", summary="Change fields of an experiment")
def update_experiment(
    experiment_id: str,
    body: ExperimentUpdate,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ExperimentOut:
    return _out(
        service.update_experiment(
            runtime, session, principal, experiment_id=experiment_id, changes=body
        )
    )


@router.delete(
    "/experiments/{experiment_id}", summary="Delete an experiment that never ran", status_code=204
)
def delete_experiment(experiment_id: str, principal: PrincipalDep, session: SessionDep) -> Response:
    service.delete_experiment(session, principal, experiment_id)
    return Response(status_code=204)


@router.get("/experiments/{experiment_id}/audit", summary="Everything that changed, and who")
def audit_log(experiment_id: str, principal: PrincipalDep, session: SessionDep) -> AuditList:
    entries = service.audit_log(session, principal, experiment_id)
    return AuditList(items=[_audit_item(e) for e in entries])


def _act(
    action: lifecycle.Action,
    experiment_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    reason: str | None = None,
    rerandomize: RerandomizeIn | None = None,
) -> ExperimentOut:
    experiment = lifecycle.perform_action(
        runtime,
        session,
        principal,
        experiment_id=experiment_id,
        action=action,
        reason=reason,
        rerandomize=rerandomize,
    )
    return _out(experiment)


class AssignActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rerandomize: RerandomizeIn | None = Field(
        default=None,
        description="Redraw (up to max_tries, from seeds derived from the experiment's seed) "
        "until the balance check's p-value reaches p_threshold.",
    )


@router.post(
    "/experiments/{experiment_id}/assign",
    summary="Draw the audience and assign it (preassigned; draft or assigned)",
)
def assign(
    experiment_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: AssignActionIn | None = None,
) -> ExperimentOut:
    rerandomize = body.rerandomize if body is not None else None
    return _act(
        lifecycle.Action.ASSIGN, experiment_id, principal, session, runtime, rerandomize=rerandomize
    )


@router.post(
    "/experiments/{experiment_id}/commit",
    summary="Freeze the design (preassigned: from assigned; online: from draft)",
)
def commit(
    experiment_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ExperimentOut:
    return _act(lifecycle.Action.COMMIT, experiment_id, principal, session, runtime)


@router.post("/experiments/{experiment_id}/start", summary="Start a committed experiment")
def start(
    experiment_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ExperimentOut:
    return _act(lifecycle.Action.START, experiment_id, principal, session, runtime)


@router.post("/experiments/{experiment_id}/pause", summary="Pause a running experiment")
def pause(
    experiment_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ExperimentOut:
    return _act(lifecycle.Action.PAUSE, experiment_id, principal, session, runtime)


@router.post("/experiments/{experiment_id}/resume", summary="Resume a paused experiment")
def resume(
    experiment_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ExperimentOut:
    return _act(lifecycle.Action.RESUME, experiment_id, principal, session, runtime)


@router.post(
    "/experiments/{experiment_id}/stop",
    summary="Stop an experiment early (committed, running or paused), with a reason",
)
def stop(
    experiment_id: str,
    body: StopRequest,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ExperimentOut:
    return _act(lifecycle.Action.STOP, experiment_id, principal, session, runtime, body.reason)


@router.post(
    "/experiments/{experiment_id}/abandon", summary="Give up a draft or assigned experiment"
)
def abandon(
    experiment_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ExperimentOut:
    return _act(lifecycle.Action.ABANDON, experiment_id, principal, session, runtime)
