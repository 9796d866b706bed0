"""/v1/experiments through HTTP on SQLite and PostgreSQL app databases, with a DuckDB warehouse:
saving and reading designs, validation, lifecycle actions, immutability after commit, audit log,
organization scoping, paging and deletion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from xngin.services.access import list_api_keys
from xngin.services.lifecycle import advance_schedules
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store import organizations as orgs

FAR = datetime(2090, 1, 1, tzinfo=UTC)

SHEET: list[dict[str, Any]] = [
    {"field_name": "participant_id", "data_type": "string", "is_unique_id": True},
    {"field_name": "region", "data_type": "string", "is_filter": True, "is_strata": True},
    {"field_name": "gender", "data_type": "string", "is_filter": True, "is_strata": True},
    {"field_name": "age", "data_type": "integer", "is_filter": True},
    {"field_name": "income", "data_type": "float", "is_metric": True},
    {"field_name": "converted", "data_type": "boolean", "is_metric": True},
]


@pytest.fixture
def people() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 300
    return pd.DataFrame(
        {
            "participant_id": [f"P{i:04d}" for i in range(n)],
            "region": rng.choice(["north", "south", "east"], size=n),
            "gender": rng.choice(["f", "m"], size=n),
            "age": rng.integers(18, 70, size=n),
            "income": np.round(rng.lognormal(7, 0.5, size=n), 2),
            "converted": rng.random(n) < 0.3,
        }
    )


@pytest.fixture
def register(runtime: Runtime, tmp_path: Path, people: pd.DataFrame) -> Callable[[str], None]:
    """Give an organization the ``people`` participant type over a DuckDB file."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.register("frame", people)
        conn.execute("CREATE TABLE people AS SELECT * FROM frame")

    def register(organization: str) -> None:
        with runtime.sessions.begin() as session:
            org = orgs.get_or_create_organization(session, organization)
            ds = catalog.upsert_datasource(
                session, organization_id=org.id, name="wh", url=f"duckdb:///{path}", options={}
            )
            catalog.upsert_participant_type(
                session,
                organization_id=org.id,
                name="people",
                datasource=ds,
                table_name="people",
                unique_id_field="participant_id",
                fields=SHEET,
                sheet_url=None,
            )

    return register


@pytest.fixture
def acme(make_key: Callable[..., str], register: Callable[[str], None]) -> dict[str, str]:
    headers = {"X-API-Key": make_key("acme")}
    register("acme")
    return headers


@pytest.fixture
def globex(make_key: Callable[..., str], register: Callable[[str], None]) -> dict[str, str]:
    headers = {"X-API-Key": make_key("globex")}
    register("globex")
    return headers


def key_id(runtime: Runtime, headers: dict[str, str]) -> str:
    plaintext = headers["X-API-Key"]
    return next(k.key_id for k in list_api_keys(runtime) if plaintext.startswith(k.prefix))


def body(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "Reminder SMS",
        "description": "Does a reminder raise savings?",
        "hypothesis": "Reminders raise savings by 10%",
        "type": "preassigned",
        "participant_type": "people",
        "filters": [{"field_name": "age", "relation": "between", "value": [20, 60]}],
        "arms": [
            {"arm_name": "control", "arm_description": "nothing"},
            {"arm_name": "sms", "weight": 2, "config": {"template": "hello {name}"}},
        ],
        "strata": ["region"],
        "seed": 42,
    }
    out.update(overrides)
    return out


def create(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/experiments", json=body(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def act(
    client: TestClient, headers: dict[str, str], experiment_id: str, action: str, **json: Any
) -> Any:
    return client.post(
        f"/v1/experiments/{experiment_id}/{action}", json=json or None, headers=headers
    )


