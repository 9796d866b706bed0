"""The experiment lifecycle on migrated SQLite and PostgreSQL app databases, with a DuckDB
warehouse: every state × action, assignment, scheduled moves (also raced), allocation ramps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from xngin.errors import Conflict, InvalidInput, NotFound
from xngin.services import experiments, lifecycle
from xngin.services.access import Principal
from xngin.services.experiment_specs import ExperimentCreate, ExperimentUpdate
from xngin.services.runtime import Runtime
from xngin.store import experiments as repo
from xngin.store.models import Assignment, AuditEntry, Experiment
from xngin.timestamps import as_utc

MakeExperiment = Callable[..., str]

ACTIONS = ["assign", "commit", "start", "pause", "resume", "stop", "abandon"]
STATES = [
    "draft",
    "assigned",
    "committed",
    "running",
    "paused",
    "completed",
    "stopped",
    "abandoned",
]

# The specification (issue 5), written out rather than derived from the code under test.
_AFTER_COMMIT = {
    "committed": {"start": "running", "stop": "stopped"},
    "running": {"pause": "paused", "stop": "stopped"},
    "paused": {"resume": "running", "stop": "stopped"},
    "completed": {},
    "stopped": {},
    "abandoned": {},
}
EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    ("preassigned", "draft"): {"assign": "assigned", "abandon": "abandoned"},
    ("preassigned", "assigned"): {
        "assign": "assigned",
        "commit": "committed",
        "abandon": "abandoned",
    },
    ("online", "draft"): {"commit": "committed", "abandon": "abandoned"},
    **{("preassigned", s): moves for s, moves in _AFTER_COMMIT.items()},
    **{("online", s): moves for s, moves in _AFTER_COMMIT.items()},
}
FAR = datetime(2090, 1, 1, tzinfo=UTC)


def _act(runtime: Runtime, principal: Principal, experiment_id: str, action: str) -> str:
    with runtime.sessions.begin() as session:
        return lifecycle.perform_action(
            runtime,
            session,
            principal,
            experiment_id=experiment_id,
            action=action,
            reason="enough data" if action == "stop" else None,
        ).state


def _state(runtime: Runtime, experiment_id: str) -> str:
    with runtime.sessions() as session:
        return session.get_one(Experiment, experiment_id).state


def _audit(runtime: Runtime, experiment_id: str) -> list[AuditEntry]:
    with runtime.sessions() as session:
        return list(repo.list_audit_entries(session, experiment_id=experiment_id))


def test_every_state_and_action_follows_the_transition_table(
    runtime: Runtime, principal: Principal, make_experiment: MakeExperiment
) -> None:
    for (experiment_type, state), moves in EXPECTED.items():
        where = f"{experiment_type} experiment in {state}"
        refused_on = make_experiment(state, type=experiment_type)
        assert _state(runtime, refused_on) == state, where
        with runtime.sessions() as session:
            shown = experiments.describe(session.get_one(Experiment, refused_on))
        assert shown["allowed_actions"] == [a for a in ACTIONS if a in moves], where
        for action in ACTIONS:
            if action in moves:
                experiment_id = make_experiment(state, type=experiment_type)
                assert _act(runtime, principal, experiment_id, action) == moves[action], where
                last = _audit(runtime, experiment_id)[-1]
                assert (last.action, last.actor) == (action, principal.api_key_id), where
                assert last.changes["state"] == {"before": state, "after": moves[action]}
            else:
                with pytest.raises(Conflict) as refused:
                    _act(runtime, principal, refused_on, action)
                assert repr(state) in refused.value.message, (where, action)
                assert refused.value.status == 409
                assert _state(runtime, refused_on) == state, (where, action)


def test_every_state_is_reached_and_audited_in_order(
    runtime: Runtime, principal: Principal, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment("stopped")
    entries = _audit(runtime, experiment_id)
    assert [e.action for e in entries] == ["create", "assign", "commit", "start", "stop"]
    assert all(e.actor == principal.api_key_id for e in entries)
    assert entries[-1].changes["reason"] == "test"
    assert entries[0].changes["name"] == "Reminder SMS"
    assert entries[0].changes["strata"] == ["region"]


def test_stop_without_a_reason_is_refused(
    runtime: Runtime, principal: Principal, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment("running", type="online")
    with runtime.sessions.begin() as session, pytest.raises(InvalidInput) as refused:
        lifecycle.perform_action(
            runtime, session, principal, experiment_id=experiment_id, action="stop", reason=" "
        )
    assert refused.value.field == "reason"


def test_another_organizations_experiment_is_not_found(
    runtime: Runtime, make_experiment: MakeExperiment, other_principal: Principal
) -> None:
    experiment_id = make_experiment("draft")
    with runtime.sessions.begin() as session, pytest.raises(NotFound):
        lifecycle.perform_action(
            runtime, session, other_principal, experiment_id=experiment_id, action="abandon"
        )
    assert _state(runtime, experiment_id) == "draft"


# Assignment -------------------------------------------------------------------------------------


def _stored_assignments(runtime: Runtime, experiment_id: str) -> dict[str, str]:
    with runtime.sessions() as session:
        rows = session.execute(
            sa.select(Assignment.participant_id, Assignment.arm_id).where(
                Assignment.experiment_id == experiment_id
            )
        ).all()
    return {pid: arm for pid, arm in rows}


def test_assign_stores_the_audience_and_its_summary(
    runtime: Runtime, make_experiment: MakeExperiment, people: pd.DataFrame
) -> None:
    experiment_id = make_experiment("assigned")
    audience = people[(people["age"] >= 20) & (people["age"] <= 60)]
    with runtime.sessions() as session:
        experiment = session.get_one(Experiment, experiment_id)
        summary = experiment.assign_summary
        arm_ids = [a.id for a in experiment.arms]
    assert summary is not None
    assert summary["sample_size"] == len(audience)
    assert [a["arm_id"] for a in summary["arm_sizes"]] == arm_ids
    assert sum(a["size"] for a in summary["arm_sizes"]) == len(audience)
    assert summary["balance_check"]["balance_ok"] in (True, False)
    by_region = {c["stratum"]["region"]: sum(c["arm_sizes"]) for c in summary["strata_counts"]}
    assert by_region == audience["region"].value_counts().to_dict()
    stored = _stored_assignments(runtime, experiment_id)
    assert set(stored) == set(audience["participant_id"])
    assert set(stored.values()) == set(arm_ids)
    for arm in summary["arm_sizes"]:
        assert sum(1 for a in stored.values() if a == arm["arm_id"]) == arm["size"]


def test_reassigning_before_commit_replaces_the_assignment(
    runtime: Runtime, principal: Principal, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment("assigned")
    first = _stored_assignments(runtime, experiment_id)
    assert _act(runtime, principal, experiment_id, "assign") == "assigned"
    assert _stored_assignments(runtime, experiment_id) == first  # same seed, same assignment
    with runtime.sessions.begin() as session:
        changed = experiments.update_experiment(
            runtime,
            session,
            principal,
            experiment_id=experiment_id,
            changes=ExperimentUpdate(desired_n=50),
        )
        # The stored assignment no longer fits the design: back to draft, to be assigned again.
        assert (changed.state, changed.assign_summary) == ("draft", None)
    assert _act(runtime, principal, experiment_id, "assign") == "assigned"
    second = _stored_assignments(runtime, experiment_id)
    assert len(second) == 50
    assert set(second) <= set(first)
    update = [e for e in _audit(runtime, experiment_id) if e.action == "update"][0]
    assert update.changes["state"] == {"before": "assigned", "after": "draft"}
    assert update.changes["desired_n"] == {"before": None, "after": 50}


# Scheduled moves --------------------------------------------------------------------------------


def _schedule(
    runtime: Runtime, principal: Principal, experiment_id: str, **times: datetime | None
) -> None:
    with runtime.sessions.begin() as session:
        experiments.update_experiment(
            runtime,
            session,
            principal,
            experiment_id=experiment_id,
            changes=ExperimentUpdate(**times),
        )


def _advance(runtime: Runtime, now: datetime) -> list[lifecycle.ScheduledMove]:
    with runtime.sessions.begin() as session:
        return lifecycle.advance_schedules(session, now)


def test_scheduled_start_and_end_move_the_state_once(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment(
        "committed",
        type="online",
        start_at=FAR.isoformat(),
        end_at=(FAR + timedelta(days=30)).isoformat(),
    )
    assert _advance(runtime, FAR - timedelta(seconds=1)) == []
    assert _state(runtime, experiment_id) == "committed"

    moves = _advance(runtime, FAR)
    assert [(m.experiment_id, m.before, m.after) for m in moves] == [
        (experiment_id, "committed", "running")
    ]
    assert _advance(runtime, FAR) == []  # run again: nothing left to do, no second entry
    assert _state(runtime, experiment_id) == "running"

    end = FAR + timedelta(days=30)
    assert _advance(runtime, end - timedelta(microseconds=1)) == []
    assert [m.after for m in _advance(runtime, end + timedelta(hours=1))] == ["completed"]
    assert _advance(runtime, end + timedelta(hours=2)) == []
    scheduled = [e for e in _audit(runtime, experiment_id) if e.actor == "scheduler"]
    assert [(e.action, e.changes["state"]["after"]) for e in scheduled] == [
        ("start", "running"),
        ("complete", "completed"),
    ]
    assert as_utc(scheduled[0].at) == FAR


def test_a_passed_window_goes_from_committed_to_completed_in_one_pass(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment(
        "committed",
        type="online",
        start_at=FAR.isoformat(),
        end_at=(FAR + timedelta(days=1)).isoformat(),
    )
    moves = _advance(runtime, FAR + timedelta(days=2))
    assert [(m.before, m.after) for m in moves] == [
        ("committed", "running"),
        ("running", "completed"),
    ]
    assert _state(runtime, experiment_id) == "completed"


def test_a_paused_experiment_completes_at_its_end(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment("paused", type="online", end_at=FAR.isoformat())
    assert [(m.before, m.after) for m in _advance(runtime, FAR)] == [("paused", "completed")]
    assert _state(runtime, experiment_id) == "completed"


def test_the_scheduler_leaves_other_states_alone(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    # A draft or stopped experiment is not started or completed by the clock, whatever its times.
    draft = make_experiment("draft", type="online", start_at=FAR.isoformat())
    stopped = make_experiment("stopped", type="online", end_at=FAR.isoformat())
    committed = make_experiment("committed", type="online", end_at=FAR.isoformat())
    assert _advance(runtime, FAR + timedelta(days=1)) == []
    assert [_state(runtime, e) for e in (draft, stopped, committed)] == [
        "draft",
        "stopped",
        "committed",
    ]


def test_replicas_racing_on_the_schedule_make_each_move_once(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    ids = [
        make_experiment("committed", type="online", name=f"e{i}", start_at=FAR.isoformat())
        for i in range(4)
    ]
    replicas = 3
    barrier = threading.Barrier(replicas)
    results: list[list[lifecycle.ScheduledMove]] = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            with runtime.sessions() as session:
                barrier.wait(timeout=10)
                moves = lifecycle.advance_schedules(session, FAR)
                session.commit()
            results.append(moves)
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    made = sorted(m.experiment_id for moves in results for m in moves)
    assert made == sorted(ids)
    for experiment_id in ids:
        assert _state(runtime, experiment_id) == "running"
        starts = [e for e in _audit(runtime, experiment_id) if e.action == "start"]
        assert len(starts) == 1


def test_the_background_scheduler_starts_due_experiments(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment(
        "committed", type="online", start_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    )
    stop = lifecycle.start_scheduler(runtime, interval_seconds=0.05)
    try:
        deadline = time.monotonic() + 10
        while _state(runtime, experiment_id) != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop()
    assert _state(runtime, experiment_id) == "running"
    assert [e.actor for e in _audit(runtime, experiment_id)][-1] == "scheduler"


def test_a_request_holding_an_old_version_gets_a_conflict(
    runtime: Runtime, make_experiment: MakeExperiment
) -> None:
    experiment_id = make_experiment("committed", type="online", start_at=FAR.isoformat())
    with runtime.sessions() as slow:
        experiment = slow.get_one(Experiment, experiment_id)
        _advance(runtime, FAR)  # another process starts it meanwhile
        experiment.description = "edited from a stale copy"
        with pytest.raises(Conflict) as refused:
            lifecycle.flush_changes(slow, experiment_id)
        slow.rollback()
    assert refused.value.field == "version"
    assert _state(runtime, experiment_id) == "running"


# Traffic allocation -----------------------------------------------------------------------------


def _allocation_of(traffic: float, ramp: list[dict[str, Any]]) -> Any:
    return SimpleNamespace(traffic_allocation=traffic, ramp_schedule=ramp)


def test_allocation_without_a_ramp_is_the_traffic_allocation() -> None:
    assert lifecycle.current_allocation(_allocation_of(35.0, []), FAR) == 35.0


def test_allocation_follows_the_ramp_steps() -> None:
    t0 = FAR
    ramp = [
        {"at": t0.isoformat(), "allocation": 5.0},
        {"at": (t0 + timedelta(days=1)).isoformat(), "allocation": 20.0},
        {"at": (t0 + timedelta(days=3)).isoformat(), "allocation": 80.0},
    ]
    experiment = _allocation_of(80.0, ramp)
    at = lifecycle.current_allocation
    assert at(experiment, t0 - timedelta(days=1)) == 5.0  # before the ramp: its first step
    assert at(experiment, t0) == 5.0
    assert at(experiment, t0 + timedelta(hours=23)) == 5.0
    assert at(experiment, t0 + timedelta(days=1)) == 20.0
    assert at(experiment, t0 + timedelta(days=2, hours=23)) == 20.0
    assert at(experiment, t0 + timedelta(days=3)) == 80.0
    assert at(experiment, t0 + timedelta(days=300)) == 80.0
    # Naive times are UTC, so the same instant written without an offset gives the same answer.
    assert at(experiment, (t0 + timedelta(days=1)).replace(tzinfo=None)) == 20.0


def test_saved_ramp_is_what_allocation_reads(
    runtime: Runtime, principal: Principal, make_design: Callable[..., dict[str, Any]]
) -> None:
    body = make_design(
        type="online",
        traffic_allocation=50,
        ramp_schedule=[
            {"at": "2090-01-01T00:00:00+02:00", "allocation": 10},
            {"at": "2090-01-02T00:00:00Z", "allocation": 50},
        ],
    )
    with runtime.sessions.begin() as session:
        experiment = experiments.create_experiment(
            runtime, session, principal, ExperimentCreate.model_validate(body)
        )
        assert experiment.ramp_schedule[0]["at"] == "2089-12-31T22:00:00+00:00"
        assert lifecycle.current_allocation(experiment, datetime(2090, 1, 1, 12, tzinfo=UTC)) == 10
        assert lifecycle.current_allocation(experiment, datetime(2090, 1, 2, tzinfo=UTC)) == 50


BAD_RAMPS: list[tuple[dict[str, Any], str]] = [
    (
        {"ramp_schedule": [{"at": "2090-01-01T00:00:00Z", "allocation": 10}]},
        "ramp_schedule",
    ),  # preassigned
    (
        {
            "type": "online",
            "ramp_schedule": [
                {"at": "2090-01-01T00:00:00Z", "allocation": 30},
                {"at": "2090-01-02T00:00:00Z", "allocation": 20},
            ],
        },
        "ramp_schedule[1].allocation",
    ),
    (
        {
            "type": "online",
            "ramp_schedule": [
                {"at": "2090-01-02T00:00:00Z", "allocation": 10},
                {"at": "2090-01-01T00:00:00Z", "allocation": 20},
            ],
        },
        "ramp_schedule[1].at",
    ),
    (
        {
            "type": "online",
            "traffic_allocation": 40,
            "ramp_schedule": [{"at": "2090-01-01T00:00:00Z", "allocation": 60}],
        },
        "ramp_schedule[0].allocation",
    ),
]


def test_a_bad_ramp_is_refused_naming_the_step(
    runtime: Runtime, principal: Principal, make_design: Callable[..., dict[str, Any]]
) -> None:
    for overrides, field in BAD_RAMPS:
        spec = ExperimentCreate.model_validate(make_design(**overrides))
        with runtime.sessions.begin() as session, pytest.raises(InvalidInput) as refused:
            experiments.create_experiment(runtime, session, principal, spec)
        assert refused.value.field == field, overrides
