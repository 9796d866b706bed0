"""The analysis service below the API: the assignment mirror, per-metric failures, auto-stop.

Experiments are stored directly in a migrated SQLite app database (the API tests cover
PostgreSQL); the event store is DuckDB, or ClickHouse where a test says so; sheet metrics come
from a DuckDB warehouse file.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from scipy import stats as scipy_stats

from xngin.events import Event, EventMetric
from xngin.services.access import Principal
from xngin.services.analysis import analyze, mirror_is_stale
from xngin.services.analysis_plan import EventSource
from xngin.services.events import event_metric_stats, mirror_assignments
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store import catalog
from xngin.store.assignments import insert_assignment_if_absent, replace_assignments
from xngin.store.db import upgrade
from xngin.store.models import (
    Arm,
    AuditEntry,
    Experiment,
    ExperimentMetric,
    MetricDefinition,
)
from xngin.store.organizations import get_or_create_organization

NOW = datetime.now(UTC).replace(microsecond=0)
SHEET = [
    {"field_name": "participant_id", "data_type": "integer", "description": "",
     "is_unique_id": True, "is_filter": False, "is_metric": False, "is_strata": False},
    {"field_name": "score", "data_type": "float", "description": "",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
]  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def warehouse(tmp_path: Path) -> tuple[str, dict[str, float]]:
    """A DuckDB warehouse whose participants have integer ids 0..399 and a score."""
    rng = np.random.default_rng(1)
    scores = {str(i): float(np.round(rng.normal(50, 10), 3)) for i in range(400)}
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE people AS SELECT unnest($ids)::BIGINT AS participant_id,"
            " unnest($scores)::DOUBLE AS score",
            {"ids": [int(k) for k in scores], "scores": list(scores.values())},
        )
    return f"duckdb:///{path}", scores


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Callable[[str], Runtime]]:
    app_url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    upgrade(app_url)
    opened: list[Runtime] = []

    def make(event_store_url: str = f"duckdb:///{tmp_path / 'events.duckdb'}") -> Runtime:
        settings = Settings(
            data_dir=tmp_path, database_url=app_url, event_store_url=event_store_url,
            cache_url="memory://",
        )  # fmt: skip
        opened.append(Runtime.start(settings))
        return opened[-1]

    yield make
    for runtime in opened:
        runtime.close()


def principal_of(runtime: Runtime) -> Principal:
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, "acme")
        return Principal(organization_id=org.id, organization_name="acme", api_key_id="tester")


def make_experiment(
    runtime: Runtime,
    warehouse_url: str,
    *,
    participants: int = 400,
    state: str = "running",
    metrics: tuple[tuple[str, str, dict[str, Any] | None], ...] = (),
) -> tuple[str, list[str], dict[str, str]]:
    """A preassigned experiment: participants "0".. alternate two arms; ``metrics`` are
    (name, role, guardrail) analysis metrics. Returns its id, arm ids and the assignment."""
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, "acme")
        ds = catalog.upsert_datasource(
            session, organization_id=org.id, name="wh", url=warehouse_url, options={}
        )
        pt = catalog.upsert_participant_type(
            session, organization_id=org.id, name="people", datasource=ds, table_name="people",
            unique_id_field="participant_id", fields=SHEET, sheet_url=None,
        )  # fmt: skip
        experiment = Experiment(
            organization_id=org.id, participant_type_id=pt.id, name="e", type="preassigned",
            state=state, design={"metrics": [{"field_name": "score", "metric_pct_change": 0.1}]},
            seed=3,
        )  # fmt: skip
        experiment.arms = [Arm(position=i, name=n, weight=1.0) for i, n in enumerate("ab")]
        session.add(experiment)
        session.flush()
        arm_ids = [a.id for a in experiment.arms]
        assigned = {str(i): arm_ids[i % 2] for i in range(participants)}
        if participants:
            replace_assignments(
                session, experiment_id=experiment.id, participant_ids=list(assigned),
                arm_ids=list(assigned.values()), strata_json=None, assigned_at=NOW - 5 * DAY,
            )  # fmt: skip
        for position, (name, role, guardrail) in enumerate(metrics):
            session.add(
                ExperimentMetric(
                    experiment_id=experiment.id, metric_name=name, position=position, role=role,
                    guardrail=guardrail,
                )
            )  # fmt: skip
        return experiment.id, arm_ids, assigned


DAY = timedelta(days=1)


def define(runtime: Runtime, name: str, event_name: str, aggregation: str = "count") -> None:
    metric_type = {"count": "count", "sum": "mean", "binary": "binary", "mean": "mean"}[aggregation]
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, "acme")
        source = {"kind": "event", "event_name": event_name, "aggregation": aggregation}
        session.add(
            MetricDefinition(organization_id=org.id, name=name, type=metric_type, source=source)
        )


def outcomes(assigned: dict[str, str], name: str, per_arm: dict[str, float]) -> list[Event]:
    """Poisson counts of ``name`` per participant with the arm's mean, seeded."""
    rng = np.random.default_rng(9)
    events = []
    for pid, arm in sorted(assigned.items()):
        for j in range(int(rng.poisson(per_arm[arm]))):
            events.append(
                Event(event_id=f"{name}-{pid}-{j}", type="outcome", participant_id=pid,
                      timestamp=NOW - DAY, name=name, value=1.0)
            )  # fmt: skip
    return events