def audit(client: TestClient, headers: dict[str, str], experiment_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/experiments/{experiment_id}/audit", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


# Saving and reading -----------------------------------------------------------------------------


def test_create_returns_the_saved_design_with_arm_ids(
    client: TestClient, acme: dict[str, str]
) -> None:
    saved = create(client, acme)
    assert saved["state"] == "draft"
    assert saved["type"] == "preassigned"
    assert [a["arm_name"] for a in saved["arms"]] == ["control", "sms"]
    assert all(a["arm_id"] for a in saved["arms"])
    assert saved["arms"][1]["config"] == {"template": "hello {name}"}
    assert saved["arms"][1]["weight"] == 2
    assert saved["power_analyses"] == []
    assert saved["assign_summary"] is None
    assert saved["seed"] == 42
    assert saved["allowed_actions"] == ["assign", "abandon"]
    assert saved["current_allocation"] == 100
    again = client.get(f"/v1/experiments/{saved['id']}", headers=acme)
    assert again.status_code == 200
    assert again.json() == saved


def test_a_missing_seed_is_drawn_and_kept(client: TestClient, acme: dict[str, str]) -> None:
    first = create(client, acme, seed=None)
    second = create(client, acme, seed=None)
    assert isinstance(first["seed"], int)
    assert first["seed"] != second["seed"]


def test_create_with_metrics_stores_the_power_analysis(
    client: TestClient, acme: dict[str, str], people: pd.DataFrame
) -> None:
    metrics = [
        {"field_name": "income", "metric_pct_change": 0.1},
        {"field_name": "converted", "metric_target": 0.4},
    ]
    saved = create(client, acme, metrics=metrics)
    analyses = saved["power_analyses"]
    assert [a["field_name"] for a in analyses] == ["income", "converted"]
    audience = people[(people["age"] >= 20) & (people["age"] <= 60)]
    assert [a["available_n"] for a in analyses] == [len(audience)] * 2
    assert analyses[0]["baseline"] == pytest.approx(audience["income"].mean())
    assert analyses[1]["baseline"] == pytest.approx(audience["converted"].mean())
    # The same design sent to the stateless endpoint gives the same analysis.
    power = client.post(
        "/v1/power",
        json={k: body(metrics=metrics)[k] for k in ("participant_type", "filters", "arms")}
        | {"metrics": metrics},
        headers=acme,
    )
    assert power.status_code == 200, power.text
    assert power.json()["analyses"] == analyses


INVALID_DESIGNS: list[tuple[dict[str, Any], str]] = [
    ({"participant_type": "households"}, "participant_type"),
    ({"strata": ["region", "age"]}, "strata[1]"),
    ({"strata": ["region", "region"]}, "strata[1]"),
    ({"metrics": [{"field_name": "age", "metric_pct_change": 0.1}]}, "metrics[0]"),
    ({"filters": [{"field_name": "income", "relation": "includes", "value": [1]}]},
     "filters[0].field_name"),
    ({"filters": [{"field_name": "age", "relation": "includes", "value": ["old"]}]},
     "filters[0].value"),
    ({"arms": [{"arm_name": "only"}]}, "arms"),
    ({"arms": [{"arm_name": "a"}, {"arm_name": "a"}]}, "arms[1].arm_name"),
    ({"arms": [{"arm_name": "a", "arm_id": "no spaces"}, {"arm_name": "b"}]},
     "arms[0].arm_id"),
    ({"arms": [{"arm_name": "a", "weight": 0}, {"arm_name": "b"}]}, "arms[0].weight"),
    ({"start_at": "2090-02-01T00:00:00Z", "end_at": "2090-01-01T00:00:00Z"}, "end_at"),
    ({"start_at": "2090-01-01T00:00:00Z", "end_at": "2090-01-01T00:00:00Z"}, "end_at"),
    ({"traffic_allocation": 150}, "traffic_allocation"),
    ({"traffic_allocation": -1}, "traffic_allocation"),
    ({"alpha": 1.5}, "alpha"),
    ({"type": "sometimes"}, "type"),
    ({"desired_n": 0}, "desired_n"),
    ({"name": ""}, "name"),
]  # fmt: skip


def test_an_invalid_design_is_refused_naming_the_field(
    client: TestClient, acme: dict[str, str]
) -> None:
    for overrides, field in INVALID_DESIGNS:
        response = client.post("/v1/experiments", json=body(**overrides), headers=acme)
        assert response.status_code == 422, (overrides, response.text)
        assert response.json()["error"]["field"] == field, overrides
    assert client.get("/v1/experiments", headers=acme).json()["items"] == []


def test_a_given_arm_id_is_kept_and_cannot_be_taken_twice(
    client: TestClient, acme: dict[str, str]
) -> None:
    arms = [{"arm_name": "control", "arm_id": "ctl-1"}, {"arm_name": "sms"}]
    saved = create(client, acme, arms=arms)
    assert saved["arms"][0]["arm_id"] == "ctl-1"
    again = client.post("/v1/experiments", json=body(arms=arms), headers=acme)
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "arms[0].arm_id"


# Lifecycle --------------------------------------------------------------------------------------


def test_a_preassigned_experiment_goes_through_its_whole_life(
    client: TestClient, acme: dict[str, str], people: pd.DataFrame
) -> None:
    experiment_id = create(client, acme)["id"]
    assigned = act(client, acme, experiment_id, "assign")
    assert assigned.status_code == 200, assigned.text
    summary = assigned.json()["assign_summary"]
    audience = people[(people["age"] >= 20) & (people["age"] <= 60)]
    assert summary["sample_size"] == len(audience)
    assert [a["arm_id"] for a in summary["arm_sizes"]] == [
        a["arm_id"] for a in assigned.json()["arms"]
    ]
    # Weights 1:2 dealt in permuted blocks per stratum: each arm within a block's rounding.
    sizes = [a["size"] for a in summary["arm_sizes"]]
    assert abs(sizes[1] - 2 * sizes[0]) <= 3 * len(summary["strata_counts"])
    for action, state in [
        ("commit", "committed"),
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
    ]:
        response = act(client, acme, experiment_id, action)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state
    stopped = act(client, acme, experiment_id, "stop", reason="budget cut")
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["state"], stopped.json()["stop_reason"]) == ("stopped", "budget cut")
    assert [e["action"] for e in audit(client, acme, experiment_id)] == [
        "create", "assign", "commit", "start", "pause", "resume", "stop",
    ]  # fmt: skip


