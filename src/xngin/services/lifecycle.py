"""An experiment's life: states, the actions that move it, schedules, and traffic allocation.

=========  ======================================  ==========================
action     allowed from                            leads to
=========  ======================================  ==========================
assign     draft, assigned (preassigned only)      assigned
commit     assigned; draft for online experiments  committed
start      committed (or the clock at start_at)    running
pause      running                                 paused
resume     paused                                  running
stop       committed, running, paused (+ reason)   stopped
abandon    draft, assigned                         abandoned
(clock)    running, paused at end_at               completed
=========  ======================================  ==========================

A preassigned experiment draws its audience from the warehouse and assigns it up front, so it
must be ``assigned`` before ``commit``; an online experiment assigns participants when they are
first seen, so it commits straight from ``draft``. After commit the design is frozen.

Scheduled moves (``committed → running`` at ``start_at``, ``running/paused → completed`` at
``end_at``) are made by :func:`advance_schedules`, which every API replica may run: each move is
one conditional UPDATE on the expected state, so exactly one replica wins and writes the audit
entry.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from xngin.errors import Conflict, InvalidInput, NotFound, Unavailable
from xngin.services.access import Principal
from xngin.services.assign import RerandomizeIn, assign_audience
from xngin.services.design import ArmIn, FilterIn
from xngin.services.runtime import Runtime
from xngin.services.serving import invalidate_experiment
from xngin.store import experiments as repo
from xngin.store.assignments import replace_assignments_from_outcome
from xngin.store.models import Experiment
from xngin.timestamps import as_utc

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "scheduler"


class State(StrEnum):
    DRAFT = "draft"
    ASSIGNED = "assigned"
    COMMITTED = "committed"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    ABANDONED = "abandoned"


class Action(StrEnum):
    ASSIGN = "assign"
    COMMIT = "commit"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    ABANDON = "abandon"


#: action -> (states it is allowed from, state it leads to). Type-specific rules are in
#: :func:`next_state`.
TRANSITIONS: dict[Action, tuple[frozenset[State], State]] = {
    Action.ASSIGN: (frozenset({State.DRAFT, State.ASSIGNED}), State.ASSIGNED),
    Action.COMMIT: (frozenset({State.DRAFT, State.ASSIGNED}), State.COMMITTED),
    Action.START: (frozenset({State.COMMITTED}), State.RUNNING),
    Action.PAUSE: (frozenset({State.RUNNING}), State.PAUSED),
    Action.RESUME: (frozenset({State.PAUSED}), State.RUNNING),
    # Committed can be stopped too: otherwise an experiment committed by mistake has no way out.
    Action.STOP: (frozenset({State.COMMITTED, State.RUNNING, State.PAUSED}), State.STOPPED),
    Action.ABANDON: (frozenset({State.DRAFT, State.ASSIGNED}), State.ABANDONED),
}

#: States in which every field may still change; after them the design is frozen.
OPEN_STATES = frozenset({State.DRAFT, State.ASSIGNED})
#: States in which the experiment is over.
FINAL_STATES = frozenset({State.COMPLETED, State.STOPPED, State.ABANDONED})


def _refuse(action: Action, state: str, why: str) -> Conflict:
    return Conflict(f"cannot {action.value} an experiment in state {state!r}: {why}", field="state")


def next_state(*, experiment_type: str, state: str, action: str) -> State:
    """The state ``action`` leads to from ``state``, or a 409 naming the current state.

    Parameters
    ----------
    experiment_type : {"preassigned", "online"}
        Preassigned experiments need ``assigned`` before ``commit``; online ones cannot be assigned
        up front and commit from ``draft``.
    state : str
        The experiment's current state.
    action : str
        One of :class:`Action`.

    Returns
    -------
    State
        The state after the action.

    Raises
    ------
    xngin.errors.Conflict
        When the action is not allowed in ``state`` for this type; the message names the current
        state and where the action is allowed from.
    """
    act = Action(action)
    allowed_from, target = TRANSITIONS[act]
    if state not in allowed_from:
        names = ", ".join(sorted(s.value for s in allowed_from))
        raise _refuse(act, state, f"{act.value} is allowed from {names}")
    if act is Action.ASSIGN and experiment_type == "online":
        raise _refuse(act, state, "online experiments assign participants when first seen")
    if act is Action.COMMIT and experiment_type == "preassigned" and state == State.DRAFT:
        raise _refuse(act, state, "a preassigned experiment must be assigned before commit")
    return target


def allowed_actions(*, experiment_type: str, state: str) -> list[str]:
    """The actions :func:`next_state` accepts now, in lifecycle order."""
    out = []
    for act in Action:
        try:
            next_state(experiment_type=experiment_type, state=state, action=act)
        except Conflict:
            continue
        out.append(act.value)
    return out


# Shared helpers ---------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf as null, datetimes as ISO text.

    Both JSON column types refuse NaN (PostgreSQL's ``json`` rejects it outright).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def load_experiment(
    session: Session, principal: Principal, experiment_id: str, *, for_update: bool = False
) -> Experiment:
    """The caller's experiment, or 404 (another organization's experiment is not found either)."""
    found = repo.get_experiment(
        session,
        organization_id=principal.organization_id,
        experiment_id=experiment_id,
        for_update=for_update,
    )
    if found is None:
        raise NotFound(f"experiment {experiment_id!r} does not exist", field="experiment_id")
    return found


def flush_changes(session: Session, experiment_id: str) -> None:
    """Write pending changes now, turning a lost optimistic-concurrency race into a 409."""
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            f"experiment {experiment_id!r} was changed by another request meanwhile; reload it "
            "and try again",
            field="version",
        ) from exc


# Actions ----------------------------------------------------------------------------------------


def _assignment_summary(experiment: Experiment, outcome: Any, now: datetime) -> dict[str, Any]:
    summary: dict[str, Any] = json_safe(
        {
            "sample_size": outcome.sample_size,
            "arm_sizes": [
                {"arm_id": arm.id, "arm_name": arm.name, "size": size}
                for arm, size in zip(experiment.arms, outcome.arm_sizes, strict=True)
            ],
            "balance_check": outcome.balance_check,
            "strata_counts": outcome.strata_counts,
            "assigned_at": now,
        }
    )
    return summary


def _assign(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    experiment: Experiment,
    now: datetime,
    rerandomize: RerandomizeIn | None,
) -> dict[str, Any]:
    """Draw and assign the audience, replace the stored assignment, return the summary."""
    design = experiment.design
    outcome = assign_audience(
        runtime,
        session,
        principal,
        participant_type=experiment.participant_type.name,
        filters=[FilterIn.model_validate(f) for f in design.get("filters", [])],
        arms=[
            ArmIn(
                arm_id=arm.id,
                arm_name=arm.name,
                arm_description=arm.description,
                weight=arm.weight,
                config=arm.config,
            )
            for arm in experiment.arms
        ],
        strata=list(design.get("strata", [])),
        desired_n=design.get("desired_n"),
        seed=experiment.seed,
        rerandomize=rerandomize,
    )
    replace_assignments_from_outcome(
        session, experiment_id=experiment.id, arms=experiment.arms, outcome=outcome, assigned_at=now
    )
    return _assignment_summary(experiment, outcome, now)


def perform_action(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    experiment_id: str,
    action: str,
    reason: str | None = None,
    now: datetime | None = None,
    rerandomize: RerandomizeIn | None = None,
) -> Experiment:
    """Move an experiment through its lifecycle and record the move in the audit log.

    Parameters
    ----------
    runtime, session, principal
        The process runtime, the request's transaction (not committed here) and the caller.
    experiment_id : str
        The caller's experiment.
    action : str
        One of :class:`Action`. ``assign`` draws the audience from the warehouse, stores the
        assignment (replacing an earlier one) and keeps its summary on the experiment.
    reason : str, optional
        Why the experiment is stopped; required for ``stop``.
    rerandomize : RerandomizeIn, optional
        For ``assign``: redraw until the balance check passes (the seed and the number of tries,
        kept in the summary, reproduce the accepted draw).
    now : datetime, optional
        The time to record (default: the clock).

    Returns
    -------
    Experiment
        The experiment in its new state.

    Raises
    ------
    xngin.errors.NotFound
        The experiment is not the caller's organization's.
    xngin.errors.Conflict
        The action is not allowed in the current state (the message names it).
    xngin.errors.InvalidInput
        ``stop`` without a reason, or ``assign`` with a design the warehouse cannot serve.
    """
    now = as_utc(now or datetime.now(UTC))
    experiment = load_experiment(session, principal, experiment_id, for_update=True)
    before = experiment.state
    target = next_state(experiment_type=experiment.type, state=before, action=action)
    changes: dict[str, Any] = {"state": {"before": before, "after": target.value}}
    if action == Action.STOP:
        if not reason or not reason.strip():
            raise InvalidInput("stopping an experiment needs a non-empty reason", field="reason")
        experiment.stop_reason = reason.strip()
        changes["reason"] = experiment.stop_reason
    if action == Action.ASSIGN:
        summary = _assign(runtime, session, principal, experiment, now, rerandomize)
        experiment.assign_summary = summary
        changes["assignment"] = {
            "sample_size": summary["sample_size"],
            "arm_sizes": [a["size"] for a in summary["arm_sizes"]],
            "balance_ok": summary["balance_check"].get("balance_ok"),
            "tries": summary["balance_check"].get("tries"),
        }
        if rerandomize is not None:
            changes["rerandomize"] = rerandomize.model_dump()
    experiment.state = target.value
    experiment.updated_at = now
    flush_changes(session, experiment.id)
    repo.add_audit_entry(
        session,
        experiment_id=experiment.id,
        actor=principal.api_key_id,
        action=str(action),
        changes=changes,
        at=now,
    )
    session.flush()
    invalidate_experiment(runtime, experiment.id)
    if target.value in (State.COMMITTED, State.RUNNING) and experiment.type == "preassigned":
        _mirror_to_event_store(runtime, session, experiment.id)
        _warm_serving_cache_after_commit(runtime, session, experiment.id)
    return experiment


def _warm_serving_cache_after_commit(
    runtime: Runtime, session: Session, experiment_id: str
) -> None:
    """Once the transaction commits, copy the assignment into a shared (Redis) cache in the
    background, so that first lookups of a large preassigned audience are cache hits. An
    in-process cache fills on demand instead (it is per worker and bounded)."""
    if runtime.cache.kind != "redis":
        return

    def warm() -> None:
        from xngin.services.serving import warm_cache

        try:
            warmed = warm_cache(runtime, experiment_id)
            log.info("experiment %s: %d assignments copied into the cache", experiment_id, warmed)
        except Exception:  # best effort: lookups fall back to the app database
            log.exception("experiment %s: warming the serving cache failed", experiment_id)

    def start(_session: Session) -> None:
        threading.Thread(target=warm, name=f"xngin-warm-{experiment_id}", daemon=True).start()

    sa.event.listen(session, "after_commit", start, once=True)


def _mirror_to_event_store(runtime: Runtime, session: Session, experiment_id: str) -> None:
    """Copy the fixed assignment into the event store, where analysis joins events to arms.

    Best effort: an unreachable event store must not block a commit or start; the analysis
    re-mirrors when it finds the copy stale.
    """
    from xngin.services.events import mirror_assignments

    try:
        mirror_assignments(runtime, experiment_id, connection=session.connection())
    except Unavailable as exc:
        log.warning("experiment %s: assignments not mirrored yet: %s", experiment_id, exc.message)


# Schedules --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledMove:
    """A state change made by :func:`advance_schedules` (and only by the replica that won it)."""

    experiment_id: str
    organization_id: str
    action: str  # "start" or "complete"
    before: str
    after: str
    due_at: datetime


def _move(session: Session, move: ScheduledMove, now: datetime) -> bool:
    won = repo.move_state(
        session,
        experiment_id=move.experiment_id,
        expected_state=move.before,
        new_state=move.after,
        now=now,
    )
    if won:
        repo.add_audit_entry(
            session,
            experiment_id=move.experiment_id,
            actor=SCHEDULER_ACTOR,
            action=move.action,
            changes={
                "state": {"before": move.before, "after": move.after},
                "scheduled_at": move.due_at.isoformat(),
            },
            at=now,
        )
    return won


def advance_schedules(session: Session, now: datetime) -> list[ScheduledMove]:
    """Start committed experiments whose ``start_at`` has come; complete those past ``end_at``.

    Safe to run from several processes at once: each move is a conditional UPDATE on the state
    it expects, so only one caller's update matches and only that caller writes the audit entry
    (actor ``"scheduler"``). Starts are made before ends, so an experiment whose whole window
    has passed goes ``committed → running → completed`` in one call. The caller commits.

    Parameters
    ----------
    session : Session
        A session on the app database; its transaction is left open for the caller.
    now : datetime
        The current time (naive values are taken as UTC).

    Returns
    -------
    list of ScheduledMove
        The moves this call made, in the order made.
    """
    now = as_utc(now)
    made: list[ScheduledMove] = []
    for experiment_id, organization_id, start_at in repo.due_starts(session, now=now):
        move = ScheduledMove(
            experiment_id=experiment_id,
            organization_id=organization_id,
            action="start",
            before=State.COMMITTED.value,
            after=State.RUNNING.value,
            due_at=as_utc(start_at),
        )
        if _move(session, move, now):
            made.append(move)
    for experiment_id, organization_id, state, end_at in repo.due_ends(session, now=now):
        move = ScheduledMove(
            experiment_id=experiment_id,
            organization_id=organization_id,
            action="complete",
            before=state,
            after=State.COMPLETED.value,
            due_at=as_utc(end_at),
        )
        if _move(session, move, now):
            made.append(move)
    session.flush()
    return made


def start_scheduler(runtime: Runtime, *, interval_seconds: float = 5.0) -> Callable[[], None]:
    """Run :func:`advance_schedules` every ``interval_seconds`` in a daemon thread.

    Returns the function that stops the thread (and waits for a pass in progress to end), to be
    called before the runtime is closed. A failing pass (database down) is logged and retried at
    the next tick; it never ends the thread.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_seconds):
            try:
                with runtime.sessions.begin() as session:
                    moves = advance_schedules(session, datetime.now(UTC))
                for m in moves:
                    invalidate_experiment(runtime, m.experiment_id)
                    log.info(
                        "experiment %s: %s -> %s (scheduled)", m.experiment_id, m.before, m.after
                    )
            except Exception:
                log.exception("scheduled experiment moves failed; retrying at the next tick")

    thread = threading.Thread(target=loop, name="xngin-scheduler", daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        thread.join(timeout=30)

    return stopper


# Traffic allocation -----------------------------------------------------------------------------


class HasAllocation(Protocol):
    traffic_allocation: float
    ramp_schedule: list[Any]


def current_allocation(experiment: HasAllocation, now: datetime) -> float:
    """The percentage (0-100) of eligible participants an online experiment includes at ``now``.

    Without a ramp-up schedule it is ``traffic_allocation``. With one (steps ``{"at",
    "allocation"}``, validated non-decreasing and at most ``traffic_allocation``), it is the
    allocation of the last step whose ``at`` has come, and the first step's allocation before
    that (a ramp starts at its smallest share rather than jumping to the full one). Whether the
    experiment is running at all is the caller's question.

    Parameters
    ----------
    experiment : object with ``traffic_allocation`` and ``ramp_schedule``
        An :class:`~xngin.store.models.Experiment` or anything shaped like one.
    now : datetime
        The time of the lookup (naive values are taken as UTC).

    Returns
    -------
    float
        Percentage of eligible participants to include, in [0, 100].
    """
    from xngin.services.serving_policy import ramp_allocation

    steps = [
        (
            as_utc(datetime.fromisoformat(s["at"]) if isinstance(s["at"], str) else s["at"]),
            float(s["allocation"]),
        )
        for s in experiment.ramp_schedule or []
    ]
    return ramp_allocation(
        steps, traffic_allocation=float(experiment.traffic_allocation), now=as_utc(now)
    )


def ramp_steps(steps: Sequence[Any], *, traffic_allocation: float) -> list[dict[str, Any]]:
    """Check a ramp-up schedule and return it as stored (UTC ISO times).

    Raises
    ------
    xngin.errors.InvalidInput
        Naming ``ramp_schedule[i].at`` when times do not increase, or
        ``ramp_schedule[i].allocation`` when an allocation decreases or exceeds
        ``traffic_allocation``.
    """
    out: list[dict[str, Any]] = []
    previous: tuple[datetime, float] | None = None
    for i, step in enumerate(steps):
        at, allocation = as_utc(step.at), float(step.allocation)
        if previous is not None and at <= previous[0]:
            raise InvalidInput(
                f"ramp step times must increase; {at.isoformat()} is not after "
                f"{previous[0].isoformat()}",
                field=f"ramp_schedule[{i}].at",
            )
        if previous is not None and allocation < previous[1]:
            raise InvalidInput(
                f"ramp allocations must not decrease; {allocation} follows {previous[1]}",
                field=f"ramp_schedule[{i}].allocation",
            )
        if allocation > traffic_allocation:
            raise InvalidInput(
                f"ramp allocation {allocation} exceeds traffic_allocation {traffic_allocation}; "
                "a ramp climbs at most to the experiment's traffic allocation",
                field=f"ramp_schedule[{i}].allocation",
            )
        previous = (at, allocation)
        out.append({"at": at.isoformat(), "allocation": allocation})
    return out