def counts_by_arm(events: list[Event], assigned: dict[str, str], arm: str) -> np.ndarray:
    per = {pid: 0 for pid, a in assigned.items() if a == arm}
    for event in events:
        if event.participant_id in per:
            per[event.participant_id] += 1
    return np.array([per[p] for p in sorted(per)], dtype=float)


BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("clickhouse", id="clickhouse", marks=pytest.mark.clickhouse),
]


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_runtime: Callable[..., Runtime]) -> Runtime:
    if request.param == "duckdb":
        return make_runtime()
    database = request.getfixturevalue("clickhouse_database")
    return make_runtime(f"clickhouse://default:@127.0.0.1:9000/{database}")


def test_mirror_copies_the_app_databases_assignments_and_follows_a_reassignment(
    runtime: Runtime, warehouse: tuple[str, dict[str, float]]
) -> None:
    eid, arms, assigned = make_experiment(runtime, warehouse[0], participants=250)
    assert mirror_assignments(runtime, eid, chunk_size=100) == 250
    participation = runtime.event_store.arm_participation(eid)
    assert {a: p.assigned for a, p in participation.items()} == {arms[0]: 125, arms[1]: 125}
    with runtime.sessions.begin() as session:
        replace_assignments(
            session, experiment_id=eid, participant_ids=["7", "8", "9"], arm_ids=[arms[1]] * 3,
            strata_json=None, assigned_at=NOW,
        )  # fmt: skip
    assert mirror_assignments(runtime, eid, chunk_size=2) == 3
    participation = runtime.event_store.arm_participation(eid)
    assert {a: p.assigned for a, p in participation.items()} == {arms[1]: 3}


def test_one_pass_metric_statistics_agree_with_the_stores_participation_count(
    runtime: Runtime, warehouse: tuple[str, dict[str, float]]
) -> None:
    eid, arms, assigned = make_experiment(runtime, warehouse[0], participants=300)
    mirror_assignments(runtime, eid)
    events = outcomes(assigned, "purchase", {arms[0]: 0.5, arms[1]: 1.5})
    runtime.event_store.ingest(events)
    stats = event_metric_stats(
        runtime.event_store, eid, EventSource(EventMetric("purchase", "count")), cuped=False
    )
    reference = runtime.event_store.arm_participation(eid, event_name="purchase")
    assert stats.with_outcome == {a: p.with_outcome for a, p in reference.items()}
    assert stats.store_assigned == {a: p.assigned for a, p in reference.items()}
    for arm in arms:
        counts = counts_by_arm(events, assigned, arm)
        assert stats.arm_stats[arm].n == counts.size
        assert stats.arm_stats[arm].sum == counts.sum()  # type: ignore[union-attr]
        assert stats.with_outcome[arm] == int((counts > 0).sum())