def test_an_illegal_action_is_409_naming_the_current_state(
    client: TestClient, acme: dict[str, str]
) -> None:
    experiment_id = create(client, acme)["id"]
    for action in ("commit", "start", "pause", "resume"):
        response = act(client, acme, experiment_id, action)
        assert response.status_code == 409, (action, response.text)
        error = response.json()["error"]
        assert error["code"] == "conflict"
        assert "'draft'" in error["message"]
    stop = act(client, acme, experiment_id, "stop", reason="no")
    assert stop.status_code == 409
    online = create(client, acme, type="online")["id"]
    refused = act(client, acme, online, "assign")
    assert refused.status_code == 409
    assert "online" in refused.json()["error"]["message"]
    assert act(client, acme, online, "commit").json()["state"] == "committed"


def test_stop_needs_a_reason(client: TestClient, acme: dict[str, str]) -> None:
    experiment_id = create(client, acme, type="online")["id"]
    act(client, acme, experiment_id, "commit")
    response = client.post(f"/v1/experiments/{experiment_id}/stop", headers=acme)
    assert response.status_code == 422
    empty = act(client, acme, experiment_id, "stop", reason="")
    assert (empty.status_code, empty.json()["error"]["field"]) == (422, "reason")


def test_assigning_again_after_commit_is_refused(client: TestClient, acme: dict[str, str]) -> None:
    experiment_id = create(client, acme)["id"]
    first = act(client, acme, experiment_id, "assign").json()["assign_summary"]
    second = act(client, acme, experiment_id, "assign").json()["assign_summary"]
    assert second["arm_sizes"] == first["arm_sizes"]  # same seed, same draw
    act(client, acme, experiment_id, "commit")
    refused = act(client, acme, experiment_id, "assign")
    assert refused.status_code == 409
    assert "'committed'" in refused.json()["error"]["message"]


def test_a_scheduled_start_shows_in_the_experiment_and_its_audit(
    client: TestClient, runtime: Runtime, acme: dict[str, str]
) -> None:
    experiment_id = create(client, acme, type="online", start_at=FAR.isoformat())["id"]
    act(client, acme, experiment_id, "commit")
    with runtime.sessions.begin() as session:
        assert len(advance_schedules(session, FAR + timedelta(seconds=1))) == 1
    assert client.get(f"/v1/experiments/{experiment_id}", headers=acme).json()["state"] == "running"
    last = audit(client, acme, experiment_id)[-1]
    assert (last["actor"], last["action"]) == ("scheduler", "start")
    assert last["changes"]["state"] == {"before": "committed", "after": "running"}


# Changes and the audit log ----------------------------------------------------------------------


