"""The assignments API: paged list, CSV export, treatment status lookups, online assignment."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from xngin.services.runtime import Runtime
from xngin.store.assignments import replace_assignments
from xngin.store.models import Arm, Assignment, Datasource, Experiment, ParticipantType
from xngin.store.organizations import get_or_create_organization

ASSIGNED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def create_experiment(
    runtime: Runtime,
    *,
    organization: str = "acme",
    type: str = "preassigned",
    state: str = "committed",
    arms: Sequence[tuple[str, float, dict[str, Any] | None]] = (
        ("control", 1.0, None),
        ("treatment", 1.0, {"color": "red"}),
    ),
    filters: Sequence[dict[str, Any]] = (),
    strata: Sequence[str] = (),
    traffic_allocation: float = 100.0,
    seed: int = 42,
) -> tuple[str, list[str]]:
    """An experiment with its arms, straight through the ORM; returns (id, arm ids)."""
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, organization)
        ds = Datasource(organization_id=org.id, name=f"wh-{len(org.id)}-{id(session)}", url="x")
        session.add(ds)
        session.flush()
        pt = ParticipantType(
            organization_id=org.id,
            name=f"people-{id(ds)}",
            datasource_id=ds.id,
            table_name="people",
            unique_id_field="id",
        )
        session.add(pt)
        session.flush()
        exp = Experiment(
            organization_id=org.id,
            participant_type_id=pt.id,
            name="exp",
            type=type,
            state=state,
            seed=seed,
            traffic_allocation=traffic_allocation,
            design={"filters": list(filters), "strata": list(strata)},
            arms=[
                Arm(position=i, name=name, weight=w, config=cfg)
                for i, (name, w, cfg) in enumerate(arms)
            ],
        )
        session.add(exp)
        session.flush()
        return exp.id, [a.id for a in exp.arms]


def store(
    runtime: Runtime,
    experiment_id: str,
    pairs: Sequence[tuple[str, str]],
    strata: Sequence[str | None] | None = None,
) -> None:
    with runtime.sessions.begin() as session:
        replace_assignments(
            session,
            experiment_id=experiment_id,
            participant_ids=[p for p, _ in pairs],
            arm_ids=[a for _, a in pairs],
            strata_json=strata,
            assigned_at=ASSIGNED_AT,
        )


def stored_rows(runtime: Runtime, experiment_id: str) -> list[tuple[str, str]]:
    with runtime.sessions() as session:
        return [
            (r.participant_id, r.arm_id)
            for r in session.scalars(
                sa.select(Assignment).where(Assignment.experiment_id == experiment_id)
            )
        ]


def set_state(runtime: Runtime, experiment_id: str, state: str) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            sa.update(Experiment).where(Experiment.id == experiment_id).values(state=state)
        )


@pytest.fixture
def key(make_key: Callable[..., str]) -> str:
    return make_key("acme")


def get(client: TestClient, key: str, path: str, **params: Any) -> Any:
    return client.get(f"/v1{path}", headers={"X-API-Key": key}, params=params)


# Treatment status -------------------------------------------------------------------------------


def test_lookup_answers_the_stored_arm_with_config_and_time(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    exp, (control, treatment) = create_experiment(runtime)
    store(runtime, exp, [("p1", control), ("p2", treatment)])
    reply = get(client, key, f"/experiments/{exp}/assignments/p2")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["experiment_id"] == exp
    assert body["participant_id"] == "p2"
    assert body["state"] == "committed"
    assert body["reason"] is None
    assignment = body["assignment"]
    assert assignment["arm_id"] == treatment
    assert assignment["arm_name"] == "treatment"
    assert assignment["config"] == {"color": "red"}
    assert datetime.fromisoformat(assignment["assigned_at"]) == ASSIGNED_AT


def test_lookup_of_someone_outside_the_audience_says_not_in_experiment(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    exp, (control, _) = create_experiment(runtime)
    store(runtime, exp, [("p1", control)])
    reply = get(client, key, f"/experiments/{exp}/assignments/stranger")
    assert reply.status_code == 200
    assert reply.json() == {
        "experiment_id": exp,
        "participant_id": "stranger",
        "state": "committed",
        "assignment": None,
        "reason": "not_in_experiment",
    }


def test_lookup_takes_participant_ids_with_slashes_and_spaces(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    exp, (control, _) = create_experiment(runtime)
    weird = "org/42/user 7?x=1#frag"
    store(runtime, exp, [(weird, control)])
    reply = get(client, key, f"/experiments/{exp}/assignments/{quote(weird, safe='/')}")
    assert reply.status_code == 200, reply.text
    assert reply.json()["participant_id"] == weird
    assert reply.json()["assignment"]["arm_id"] == control


def test_lookup_errors_have_the_one_error_shape(
    runtime: Runtime, client: TestClient, key: str, make_key: Callable[..., str]
) -> None:
    exp, _ = create_experiment(runtime)
    path = f"/v1/experiments/{exp}/assignments/p1"
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.json()["error"]["field"] == "X-API-Key"
    wrong = client.get(path, headers={"X-API-Key": "xk_wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    other = client.get(path, headers={"X-API-Key": make_key("globex")})
    assert other.status_code == 404
    assert other.json()["error"] == {
        "code": "not_found",
        "message": f"experiment {exp!r} does not exist",
        "field": "experiment_id",
    }
    too_long = get(client, key, f"/experiments/{exp}/assignments/{'x' * 201}")
    assert too_long.status_code == 422 and too_long.json()["error"]["field"] == "participant_id"
    posted = client.post(path, headers={"X-API-Key": make_key("globex")}, json={})
    assert posted.status_code == 404


def test_post_lookup_checks_properties_against_online_audience_filters(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    filters = [{"field_name": "plan", "relation": "includes", "value": ["pro", "team"]}]
    exp, arm_ids = create_experiment(runtime, type="online", state="running", filters=filters)
    path = f"/v1/experiments/{exp}/assignments/u1"
    headers = {"X-API-Key": key}
    refused = client.post(path, headers=headers, json={"properties": {"plan": "free"}})
    assert refused.status_code == 200
    assert refused.json()["reason"] == "audience_filters_not_met"
    without = client.get(path, headers=headers)  # no properties: plan is null, not included
    assert without.json()["reason"] == "audience_filters_not_met"
    accepted = client.post(path, headers=headers, json={"properties": {"plan": "pro"}})
    assert accepted.json()["assignment"]["arm_id"] in arm_ids
    assert client.get(path, headers=headers).json() == accepted.json()
    wrong_type = client.post(
        path.replace("u1", "u2"), headers=headers, json={"properties": {"plan": 3}}
    )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["error"]["field"] == "properties.plan"
    extra = client.post(path, headers=headers, json={"props": {}})
    assert extra.status_code == 422


def test_fifty_concurrent_first_lookups_store_one_row_and_agree(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    exp, _ = create_experiment(runtime, type="online", state="running")
    path = f"/v1/experiments/{exp}/assignments/newcomer"
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda _: client.get(path, headers={"X-API-Key": key}), range(50)))
    assert {r.status_code for r in replies} == {200}
    assert len({json.dumps(r.json()["assignment"], sort_keys=True) for r in replies}) == 1
    assert len(stored_rows(runtime, exp)) == 1


def test_openapi_documents_the_lookup_and_its_answer(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    path = spec["paths"]["/v1/experiments/{experiment_id}/assignments/{participant_id}"]
    for method in ("get", "post"):
        ref = path[method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/TreatmentStatusOut")
    schema = spec["components"]["schemas"]["TreatmentStatusOut"]
    assert {"experiment_id", "participant_id", "state", "assignment", "reason"} <= set(
        schema["properties"]
    )
    assert all("description" in p for p in schema["properties"].values())
    assert "/v1/experiments/{experiment_id}/assignments" in spec["paths"]


# Listing and export -------------------------------------------------------------------------------


def test_list_pages_through_every_assignment_by_cursor(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    exp, (control, treatment) = create_experiment(runtime, strata=["region"])
    pairs = [(f"p{i:02d}", (control, treatment)[i % 2]) for i in range(25)]
    strata = [json.dumps({"region": "north" if i < 10 else "south"}) for i in range(25)]
    store(runtime, exp, pairs[::-1], strata[::-1])
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        body = get(client, key, f"/experiments/{exp}/assignments", **params).json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [i["participant_id"] for i in seen] == [p for p, _ in pairs]
    assert seen[0] == {
        "participant_id": "p00",
        "arm_id": control,
        "arm_name": "control",
        "assigned_at": ASSIGNED_AT.isoformat().replace("+00:00", "Z"),
        "strata": {"region": "north"},
    }
    assert seen[24]["strata"] == {"region": "south"}


def test_list_refuses_bad_limits_cursors_and_other_organizations(
    runtime: Runtime, client: TestClient, key: str, make_key: Callable[..., str]
) -> None:
    exp, _ = create_experiment(runtime)
    path = f"/experiments/{exp}/assignments"
    for limit in (0, 10_001):
        reply = get(client, key, path, limit=limit)
        assert reply.status_code == 422 and reply.json()["error"]["field"] == "limit"
    bad_cursor = get(client, key, path, cursor="%%%")
    assert bad_cursor.status_code == 422 and bad_cursor.json()["error"]["field"] == "cursor"
    assert get(client, make_key("globex"), path).status_code == 404
    assert get(client, make_key("globex"), path, format="csv").status_code == 404
    assert get(client, key, path).json() == {"items": [], "next_cursor": None}


def test_csv_export_streams_100000_assignments_with_strata_columns(
    runtime: Runtime, client: TestClient, key: str
) -> None:
    exp, (control, treatment) = create_experiment(runtime, strata=["region", "is_member"])
    n = 100_000
    pairs = [(f"p{i:06d}", (control, treatment)[i % 2]) for i in range(n)]
    labels = [
        json.dumps({"region": "north, east", "is_member": True}),
        json.dumps({"region": 'the "south"', "is_member": None}),
    ]
    store(runtime, exp, pairs, [labels[(i // 3) % 2] for i in range(n)])
    with client.stream(
        "GET",
        f"/v1/experiments/{exp}/assignments",
        params={"format": "csv"},
        headers={"X-API-Key": key},
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/csv")
        text = "".join(reply.iter_text())
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["participant_id", "arm_id", "arm_name", "region", "is_member"]
    assert len(rows) == n + 1
    cells = [["north, east", "true"], ['the "south"', ""]]
    for i in (0, 3, 4, 77_777, n - 1):
        arm, name = (control, "control") if i % 2 == 0 else (treatment, "treatment")
        assert rows[i + 1] == [f"p{i:06d}", arm, name, *cells[(i // 3) % 2]]
    assert [r[0] for r in rows[1:]] == [p for p, _ in pairs]