def test_analysis_re_mirrors_assignments_the_event_store_missed(
    runtime: Runtime, warehouse: tuple[str, dict[str, float]]
) -> None:
    eid, arms, assigned = make_experiment(
        runtime, warehouse[0], participants=200, metrics=(("purchases", "primary", None),)
    )
    define(runtime, "purchases", "purchase")
    mirror_assignments(runtime, eid)
    # Online-style late assignments the mirror never heard of.
    with runtime.sessions.begin() as session:
        for i in range(200, 260):
            insert_assignment_if_absent(
                session, experiment_id=eid, participant_id=str(i), arm_id=arms[i % 2],
                assigned_at=NOW - 2 * DAY,
            )  # fmt: skip
            assigned[str(i)] = arms[i % 2]
    events = outcomes(assigned, "purchase", {arms[0]: 1.0, arms[1]: 1.3})
    runtime.event_store.ingest(events)
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal_of(runtime), experiment_id=eid)
    result = report["metrics"][0]
    assert result["error"] is None
    base, treat = (counts_by_arm(events, assigned, a) for a in arms)
    assert [a["n"] for a in result["arms"]] == [base.size, treat.size] == [130, 130]
    welch = scipy_stats.ttest_ind(treat, base, equal_var=False)
    assert result["arms"][1]["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)


def test_sheet_metrics_join_integer_ids_with_the_warehouse(
    make_runtime: Callable[..., Runtime], warehouse: tuple[str, dict[str, float]]
) -> None:
    runtime = make_runtime()
    url, scores = warehouse
    # 410 assigned, 10 of them missing from the warehouse: they have no value.
    eid, arms, assigned = make_experiment(runtime, url, participants=410)
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal_of(runtime), experiment_id=eid)
    metric = report["metrics"][0]
    assert (metric["metric_name"], metric["source"], metric["error"]) == ("score", "sheet", None)
    base, treat = (
        np.array([scores[p] for p, a in sorted(assigned.items()) if a == arm and p in scores])
        for arm in arms
    )
    welch = scipy_stats.ttest_ind(treat, base, equal_var=False)
    assert [a["n"] for a in metric["arms"]] == [base.size, treat.size] == [200, 200]
    assert metric["arms"][1]["effect"] == pytest.approx(treat.mean() - base.mean(), rel=1e-9)
    assert metric["arms"][1]["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    assert [p["without_outcome"] for p in metric["participation"]] == [5, 5]


def test_a_metric_that_cannot_be_computed_is_reported_alone(
    make_runtime: Callable[..., Runtime], warehouse: tuple[str, dict[str, float]]
) -> None:
    runtime = make_runtime()
    url, _ = warehouse
    plan = (
        ("purchases", "primary", None),
        ("score", "secondary", None),
        ("gone", "secondary", None),
    )
    eid, arms, assigned = make_experiment(runtime, url, metrics=plan)
    define(runtime, "purchases", "purchase")
    runtime.event_store.ingest(outcomes(assigned, "purchase", {arms[0]: 1.0, arms[1]: 1.0}))
    # The warehouse column behind "score" disappears after registration.
    with duckdb.connect(url.removeprefix("duckdb:///")) as conn:
        conn.execute("ALTER TABLE people DROP COLUMN score")
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal_of(runtime), experiment_id=eid)
    by_name = {m["metric_name"]: m for m in report["metrics"]}
    assert by_name["purchases"]["error"] is None
    assert by_name["purchases"]["arms"][1]["p_value"] is not None
    assert by_name["score"]["error"]["code"] == "query_failed"
    assert "score" in by_name["score"]["error"]["message"]
    assert by_name["gone"]["error"]["code"] == "unknown_metric"
    assert all(a["error_code"] == "unknown_metric" for a in by_name["gone"]["arms"])


