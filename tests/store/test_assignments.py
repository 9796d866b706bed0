"""The stored-assignments repository on SQLite and PostgreSQL (COPY and executemany paths)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from xngin.store import assignments as repo
from xngin.store.db import create_app_engine, upgrade
from xngin.store.models import (
    Arm,
    Assignment,
    Datasource,
    Experiment,
    Organization,
    ParticipantType,
)

WHEN = datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=UTC)

# IDs and strata that COPY's text format, CSV and JSON each treat specially.
AWKWARD_IDS = [
    "plain",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "comma,separated",
    'quote"d',
    "ünïcödé-👩‍🔬",
    "  spaced  ",
    "x" * 200,
]


@pytest.fixture
def sessions(app_database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(app_database_url)
    engine = create_app_engine(app_database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def make_experiment(sessions: sessionmaker[Session], n_arms: int = 3) -> tuple[str, list[str]]:
    with sessions.begin() as session:
        org = Organization(name=f"org-{uuid.uuid4().hex}")
        session.add(org)
        session.flush()
        ds = Datasource(organization_id=org.id, name="wh", url="unused")
        session.add(ds)
        session.flush()
        pt = ParticipantType(
            organization_id=org.id,
            datasource_id=ds.id,
            name="people",
            table_name="people",
            unique_id_field="id",
        )
        session.add(pt)
        session.flush()
        exp = Experiment(
            organization_id=org.id,
            participant_type_id=pt.id,
            name="e",
            type="preassigned",
            state="assigned",
            seed=1,
            arms=[Arm(position=i, name=f"arm {i}", config={"i": i}) for i in range(n_arms)],
        )
        session.add(exp)
        session.flush()
        return exp.id, [a.id for a in exp.arms]


def rows_of(sessions: sessionmaker[Session], experiment_id: str) -> dict[str, tuple[Any, ...]]:
    with sessions() as session:
        found = session.scalars(
            sa.select(Assignment).where(Assignment.experiment_id == experiment_id)
        ).all()
        return {
            a.participant_id: (a.arm_id, a.assigned_at.replace(tzinfo=UTC), a.strata) for a in found
        }


def test_replace_assignments_round_trips_awkward_ids_and_strata(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions)
    strata: list[str | None] = [
        json.dumps({"note": f"a\\b\tc\nd {i}", "n": i}) if i % 3 else None
        for i in range(len(AWKWARD_IDS))
    ]
    arm_ids = [arms[i % 3] for i in range(len(AWKWARD_IDS))]
    with sessions.begin() as session:
        written = repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=AWKWARD_IDS,
            arm_ids=arm_ids,
            strata_json=strata,
            assigned_at=WHEN,
        )
    assert written == len(AWKWARD_IDS)
    stored = rows_of(sessions, exp)
    assert stored == {
        pid: (arm, WHEN, s) for pid, arm, s in zip(AWKWARD_IDS, arm_ids, strata, strict=True)
    }


def test_replace_assignments_without_strata_stores_null(sessions: sessionmaker[Session]) -> None:
    exp, arms = make_experiment(sessions)
    with sessions.begin() as session:
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=["a", "b"],
            arm_ids=[arms[0], arms[1]],
            strata_json=None,
            assigned_at=WHEN,
        )
    assert rows_of(sessions, exp) == {"a": (arms[0], WHEN, None), "b": (arms[1], WHEN, None)}


def test_replace_assignments_replaces_only_that_experiments_rows(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions)
    other, other_arms = make_experiment(sessions)
    later = WHEN + timedelta(hours=1)
    with sessions.begin() as session:
        for experiment, arm in ((exp, arms[0]), (other, other_arms[0])):
            repo.replace_assignments(
                session,
                experiment_id=experiment,
                participant_ids=["p1", "p2", "p3"],
                arm_ids=[arm] * 3,
                strata_json=None,
                assigned_at=WHEN,
            )
    with sessions.begin() as session:
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=["p3", "p4"],
            arm_ids=[arms[2], arms[1]],
            strata_json=None,
            assigned_at=later,
        )
    assert rows_of(sessions, exp) == {"p3": (arms[2], later, None), "p4": (arms[1], later, None)}
    assert set(rows_of(sessions, other)) == {"p1", "p2", "p3"}


def test_replace_assignments_is_undone_with_the_callers_transaction(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions)
    with sessions.begin() as session:
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=["kept"],
            arm_ids=[arms[0]],
            strata_json=None,
            assigned_at=WHEN,
        )
    with sessions() as session:
        session.begin()
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=[f"new{i}" for i in range(1000)],
            arm_ids=[arms[1]] * 1000,
            strata_json=None,
            assigned_at=WHEN,
        )
        session.rollback()
    assert rows_of(sessions, exp) == {"kept": (arms[0], WHEN, None)}


def test_replace_assignments_refuses_duplicate_participants(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions)
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=["same", "same"],
            arm_ids=[arms[0], arms[1]],
            strata_json=None,
            assigned_at=WHEN,
        )
    assert rows_of(sessions, exp) == {}


def test_replace_assignments_refuses_lengths_that_differ(sessions: sessionmaker[Session]) -> None:
    exp, arms = make_experiment(sessions)
    with sessions() as session, pytest.raises(ValueError, match="same length"):
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=["a", "b"],
            arm_ids=[arms[0]],
            strata_json=None,
            assigned_at=WHEN,
        )


@dataclass(frozen=True)
class Outcome:
    participant_ids: list[str]
    arm_index: Any
    stratum_code: Any
    stratum_labels: list[dict[str, Any]]


def test_replace_assignments_from_outcome_maps_positions_and_strata(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions)
    labels = [{"region": "north", "age": "[18, 30)"}, {"region": "south", "age": None}]
    outcome = Outcome(
        participant_ids=["a", "b", "c", "d"],
        arm_index=np.array([2, 0, 1, 2]),
        stratum_code=np.array([1, 0, 0, 1]),
        stratum_labels=labels,
    )
    with sessions.begin() as session:
        arm_rows = session.scalars(
            sa.select(Arm).where(Arm.experiment_id == exp).order_by(Arm.position)
        ).all()
        repo.replace_assignments_from_outcome(
            session, experiment_id=exp, arms=arm_rows, outcome=outcome, assigned_at=WHEN
        )
    stored = rows_of(sessions, exp)
    assert {p: r[0] for p, r in stored.items()} == {
        "a": arms[2],
        "b": arms[0],
        "c": arms[1],
        "d": arms[2],
    }
    assert {p: json.loads(r[2]) for p, r in stored.items()} == {
        "a": labels[1],
        "b": labels[0],
        "c": labels[0],
        "d": labels[1],
    }


def test_replace_assignments_from_outcome_without_strata_stores_null(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions, n_arms=2)
    outcome = Outcome(["a", "b"], np.array([1, 0]), np.array([0, 0]), [{}])
    with sessions.begin() as session:
        arm_rows = session.scalars(
            sa.select(Arm).where(Arm.experiment_id == exp).order_by(Arm.position)
        ).all()
        repo.replace_assignments_from_outcome(
            session, experiment_id=exp, arms=arm_rows, outcome=outcome
        )
    stored = rows_of(sessions, exp)
    assert {p: (r[0], r[2]) for p, r in stored.items()} == {
        "a": (arms[1], None),
        "b": (arms[0], None),
    }


def test_replace_assignments_from_outcome_refuses_an_arm_index_beyond_the_arms(
    sessions: sessionmaker[Session],
) -> None:
    exp, _ = make_experiment(sessions, n_arms=2)
    outcome = Outcome(["a"], np.array([2]), np.array([0]), [{}])
    with sessions() as session, pytest.raises(ValueError, match=r"\[0, 2\)"):
        arm_rows = session.scalars(sa.select(Arm).where(Arm.experiment_id == exp)).all()
        repo.replace_assignments_from_outcome(
            session, experiment_id=exp, arms=arm_rows, outcome=outcome
        )


def store_many(sessions: sessionmaker[Session], exp: str, arm: str, n: int) -> list[str]:
    ids = [f"p{i:03d}" for i in range(n)]
    with sessions.begin() as session:
        repo.replace_assignments(
            session,
            experiment_id=exp,
            participant_ids=ids[::-1],
            arm_ids=[arm] * n,
            strata_json=['{"s": 1}'] * n,
            assigned_at=WHEN,
        )
    return ids


def test_list_assignments_pages_by_participant_id(sessions: sessionmaker[Session]) -> None:
    exp, arms = make_experiment(sessions)
    ids = store_many(sessions, exp, arms[0], 25)
    seen: list[str] = []
    after = None
    with sessions() as session:
        while True:
            page = repo.list_assignments(session, experiment_id=exp, after=after, limit=10)
            seen += [r.participant_id for r in page]
            if len(page) < 10:
                break
            after = page[-1].participant_id
        first = repo.list_assignments(session, experiment_id=exp, after=None, limit=1)[0]
    assert seen == ids
    assert first == repo.AssignmentRow("p000", arms[0], WHEN, '{"s": 1}')


def test_iter_assignment_chunks_streams_every_row_in_order(
    sessions: sessionmaker[Session],
) -> None:
    exp, arms = make_experiment(sessions)
    ids = store_many(sessions, exp, arms[1], 50)
    with sessions.kw["bind"].connect() as conn:
        chunks = list(repo.iter_assignment_chunks(conn, experiment_id=exp, chunk_size=7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    assert [row[0] for chunk in chunks for row in chunk] == ids
    assert {row[1] for chunk in chunks for row in chunk} == {arms[1]}


def test_insert_assignment_if_absent_keeps_the_first_arm(sessions: sessionmaker[Session]) -> None:
    exp, arms = make_experiment(sessions)
    with sessions.begin() as session:
        first = repo.insert_assignment_if_absent(
            session, experiment_id=exp, participant_id="p", arm_id=arms[0], assigned_at=WHEN
        )
    with sessions.begin() as session:
        second = repo.insert_assignment_if_absent(
            session,
            experiment_id=exp,
            participant_id="p",
            arm_id=arms[1],
            assigned_at=WHEN + timedelta(days=1),
        )
    assert first == second == (arms[0], WHEN)
    assert rows_of(sessions, exp) == {"p": (arms[0], WHEN, None)}


def test_get_assignment_and_read_serving_rows(sessions: sessionmaker[Session]) -> None:
    exp, arms = make_experiment(sessions)
    store_many(sessions, exp, arms[2], 3)
    with sessions() as session:
        assert repo.get_assignment(session, experiment_id=exp, participant_id="p001") == (
            arms[2],
            WHEN,
        )
        assert repo.get_assignment(session, experiment_id=exp, participant_id="nobody") is None
        rows = repo.read_serving_rows(session, exp)
        assert repo.read_serving_rows(session, "no-such-experiment") is None
    assert rows is not None
    assert rows.experiment["id"] == exp
    assert rows.experiment["state"] == "assigned"
    assert [(a["id"], a["name"], a["config"]) for a in rows.arms] == [
        (arms[i], f"arm {i}", {"i": i}) for i in range(3)
    ]
