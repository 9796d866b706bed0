"""Saved experiments: create, read, list, change and delete the design, with an audit trail.

The lifecycle (states, actions, schedules) is in :mod:`xngin.services.lifecycle`. Validation
works from the participant type's config sheet, so a design can be saved without reaching the
warehouse; only the power analysis (when metrics are given) and the assignment query it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.dwh.filters import compile_filters
from xngin.errors import Conflict, InvalidInput
from xngin.services.access import Principal
from xngin.services.catalog import sheet_of
from xngin.services.design import ArmIn, check_arms
from xngin.services.experiment_specs import ExperimentCreate, ExperimentUpdate
from xngin.services.features import check_arm_features
from xngin.services.lifecycle import (
    FINAL_STATES,
    OPEN_STATES,
    State,
    allowed_actions,
    flush_changes,
    json_safe,
    load_experiment,
    ramp_steps,
)
from xngin.services.power import analyze_power
from xngin.services.runtime import Runtime
from xngin.services.serving import invalidate_experiment
from xngin.store import catalog as catalog_repo
from xngin.store import experiments as repo
from xngin.store.models import Arm, AuditEntry, Experiment, ParticipantType, new_id
from xngin.timestamps import as_utc

ARM_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
MAX_ARM_ID_LENGTH = 32  # the arms.id column
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

#: Fields of the design kept in the experiment's ``design`` JSON column.
DESIGN_KEYS = ("filters", "metrics", "strata", "alpha", "power", "multiple_comparison", "desired_n")
#: Fields whose change makes an existing assignment wrong (the experiment goes back to draft).
ASSIGNMENT_FIELDS = frozenset(
    {"type", "participant_type", "filters", "arms", "strata", "desired_n", "seed"}
)
#: Fields whose change makes the stored power analysis wrong.
POWER_FIELDS = frozenset(
    {"participant_type", "filters", "arms", "metrics", "alpha", "power", "multiple_comparison",
     "desired_n"}
)  # fmt: skip
#: What may still change after commit: the experiment's words, and when it ends.
FROZEN_EXCEPTIONS = frozenset({"description", "end_at"})


# Reading ----------------------------------------------------------------------------------------


def _arm_json(arm: Arm) -> dict[str, Any]:
    return {
        "arm_id": arm.id,
        "arm_name": arm.name,
        "arm_description": arm.description,
        "weight": arm.weight,
        "config": arm.config,
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def describe(experiment: Experiment) -> dict[str, Any]:
    """The experiment as plain JSON values: the API's reply and the audit log's before/after."""
    design = experiment.design or {}
    return {
        "id": experiment.id,
        "name": experiment.name,
        "description": experiment.description,
        "hypothesis": experiment.hypothesis,
        "type": experiment.type,
        "state": experiment.state,
        "participant_type": experiment.participant_type.name,
        "filters": list(design.get("filters", [])),
        "arms": [_arm_json(a) for a in experiment.arms],
        "metrics": list(design.get("metrics", [])),
        "strata": list(design.get("strata", [])),
        "alpha": design.get("alpha", 0.05),
        "power": design.get("power", 0.8),
        "multiple_comparison": design.get("multiple_comparison", "none"),
        "desired_n": design.get("desired_n"),
        "seed": experiment.seed,
        "start_at": _time(experiment.start_at),
        "end_at": _time(experiment.end_at),
        "traffic_allocation": experiment.traffic_allocation,
        "ramp_schedule": list(experiment.ramp_schedule or []),
        "power_analyses": list(experiment.power_analyses or []),
        "assign_summary": experiment.assign_summary,
        "stop_reason": experiment.stop_reason,
        "allowed_actions": allowed_actions(experiment_type=experiment.type, state=experiment.state),
        "created_at": _time(experiment.created_at),
        "updated_at": _time(experiment.updated_at),
    }


def get_experiment(session: Session, principal: Principal, experiment_id: str) -> Experiment:
    """The caller's experiment, or 404."""
    return load_experiment(session, principal, experiment_id)