def test_changes_before_commit_are_audited_with_before_and_after(
    client: TestClient, runtime: Runtime, acme: dict[str, str]
) -> None:
    saved = create(client, acme)
    experiment_id = saved["id"]
    response = client.patch(
        f"/v1/experiments/{experiment_id}",
        json={
            "name": "Reminder SMS v2",
            "strata": ["region", "gender"],
            "description": saved["description"],
        },
        headers=acme,
    )
    assert response.status_code == 200, response.text
    assert response.json()["strata"] == ["region", "gender"]
    entries = audit(client, acme, experiment_id)
    assert [e["action"] for e in entries] == ["create", "update"]
    assert entries[0]["changes"]["name"] == "Reminder SMS"
    assert entries[1]["actor"] == key_id(runtime, acme)
    # Only what changed is recorded; the description was sent unchanged.
    assert entries[1]["changes"] == {
        "name": {"before": "Reminder SMS", "after": "Reminder SMS v2"},
        "strata": {"before": ["region"], "after": ["region", "gender"]},
    }
    same = client.patch(
        f"/v1/experiments/{experiment_id}", json={"name": "Reminder SMS v2"}, headers=acme
    )
    assert same.status_code == 200
    assert len(audit(client, acme, experiment_id)) == 2


def test_arms_sent_again_keep_their_ids(client: TestClient, acme: dict[str, str]) -> None:
    saved = create(client, acme)
    ids = {a["arm_name"]: a["arm_id"] for a in saved["arms"]}
    arms = [
        {"arm_name": "sms", "weight": 3},
        {"arm_name": "control"},
        {"arm_name": "call"},
    ]
    response = client.patch(f"/v1/experiments/{saved['id']}", json={"arms": arms}, headers=acme)
    assert response.status_code == 200, response.text
    after = response.json()["arms"]
    assert [a["arm_name"] for a in after] == ["sms", "control", "call"]
    assert after[0]["arm_id"] == ids["sms"]
    assert after[1]["arm_id"] == ids["control"]
    assert after[2]["arm_id"] not in ids.values()


def test_null_clears_only_optional_fields(client: TestClient, acme: dict[str, str]) -> None:
    experiment_id = create(client, acme, end_at=FAR.isoformat(), desired_n=10)["id"]
    cleared = client.patch(
        f"/v1/experiments/{experiment_id}", json={"end_at": None, "desired_n": None}, headers=acme
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["end_at"], cleared.json()["desired_n"]) == (None, None)
    refused = client.patch(f"/v1/experiments/{experiment_id}", json={"name": None}, headers=acme)
    assert (refused.status_code, refused.json()["error"]["field"]) == (422, "name")
    bad = client.patch(f"/v1/experiments/{experiment_id}", json={"strata": ["age"]}, headers=acme)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "strata[0]")


FROZEN_CHANGES: dict[str, Any] = {
    "name": "another name",
    "hypothesis": "another hypothesis",
    "type": "online",
    "participant_type": "people2",
    "filters": [],
    "arms": [{"arm_name": "control"}, {"arm_name": "call"}],
    "metrics": [{"field_name": "income", "metric_pct_change": 0.2}],
    "strata": [],
    "alpha": 0.01,
    "power": 0.9,
    "multiple_comparison": "bonferroni",
    "desired_n": 10,
    "seed": 7,
    "start_at": "2091-01-01T00:00:00Z",
    "traffic_allocation": 50,
    "ramp_schedule": [{"at": "2090-01-01T00:00:00Z", "allocation": 10}],
}


