"""POST /v1/events: batches are all or nothing, idempotent, scoped, and never lost when refused.

The app database varies (SQLite, PostgreSQL: the ``runtime`` fixture); the event store is DuckDB
there, and ClickHouse in the tests that say so.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.events import DuckDBEventStore
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store import catalog
from xngin.store.assignments import replace_assignments
from xngin.store.models import Arm, Experiment
from xngin.store.organizations import get_or_create_organization

NOW = datetime.now(UTC).replace(microsecond=0)
SHEET = [
    {"field_name": "participant_id", "data_type": "string", "description": "", "is_unique_id": True,
     "is_filter": False, "is_metric": False, "is_strata": False},
]  # fmt: skip


def make_experiment(
    runtime: Runtime, *, organization: str = "acme", participants: int = 10, state: str = "running"
) -> tuple[str, dict[str, str]]:
    """A preassigned experiment stored directly, with participants p0.. alternating two arms."""
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, organization)
        ds = catalog.upsert_datasource(
            session, organization_id=org.id, name="wh", url="duckdb:///:memory:", options={}
        )
        pt = catalog.upsert_participant_type(
            session,
            organization_id=org.id,
            name="people",
            datasource=ds,
            table_name="people",
            unique_id_field="participant_id",
            fields=SHEET,
            sheet_url=None,
        )
        experiment = Experiment(
            organization_id=org.id,
            participant_type_id=pt.id,
            name="e",
            type="preassigned",
            state=state,
            design={},
            seed=1,
        )
        experiment.arms = [Arm(position=i, name=n, weight=1.0) for i, n in enumerate("ab")]
        session.add(experiment)
        session.flush()
        arm_ids = [experiment.arms[i % 2].id for i in range(participants)]
        pids = [f"p{i}" for i in range(participants)]
        replace_assignments(
            session,
            experiment_id=experiment.id,
            participant_ids=pids,
            arm_ids=arm_ids,
            strata_json=None,
            assigned_at=NOW - timedelta(days=3),
        )
        return experiment.id, dict(zip(pids, arm_ids, strict=True))


def exposure(event_id: str, experiment_id: str, pid: str, **extra: Any) -> dict[str, Any]:
    at = (NOW - timedelta(days=1)).isoformat()
    return {"event_id": event_id, "type": "exposure", "experiment_id": experiment_id,
            "participant_id": pid, "timestamp": at, **extra}  # fmt: skip


def outcome(event_id: str, pid: str, **extra: Any) -> dict[str, Any]:
    at = (NOW - timedelta(hours=5)).isoformat()
    return {"event_id": event_id, "type": "outcome", "participant_id": pid, "name": "purchase",
            "value": 2.5, "timestamp": at, **extra}  # fmt: skip


@pytest.fixture
def key(make_key: Callable[..., str]) -> str:
    return make_key("acme")


def post(client: TestClient, key: str, events: list[dict[str, Any]]) -> Any:
    return client.post("/v1/events", json={"events": events}, headers={"X-API-Key": key})


def stored_events(runtime: Runtime) -> dict[str, tuple[Any, ...]]:
    store = runtime.event_store
    assert isinstance(store, DuckDBEventStore)
    with duckdb.connect(store.path) as connection:
        rows = connection.execute("SELECT event_id, type, arm_id, value FROM events").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_exposures_record_the_stored_arm_and_resending_adds_nothing(
    client: TestClient, runtime: Runtime, key: str
) -> None:
    eid, arms = make_experiment(runtime)
    batch = [exposure(f"x{i}", eid, f"p{i}") for i in range(4)] + [
        outcome("o1", "p1", experiment_id=eid),
        outcome("o2", "p2"),
        outcome("o2", "p2"),  # repeated inside the batch: the first one counts
    ]
    r = post(client, key, batch)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 6, "duplicates": 1}
    stored = stored_events(runtime)
    assert {f"x{i}": stored[f"x{i}"][1] for i in range(4)} == {
        f"x{i}": arms[f"p{i}"] for i in range(4)
    }
    assert stored["o1"] == ("outcome", None, 2.5)
    again = post(client, key, batch)
    assert again.json() == {"accepted": 0, "duplicates": 7}
    assert len(stored_events(runtime)) == 6


def test_a_bad_batch_stores_nothing_and_lists_every_problem_by_index(
    client: TestClient, runtime: Runtime, key: str
) -> None:
    eid, _ = make_experiment(runtime)
    other, _ = make_experiment(runtime, organization="globex")
    batch = [
        outcome("ok", "p1"),
        exposure("x-unassigned", eid, "stranger"),
        outcome("naive", "p1", timestamp="2025-01-01T00:00:00"),
        outcome("foreign", "p1", experiment_id=other),
        {**exposure("x-missing-experiment", eid, "p2"), "experiment_id": None},
    ]
    r = post(client, key, batch)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "events[1].participant_id"
    for where in (
        "events[1].participant_id",
        "events[2].timestamp",
        "events[3].experiment_id",
        "events[4].experiment_id",
    ):
        assert where in error["message"]
    assert "stranger" in error["message"] and "not assigned" in error["message"]
    assert stored_events(runtime) == {}
    # The good event alone goes through: nothing of the refused batch was kept half-way.
    assert post(client, key, [outcome("ok", "p1")]).json() == {"accepted": 1, "duplicates": 0}


def test_another_organizations_experiment_is_refused_naming_the_field(
    client: TestClient, runtime: Runtime, key: str
) -> None:
    other, _ = make_experiment(runtime, organization="globex")
    r = post(client, key, [exposure("x", other, "p0")])
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "events[0].experiment_id"
    assert "does not exist in your organization" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"arm_id": "a"}, "events[0].arm_id"),  # the arm is looked up, never taken from the body
        ({"type": "click"}, "events[0].type"),
        ({"value": "lots"}, "events[0].value"),
        ({"timestamp": "yesterday"}, "events[0].timestamp"),
    ],
)
def test_malformed_events_get_422_naming_the_field(
    client: TestClient, runtime: Runtime, key: str, change: dict[str, Any], field: str
) -> None:
    eid, _ = make_experiment(runtime)
    r = post(client, key, [exposure("x", eid, "p0", **change)])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_batches_above_ten_thousand_events_are_refused(client: TestClient, key: str) -> None:
    r = post(client, key, [outcome(f"o{i}", "p") for i in range(10_001)])
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "events"


def test_events_need_an_api_key(client: TestClient) -> None:
    r = client.post("/v1/events", json={"events": []})
    assert r.status_code == 401


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def runtime_factory(app_database_url: str, tmp_path: Path) -> Iterator[Callable[[str], Runtime]]:
    """Runtimes on one migrated app database, each with the event store URL given."""
    from xngin.store.db import upgrade

    upgrade(app_database_url)
    opened: list[Runtime] = []

    def make(event_store_url: str) -> Runtime:
        settings = Settings(
            data_dir=tmp_path,
            database_url=app_database_url,
            event_store_url=event_store_url,
            cache_url="memory://",
        )
        opened.append(Runtime.start(settings))
        return opened[-1]

    yield make
    for rt in opened:
        rt.close()


@pytest.mark.clickhouse
def test_an_unreachable_event_store_is_503_and_the_retry_loses_nothing(
    runtime_factory: Callable[[str], Runtime], clickhouse_database: str
) -> None:
    down = runtime_factory(
        f"clickhouse://default:@127.0.0.1:{_closed_port()}/{clickhouse_database}"
    )
    key = issue_api_key(down, organization="acme").plaintext
    eid, _ = make_experiment(down)
    batch = [exposure("x0", eid, "p0"), outcome("o0", "p0")]
    with TestClient(create_app(runtime=down), raise_server_exceptions=False) as client:
        r = post(client, key, batch)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    assert "nothing from this request was stored" in r.json()["error"]["message"]
    # The sender retries once the store is back: every event is accepted, none was half-kept.
    up = runtime_factory(f"clickhouse://default:@127.0.0.1:9000/{clickhouse_database}")
    with TestClient(create_app(runtime=up), raise_server_exceptions=False) as client:
        r = post(client, key, batch)
        assert r.json() == {"accepted": 2, "duplicates": 0}
        assert post(client, key, batch).json() == {"accepted": 0, "duplicates": 2}
    assert up.event_store.count_events() == 2


@pytest.mark.clickhouse
def test_clickhouse_store_ingests_idempotently_and_mirrors_exposure_arms(
    runtime_factory: Callable[[str], Runtime], clickhouse_database: str
) -> None:
    runtime = runtime_factory(f"clickhouse://default:@127.0.0.1:9000/{clickhouse_database}")
    key = issue_api_key(runtime, organization="acme").plaintext
    eid, arms = make_experiment(runtime, participants=200)
    batch = [exposure(f"x{i}", eid, f"p{i}") for i in range(200)]
    batch += [outcome(f"o{i}", f"p{i}", experiment_id=eid) for i in range(0, 200, 2)]
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        assert post(client, key, batch).json() == {"accepted": 300, "duplicates": 0}
        assert post(client, key, batch[:150]).json() == {"accepted": 0, "duplicates": 150}
    from clickhouse_driver import Client

    raw = Client(host="127.0.0.1", database=clickhouse_database)
    try:
        rows = raw.execute(
            "SELECT participant_id, arm_id FROM events FINAL WHERE type = 'exposure'"
        )
    finally:
        raw.disconnect()
    assert dict(rows) == arms
