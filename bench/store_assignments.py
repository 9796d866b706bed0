"""Benchmark: store 1,000,000 assignments in PostgreSQL, ``replace_assignments`` against bare COPY.

Both sides write the same rows into the real ``assignments`` table of a freshly migrated database
of their own (primary key and foreign key included), each time into an emptied table:

* ours: ``replace_assignments(session, ...)`` from Python lists, committed;
* baseline: ``COPY assignments FROM STDIN`` of the same rows, their COPY text already built in
  memory before the clock starts, committed — the floor any writer through psycopg can reach.

Best of three alternating runs each. Target: ours takes at most twice the bare COPY.
Run: ``.venv/bin/python bench/store_assignments.py``; the last line is the JSON summary.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.store.assignments import replace_assignments
from xngin.store.db import create_app_engine, upgrade
from xngin.store.models import Arm, Datasource, Experiment, Organization, ParticipantType
from xngin.testing.servers import temporary_postgres_database

N = 1_000_000
REPEATS = 3
TARGET = 2.0
CHUNK = 4 << 20  # bytes per COPY write


def make_experiment(session: Session) -> tuple[str, list[str]]:
    org = Organization(name="bench")
    session.add(org)
    session.flush()
    ds = Datasource(organization_id=org.id, name="wh", url="sqlite://", options={})
    session.add(ds)
    session.flush()
    pt = ParticipantType(
        organization_id=org.id,
        name="people",
        datasource_id=ds.id,
        table_name="people",
        unique_id_field="id",
        fields=[],
    )
    session.add(pt)
    session.flush()
    exp = Experiment(
        organization_id=org.id,
        participant_type_id=pt.id,
        name="bench",
        type="preassigned",
        state="assigned",
        seed=1,
        arms=[Arm(position=i, name=f"arm {i}") for i in range(3)],
    )
    session.add(exp)
    session.flush()
    return exp.id, [a.id for a in exp.arms]


def rows(arm_ids: list[str]) -> tuple[list[str], list[str], list[str | None]]:
    participant_ids = [f"participant-{i:07d}" for i in range(N)]
    arms = [arm_ids[i % 3] for i in range(N)]
    labels = [json.dumps({"region": f"r{r}", "segment": s}) for r in range(10) for s in "abcd"]
    strata: list[str | None] = [labels[(i * 7) % len(labels)] for i in range(N)]
    return participant_ids, arms, strata


def bare_copy_text(
    experiment_id: str,
    participant_ids: list[str],
    arms: list[str],
    strata: list[str | None],
    when: datetime,
) -> bytes:
    # The generated data holds no character that COPY text format would need escaped.
    at = when.isoformat()
    return "".join(
        f"{experiment_id}\t{p}\t{a}\t{at}\t{s}\n"
        for p, a, s in zip(participant_ids, arms, strata, strict=True)
    ).encode()


def empty_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE assignments")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE assignments")


def time_ours(engine: sa.Engine, experiment_id: str, data: Any, when: datetime) -> float:
    participant_ids, arms, strata = data
    empty_table(engine)
    start = time.perf_counter()
    with Session(engine) as session, session.begin():
        replace_assignments(
            session,
            experiment_id=experiment_id,
            participant_ids=participant_ids,
            arm_ids=arms,
            strata_json=strata,
            assigned_at=when,
        )
    return time.perf_counter() - start


def time_bare(engine: sa.Engine, text: bytes) -> float:
    empty_table(engine)
    raw: Any = engine.raw_connection()
    try:
        start = time.perf_counter()
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY assignments (experiment_id, participant_id, arm_id, assigned_at, strata) "
                "FROM STDIN"
            ) as copy:
                for i in range(0, len(text), CHUNK):
                    copy.write(text[i : i + CHUNK])
        raw.commit()
        return time.perf_counter() - start
    finally:
        raw.close()


def main() -> None:
    with temporary_postgres_database(prefix="xngin_bench") as url:
        upgrade(url)
        engine = create_app_engine(url)
        try:
            with Session(engine) as session, session.begin():
                experiment_id, arm_ids = make_experiment(session)
            data = rows(arm_ids)
            when = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
            text = bare_copy_text(experiment_id, *data, when)
            ours: list[float] = []
            bare: list[float] = []
            for _ in range(REPEATS):
                bare.append(time_bare(engine, text))
                ours.append(time_ours(engine, experiment_id, data, when))
            with engine.connect() as conn:
                stored = conn.exec_driver_sql("SELECT count(*) FROM assignments").scalar()
            assert stored == N, stored
        finally:
            engine.dispose()
    best_ours, best_bare = min(ours), min(bare)
    ratio = best_ours / best_bare
    print(f"rows:                 {N:,}")
    print(f"replace_assignments:  {best_ours:.2f} s (runs: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"bare COPY:            {best_bare:.2f} s (runs: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"ratio:                {ratio:.2f}x bare COPY (target <= {TARGET})")
    print(
        json.dumps(
            {
                "bench": "store_assignments",
                "value": round(ratio, 3),
                "unit": "x bare COPY",
                "target": TARGET,
                "met": ratio <= TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