@pytest.mark.clickhouse
def test_an_unreachable_event_store_fails_only_the_event_metrics(
    make_runtime: Callable[..., Runtime],
    warehouse: tuple[str, dict[str, float]],
    clickhouse_database: str,
) -> None:
    runtime = make_runtime(
        f"clickhouse://default:@127.0.0.1:{_closed_port()}/{clickhouse_database}"
    )
    plan = (("purchases", "primary", None), ("score", "secondary", None))
    eid, _, _ = make_experiment(runtime, warehouse[0], metrics=plan)
    define(runtime, "purchases", "purchase")
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal_of(runtime), experiment_id=eid)
    by_name = {m["metric_name"]: m for m in report["metrics"]}
    assert by_name["purchases"]["error"]["code"] == "unavailable"
    assert by_name["score"]["error"] is None
    assert report["srm"]["observed"] == [200, 200]


def test_before_assignment_every_metric_reports_no_data(
    make_runtime: Callable[..., Runtime], warehouse: tuple[str, dict[str, float]]
) -> None:
    runtime = make_runtime()
    eid, _, _ = make_experiment(runtime, warehouse[0], participants=0, state="draft")
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal_of(runtime), experiment_id=eid)
    assert report["srm"]["observed"] == [0, 0]
    arms = report["metrics"][0]["arms"]
    assert arms[1]["error_code"] == "no_data"
    assert arms[1]["always_valid_p_value"] is None  # not started: no sequential inference


@pytest.mark.parametrize("auto_stop", [True, False])
def test_a_breached_guardrail_stops_the_experiment_only_when_asked(
    make_runtime: Callable[..., Runtime], warehouse: tuple[str, dict[str, float]], auto_stop: bool
) -> None:
    runtime = make_runtime()
    guardrail = {
        "direction": "increase",
        "threshold": 0.1,
        "relative": False,
        "auto_stop": auto_stop,
    }
    plan = (("complaints", "guardrail", guardrail),)
    eid, arms, assigned = make_experiment(runtime, warehouse[0], metrics=plan)
    define(runtime, "complaints", "complaint")
    runtime.event_store.ingest(outcomes(assigned, "complaint", {arms[0]: 0.2, arms[1]: 2.0}))
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal_of(runtime), experiment_id=eid)
    assert report["guardrails"]["breaches"][0]["arm_id"] == arms[1]
    assert report["guardrails"]["auto_stopped"] is auto_stop
    with runtime.sessions() as session:
        experiment = session.get(Experiment, eid)
        assert experiment is not None
        assert experiment.state == ("stopped" if auto_stop else "running")
        stops = [e for e in session.query(AuditEntry).filter_by(experiment_id=eid)]
        assert [e.action for e in stops] == (["stop"] if auto_stop else [])
        if auto_stop:
            assert "guardrail 'complaints'" in json.dumps(stops[0].changes)


def test_a_mirror_is_stale_when_it_misses_more_than_arrivals_in_flight() -> None:
    app = {"a": 5000, "b": 5000}
    # Preassigned: the assignment is fixed, so any difference is stale, in either direction.
    assert not mirror_is_stale({"a": 5000, "b": 5000}, app, online=False)
    assert mirror_is_stale({"a": 5000, "b": 4999}, app, online=False)
    assert mirror_is_stale({"a": 5000, "b": 5001}, app, online=False)
    # Online: assignments made after the count, or not mirrored yet for a moment, are fine.
    assert not mirror_is_stale({"a": 5007, "b": 4990}, app, online=True)
    assert mirror_is_stale({"a": 5000, "b": 4989}, app, online=True)
    assert mirror_is_stale({"a": 5000}, app, online=True)