def _encode_cursor(experiment: Experiment) -> str:
    raw = json.dumps([as_utc(experiment.created_at).isoformat(), experiment.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, experiment_id = json.loads(base64.urlsafe_b64decode(padded))
        return as_utc(datetime.fromisoformat(created_at)), str(experiment_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput(
            f"cursor {cursor!r} is not one this API returned; pass next_cursor from the "
            "previous page, or omit it for the first page",
            field="cursor",
        ) from exc


def list_experiments(
    session: Session,
    principal: Principal,
    *,
    states: Sequence[str] = (),
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> tuple[list[Experiment], str | None]:
    """The caller's experiments, newest first, one page at a time.

    Parameters
    ----------
    states : sequence of str
        Only experiments in these states (empty: all).
    limit : int
        Page size, 1 to 200.
    cursor : str, optional
        ``next_cursor`` of the previous page. Keyset paging: experiments created meanwhile
        never shift a page.

    Returns
    -------
    (list of Experiment, str or None)
        The page, and the cursor of the next page (None on the last page).
    """
    known = {s.value for s in State}
    for i, state in enumerate(states):
        if state not in known:
            raise InvalidInput(
                f"state {state!r} is not a state; states: {', '.join(s.value for s in State)}",
                field=f"state[{i}]",
            )
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE_SIZE}; got {limit}", field="limit")
    after = _decode_cursor(cursor) if cursor else None
    rows = list(
        repo.list_experiments(
            session,
            organization_id=principal.organization_id,
            states=states,
            limit=limit + 1,
            after=after,
        )
    )
    page = rows[:limit]
    return page, (_encode_cursor(page[-1]) if len(rows) > limit else None)


def audit_log(session: Session, principal: Principal, experiment_id: str) -> Sequence[AuditEntry]:
    """The experiment's audit entries, oldest first."""
    experiment = load_experiment(session, principal, experiment_id)
    return repo.list_audit_entries(session, experiment_id=experiment.id)


# Validation -------------------------------------------------------------------------------------


def _participant_type(session: Session, principal: Principal, name: str) -> ParticipantType:
    pt = catalog_repo.get_participant_type(
        session, organization_id=principal.organization_id, name=name
    )
    if pt is None:
        known = [p.name for p in catalog_repo.list_participant_types(
            session, organization_id=principal.organization_id
        )]  # fmt: skip
        raise InvalidInput(
            f"participant type {name!r} does not exist; registered: {', '.join(known) or 'none'}",
            field="participant_type",
        )
    return pt


def _check_marked(names: Sequence[str], marked: set[str], *, role: str, field: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        where = f"{field}[{i}]"
        if name not in marked:
            raise InvalidInput(
                f"{name!r} is not marked is_{role} in the participant type's sheet; "
                f"{role} fields: {', '.join(sorted(marked)) or 'none'}",
                field=where,
            )
        if name in seen:
            raise InvalidInput(f"{name!r} is listed twice", field=where)
        seen.add(name)


def _check_arm_ids(session: Session, arms: Sequence[ArmIn], *, own: set[str]) -> None:
    given: dict[str, int] = {}
    for i, arm in enumerate(arms):
        if arm.arm_id is None:
            continue
        where = f"arms[{i}].arm_id"
        if not (1 <= len(arm.arm_id) <= MAX_ARM_ID_LENGTH) or set(arm.arm_id) - ARM_ID_CHARS:
            raise InvalidInput(
                f"arm_id {arm.arm_id!r} must be 1 to {MAX_ARM_ID_LENGTH} letters, digits, _ or -",
                field=where,
            )
        if arm.arm_id in given:
            raise InvalidInput(f"arm_id {arm.arm_id!r} is used twice", field=where)
        given[arm.arm_id] = i
    taken = sorted(repo.arm_ids_in_use(session, set(given) - own), key=given.__getitem__)
    if taken:
        arm_id = taken[0]
        raise Conflict(
            f"arm_id {arm_id!r} already names an arm of another experiment; omit it to have "
            "one generated",
            field=f"arms[{given[arm_id]}].arm_id",
        )


def _check_design(
    session: Session,
    principal: Principal,
    pt: ParticipantType,
    spec: ExperimentCreate,
    *,
    own_arm_ids: set[str],
) -> list[dict[str, Any]]:
    """Every check that needs no warehouse; returns the ramp schedule as stored."""
    sheet = sheet_of(pt)
    # The filter compiler checks names, relations and value types; the table needs only names.
    table = sa.table(pt.table_name, *(sa.column(row.field_name) for row in sheet.fields))
    compile_filters(
        table, [f.to_audience_filter() for f in spec.filters], allowed=sheet.allowed_filter_types()
    )
    check_arms(spec.arms)
    _check_arm_ids(session, spec.arms, own=own_arm_ids)
    check_arm_features(session, principal, [a.config for a in spec.arms])
    metric_fields = {row.field_name for row in sheet.metrics()}
    _check_marked(
        [m.field_name for m in spec.metrics], metric_fields, role="metric", field="metrics"
    )
    strata_fields = {row.field_name for row in sheet.strata()}
    _check_marked(spec.strata, strata_fields, role="strata", field="strata")
    if spec.start_at and spec.end_at and as_utc(spec.start_at) >= as_utc(spec.end_at):
        raise InvalidInput(
            f"end_at {spec.end_at.isoformat()} must be after start_at {spec.start_at.isoformat()}",
            field="end_at",
        )
    if spec.ramp_schedule and spec.type != "online":
        raise InvalidInput(
            "a ramp-up schedule applies to online experiments only; a preassigned experiment's "
            "audience is fixed when it is assigned",
            field="ramp_schedule",
        )
    return ramp_steps(spec.ramp_schedule, traffic_allocation=spec.traffic_allocation)


def _power_analyses(
    runtime: Runtime, session: Session, principal: Principal, spec: ExperimentCreate
) -> list[dict[str, Any]]:
    if not spec.metrics:
        return []
    analyses = analyze_power(
        runtime,
        session,
        principal,
        participant_type=spec.participant_type,
        filters=spec.filters,
        arms=spec.arms,
        metrics=spec.metrics,
        alpha=spec.alpha,
        power=spec.power,
        desired_n=spec.desired_n,
        multiple_comparison=spec.multiple_comparison,
    )
    return [json_safe(a) for a in analyses]


# Writing ----------------------------------------------------------------------------------------


def _apply_spec(
    experiment: Experiment, pt: ParticipantType, spec: ExperimentCreate, ramp: list[dict[str, Any]]
) -> None:
    experiment.participant_type_id = pt.id
    experiment.participant_type = pt
    experiment.name = spec.name
    experiment.description = spec.description
    experiment.hypothesis = spec.hypothesis
    experiment.type = spec.type
    dumped = spec.model_dump(mode="json", include=set(DESIGN_KEYS))
    experiment.design = {key: dumped[key] for key in DESIGN_KEYS}
    assert spec.seed is not None
    experiment.seed = spec.seed
    experiment.start_at = as_utc(spec.start_at) if spec.start_at else None
    experiment.end_at = as_utc(spec.end_at) if spec.end_at else None
    experiment.traffic_allocation = spec.traffic_allocation
    experiment.ramp_schedule = ramp


def _new_arms(spec: ExperimentCreate) -> list[Arm]:
    return [
        Arm(
            id=arm.arm_id or new_id(),
            position=i,
            name=arm.arm_name,
            description=arm.arm_description,
            weight=arm.weight,
            config=arm.config,
        )
        for i, arm in enumerate(spec.arms)
    ]


def create_experiment(
    runtime: Runtime, session: Session, principal: Principal, spec: ExperimentCreate
) -> Experiment:
    """Validate and save a new experiment in ``draft``, with its power analysis.

    Parameters
    ----------
    runtime, session, principal
        The process runtime, the request's transaction (not committed here) and the caller.
    spec : ExperimentCreate
        The design. A missing seed is drawn at random and saved, so assignment is reproducible.

    Returns
    -------
    Experiment
        The saved experiment; ``power_analyses`` is computed when metrics are given.

    Raises
    ------
    xngin.errors.InvalidInput
        Naming the field: ``participant_type`` unknown, ``filters[i]...``, ``arms...``,
        ``metrics[i]`` / ``strata[i]`` not marked in the sheet, ``end_at`` not after ``start_at``,
        ``ramp_schedule...``.
    xngin.errors.Conflict
        A given ``arm_id`` names another experiment's arm.
    """
    pt = _participant_type(session, principal, spec.participant_type)
    if spec.seed is None:
        spec = spec.model_copy(update={"seed": secrets.randbelow(2**62)})
    ramp = _check_design(session, principal, pt, spec, own_arm_ids=set())
    analyses = _power_analyses(runtime, session, principal, spec)
    now = datetime.now(UTC)
    experiment = Experiment(
        organization_id=principal.organization_id,
        state=State.DRAFT.value,
        power_analyses=analyses,
        assign_summary=None,
        created_at=now,
        updated_at=now,
    )
    _apply_spec(experiment, pt, spec, ramp)
    experiment.arms = _new_arms(spec)
    session.add(experiment)
    session.flush()
    snapshot = describe(experiment)
    repo.add_audit_entry(
        session,
        experiment_id=experiment.id,
        actor=principal.api_key_id,
        action="create",
        changes={k: snapshot[k] for k in ExperimentCreate.model_fields},
        at=now,
    )
    session.flush()
    return experiment


def _spec_of(experiment: Experiment) -> ExperimentCreate:
    current = describe(experiment)
    return ExperimentCreate.model_validate({k: current[k] for k in ExperimentCreate.model_fields})


def _comparable(spec: ExperimentCreate) -> dict[str, Any]:
    """The spec as JSON with times in one spelling, so equal values compare equal."""
    view = spec.model_dump(mode="json")
    for name in ("start_at", "end_at"):
        value = getattr(spec, name)
        view[name] = None if value is None else as_utc(value).isoformat()
    view["ramp_schedule"] = [
        {"at": as_utc(step.at).isoformat(), "allocation": step.allocation}
        for step in spec.ramp_schedule
    ]
    return view


def _check_editable(experiment: Experiment, fields: set[str]) -> None:
    state = experiment.state
    if state in OPEN_STATES:
        return
    editable = {"description"} if state in FINAL_STATES else set(FROZEN_EXCEPTIONS)
    frozen = sorted(fields - editable)
    if frozen:
        name = frozen[0]
        raise Conflict(
            f"{name} cannot change in state {state!r}: the design is frozen after commit; "
            f"only {' and '.join(sorted(editable))} can change now",
            field=name,
        )


def update_experiment(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    experiment_id: str,
    changes: ExperimentUpdate,
) -> Experiment:
    """Change the fields given in ``changes`` and record before/after of each changed field.

    In ``draft`` and ``assigned`` every field may change; changing what the assignment depends
    on (type, participant type, filters, arms, strata, desired_n, seed) sends an ``assigned``
    experiment back to ``draft``, its summary cleared, to be assigned again. After commit only
    ``description`` and ``end_at`` may change (a finished experiment keeps its end), anything
    else is a 409 naming the field. The power analysis is recomputed when its inputs change.

    Raises
    ------
    xngin.errors.NotFound, xngin.errors.Conflict, xngin.errors.InvalidInput
        As for :func:`create_experiment`, plus 409 for frozen fields.
    """
    experiment = load_experiment(session, principal, experiment_id, for_update=True)
    before = describe(experiment)
    old_spec = _spec_of(experiment)
    given = {name: getattr(changes, name) for name in changes.model_fields_set}
    if changes.arms is not None:
        # An arm given without arm_id keeps the id of the arm of the same name, so renaming
        # nothing and re-sending the list changes nothing.
        ids = {arm.name: arm.id for arm in experiment.arms}
        given["arms"] = [
            arm if arm.arm_id else arm.model_copy(update={"arm_id": ids.get(arm.arm_name)})
            for arm in changes.arms
        ]
    spec = ExperimentCreate.model_validate({**old_spec.model_dump(), **given})
    old_view, new_view = _comparable(old_spec), _comparable(spec)
    changed = {name for name in given if old_view[name] != new_view[name]}
    if not changed:
        return experiment
    _check_editable(experiment, changed)
    pt = _participant_type(session, principal, spec.participant_type)
    ramp = _check_design(session, principal, pt, spec, own_arm_ids={a.id for a in experiment.arms})
    now = datetime.now(UTC)
    if changed & POWER_FIELDS:
        experiment.power_analyses = _power_analyses(runtime, session, principal, spec)
    _apply_spec(experiment, pt, spec, ramp)
    if "arms" in changed:
        # Positions are unique per experiment: old rows go first, then the new list is written.
        experiment.arms = []
        flush_changes(session, experiment.id)
        experiment.arms = _new_arms(spec)
    if experiment.state == State.ASSIGNED and changed & ASSIGNMENT_FIELDS:
        experiment.state = State.DRAFT.value
        experiment.assign_summary = None
    experiment.updated_at = now
    flush_changes(session, experiment.id)
    invalidate_experiment(runtime, experiment.id)
    after = describe(experiment)
    diff = {name: {"before": before[name], "after": after[name]} for name in sorted(changed)}
    if after["state"] != before["state"]:
        diff["state"] = {"before": before["state"], "after": after["state"]}
    repo.add_audit_entry(
        session,
        experiment_id=experiment.id,
        actor=principal.api_key_id,
        action="update",
        changes=diff,
        at=now,
    )
    session.flush()
    return experiment


def delete_experiment(session: Session, principal: Principal, experiment_id: str) -> None:
    """Delete an experiment that never ran (draft, assigned or abandoned), with its audit log.

    Anything committed is kept for the record: stop it instead (409 otherwise).
    """
    experiment = load_experiment(session, principal, experiment_id, for_update=True)
    deletable = (State.DRAFT, State.ASSIGNED, State.ABANDONED)
    if experiment.state not in deletable:
        raise Conflict(
            f"cannot delete an experiment in state {experiment.state!r}: only draft, assigned "
            "and abandoned experiments can be deleted; stop it to end it",
            field="state",
        )
    session.delete(experiment)
    flush_changes(session, experiment_id)