def test_the_design_is_frozen_after_commit_except_description_and_end(
    client: TestClient, acme: dict[str, str]
) -> None:
    from xngin.services.experiment_specs import ExperimentUpdate

    # Every PATCH field is covered: the frozen ones here, the two exceptions below.
    assert set(FROZEN_CHANGES) | {"description", "end_at"} == set(ExperimentUpdate.model_fields)
    experiment_id = create(client, acme)["id"]
    act(client, acme, experiment_id, "assign")
    act(client, acme, experiment_id, "commit")
    for name, value in FROZEN_CHANGES.items():
        response = client.patch(
            f"/v1/experiments/{experiment_id}", json={name: value}, headers=acme
        )
        assert response.status_code == 409, (name, response.text)
        assert response.json()["error"]["field"] == name
        assert "'committed'" in response.json()["error"]["message"]
    allowed = client.patch(
        f"/v1/experiments/{experiment_id}",
        json={"description": "now with a better description", "end_at": FAR.isoformat()},
        headers=acme,
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["end_at"] == FAR.isoformat().replace("+00:00", "Z")
    last = audit(client, acme, experiment_id)[-1]
    assert set(last["changes"]) == {"description", "end_at"}
    assert last["changes"]["end_at"]["before"] is None
    act(client, acme, experiment_id, "stop", reason="done")
    late = client.patch(f"/v1/experiments/{experiment_id}", json={"end_at": None}, headers=acme)
    assert (late.status_code, late.json()["error"]["field"]) == (409, "end_at")


# Organizations, listing, deleting ---------------------------------------------------------------


def test_another_organizations_experiment_is_404_everywhere(
    client: TestClient, acme: dict[str, str], globex: dict[str, str]
) -> None:
    experiment_id = create(client, acme)["id"]
    url = f"/v1/experiments/{experiment_id}"
    attempts = [
        client.get(url, headers=globex),
        client.patch(url, json={"name": "mine"}, headers=globex),
        client.delete(url, headers=globex),
        client.get(f"{url}/audit", headers=globex),
        act(client, globex, experiment_id, "assign"),
        act(client, globex, experiment_id, "abandon"),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    assert client.get("/v1/experiments", headers=globex).json()["items"] == []
    assert client.get(url, headers=acme).json()["name"] == "Reminder SMS"


def test_list_filters_by_state_newest_first_in_pages(
    client: TestClient, acme: dict[str, str]
) -> None:
    ids = [create(client, acme, name=f"e{i}")["id"] for i in range(5)]
    act(client, acme, ids[1], "abandon")
    act(client, acme, ids[3], "abandon")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/experiments", params=params, headers=acme).json()
        assert len(page["items"]) <= 2
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    abandoned = client.get("/v1/experiments", params={"state": "abandoned"}, headers=acme).json()
    assert [e["id"] for e in abandoned["items"]] == [ids[3], ids[1]]
    both = client.get(
        "/v1/experiments", params=[("state", "abandoned"), ("state", "draft")], headers=acme
    ).json()
    assert len(both["items"]) == 5
    bad = client.get("/v1/experiments", params={"cursor": "nonsense"}, headers=acme)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "cursor")
    unknown = client.get("/v1/experiments", params={"state": "finished"}, headers=acme)
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (422, "state[0]")


def test_only_experiments_that_never_ran_can_be_deleted(
    client: TestClient, acme: dict[str, str]
) -> None:
    draft = create(client, acme)["id"]
    assert client.delete(f"/v1/experiments/{draft}", headers=acme).status_code == 204
    assert client.get(f"/v1/experiments/{draft}", headers=acme).status_code == 404
    abandoned = create(client, acme)["id"]
    act(client, acme, abandoned, "abandon")
    assert client.delete(f"/v1/experiments/{abandoned}", headers=acme).status_code == 204
    running = create(client, acme, type="online")["id"]
    act(client, acme, running, "commit")
    act(client, acme, running, "start")
    refused = client.delete(f"/v1/experiments/{running}", headers=acme)
    assert refused.status_code == 409
    assert "'running'" in refused.json()["error"]["message"]
    assert client.get(f"/v1/experiments/{running}", headers=acme).status_code == 200


def test_assign_can_rerandomize_until_balanced_and_reproduces_the_draw(
    client: TestClient, acme: dict[str, str]
) -> None:
    experiment_id = create(client, acme)["id"]
    wanted = {"rerandomize": {"max_tries": 40, "p_threshold": 0.9}}
    first = act(client, acme, experiment_id, "assign", **wanted)
    assert first.status_code == 200, first.text
    check = first.json()["assign_summary"]["balance_check"]
    assert 1 <= check["tries"] <= 40
    assert check["p_value"] >= 0.9 or check["tries"] == 40

    def arms() -> list[tuple[str, str]]:
        page = client.get(f"/v1/experiments/{experiment_id}/assignments", headers=acme).json()
        return [(a["participant_id"], a["arm_id"]) for a in page["items"]]

    drawn = arms()
    again = act(client, acme, experiment_id, "assign", **wanted)
    assert again.json()["assign_summary"]["balance_check"]["tries"] == check["tries"]
    assert arms() == drawn
    entry = audit(client, acme, experiment_id)[-1]
    assert entry["changes"]["rerandomize"] == {"max_tries": 40, "p_threshold": 0.9}


def test_assign_rejects_a_bad_rerandomization_naming_the_field(
    client: TestClient, acme: dict[str, str]
) -> None:
    experiment_id = create(client, acme)["id"]
    bad = act(client, acme, experiment_id, "assign", rerandomize={"max_tries": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "rerandomize.max_tries"
