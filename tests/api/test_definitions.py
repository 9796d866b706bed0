"""/v1/metric-definitions, /v1/features and an experiment's analysis metrics over HTTP.

Definitions are checked against the participant type's sheet (no warehouse needed). Feature
values come from running experiments stored directly in the app database, looked up through the
serving helper (which assigns online newcomers).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from xngin.errors import InvalidInput
from xngin.services.access import Principal
from xngin.services.features import check_arm_features
from xngin.services.online_assignment import online_arm_index
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store.assignments import get_assignment, replace_assignments
from xngin.store.models import Arm, AuditEntry, Experiment
from xngin.store.organizations import get_or_create_organization

NOW = datetime.now(UTC)
SHEET = [
    {"field_name": "participant_id", "data_type": "string", "description": "",
     "is_unique_id": True, "is_filter": False, "is_metric": False, "is_strata": False},
    {"field_name": "spend", "data_type": "float", "description": "",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
    {"field_name": "visits", "data_type": "integer", "description": "",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
    {"field_name": "converted", "data_type": "boolean", "description": "",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
    {"field_name": "region", "data_type": "string", "description": "",
     "is_unique_id": False, "is_filter": True, "is_metric": False, "is_strata": True},
]  # fmt: skip


def make_experiment(
    runtime: Runtime,
    *,
    organization: str = "acme",
    state: str = "running",
    type_: str = "preassigned",
    configs: tuple[dict[str, Any] | None, ...] = (None, None),
    assigned: dict[str, int] | None = None,
    design: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> tuple[str, list[str]]:
    """An experiment stored directly; ``assigned`` maps participant ids to arm positions."""
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
            type=type_,
            state=state,
            design=design or {},
            seed=7,
            created_at=created_at or NOW,
        )
        experiment.arms = [
            Arm(position=i, name=f"arm{i}", weight=1.0, config=config)
            for i, config in enumerate(configs)
        ]
        session.add(experiment)
        session.flush()
        arm_ids = [a.id for a in experiment.arms]
        if assigned:
            replace_assignments(
                session,
                experiment_id=experiment.id,
                participant_ids=list(assigned),
                arm_ids=[arm_ids[i] for i in assigned.values()],
                strata_json=None,
                assigned_at=NOW,
            )
        return experiment.id, arm_ids


@pytest.fixture
def key(runtime: Runtime, make_key: Callable[..., str]) -> str:
    k = make_key("acme")
    make_experiment(runtime, state="draft")  # registers the participant type "people"
    return k


def call(client: TestClient, key: str, method: str, path: str, body: Any = None) -> Any:
    return client.request(method, path, json=body, headers={"X-API-Key": key})


# Metric definitions -----------------------------------------------------------------------------


REVENUE = {
    "name": "revenue",
    "description": "Purchase value in the week after exposure",
    "unit": "KES",
    "type": "mean",
    "source": {"kind": "event", "event_name": "purchase", "window_seconds": 604800},
}


def test_metric_definitions_round_trip_with_defaults_filled(client: TestClient, key: str) -> None:
    r = call(client, key, "POST", "/v1/metric-definitions", REVENUE)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["source"] == {
        "kind": "event", "event_name": "purchase", "aggregation": "sum", "window_seconds": 604800
    }  # fmt: skip
    assert created["cuped"] is False
    assert call(client, key, "GET", "/v1/metric-definitions/revenue").json() == created
    ratio = {
        "name": "revenue_per_order",
        "type": "ratio",
        "source": {
            "kind": "ratio",
            "numerator": {"event_name": "purchase"},
            "denominator": {"event_name": "purchase"},
        },
    }
    r = call(client, key, "POST", "/v1/metric-definitions", ratio)
    assert r.status_code == 201, r.text
    assert r.json()["source"]["numerator"]["aggregation"] == "sum"
    assert r.json()["source"]["denominator"]["aggregation"] == "count"
    sheet = {
        "name": "spend",
        "type": "mean",
        "source": {"kind": "sheet", "participant_type": "people", "field_name": "spend"},
    }
    assert call(client, key, "POST", "/v1/metric-definitions", sheet).status_code == 201
    listed = call(client, key, "GET", "/v1/metric-definitions").json()["items"]
    assert [d["name"] for d in listed] == ["revenue", "revenue_per_order", "spend"]

    r = call(client, key, "PATCH", "/v1/metric-definitions/revenue", {"cuped": True, "unit": "USD"})
    assert r.status_code == 200, r.text
    assert (r.json()["cuped"], r.json()["unit"], r.json()["type"]) == (True, "USD", "mean")
    r = call(client, key, "PATCH", "/v1/metric-definitions/revenue", {"type": "binary"})
    assert r.status_code == 422  # the stored aggregation (sum) does not fit binary
    assert r.json()["error"]["field"] == "source.aggregation"

    assert call(client, key, "DELETE", "/v1/metric-definitions/spend").status_code == 204
    assert call(client, key, "GET", "/v1/metric-definitions/spend").status_code == 404


def test_metric_definition_names_are_unique_per_organization(
    client: TestClient, key: str, runtime: Runtime, make_key: Callable[..., str]
) -> None:
    assert call(client, key, "POST", "/v1/metric-definitions", REVENUE).status_code == 201
    again = call(client, key, "POST", "/v1/metric-definitions", REVENUE)
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "name"
    other = make_key("globex")
    assert call(client, other, "GET", "/v1/metric-definitions/revenue").status_code == 404
    assert call(client, other, "GET", "/v1/metric-definitions").json()["items"] == []
    assert call(client, other, "POST", "/v1/metric-definitions", REVENUE).status_code == 201


BAD_DEFINITIONS: list[tuple[dict[str, Any], str]] = [
        ({"type": "ratio"}, "source.kind"),
        ({"type": "binary", "source": {"kind": "event", "event_name": "p", "aggregation": "sum"}},
         "source.aggregation"),
        ({"type": "count", "source": {"kind": "event", "event_name": "p", "aggregation": "mean"}},
         "source.aggregation"),
        ({"cuped": True, "source": {"kind": "sheet", "participant_type": "people",
                                    "field_name": "spend"}}, "cuped"),
        ({"source": {"kind": "sheet", "participant_type": "nobody", "field_name": "spend"}},
         "source.participant_type"),
        ({"source": {"kind": "sheet", "participant_type": "people", "field_name": "region"}},
         "source.field_name"),
        ({"type": "binary", "source": {"kind": "sheet", "participant_type": "people",
                                       "field_name": "spend"}}, "source.field_name"),
        ({"type": "count", "source": {"kind": "sheet", "participant_type": "people",
                                      "field_name": "spend"}}, "source.field_name"),
        ({"source": {"kind": "event", "event_name": "p", "window_seconds": 0}},
         "source.event.window_seconds"),
        ({"name": "has space"}, "name"),
        ({"type": "median"}, "type"),
]  # fmt: skip


def test_metric_definitions_that_do_not_fit_get_422_naming_the_field(
    client: TestClient, key: str
) -> None:
    for change, field in BAD_DEFINITIONS:
        r = call(client, key, "POST", "/v1/metric-definitions", {**REVENUE, **change})
        assert r.status_code == 422, (change, r.text)
        assert r.json()["error"]["field"] == field, (change, r.text)


def test_binary_and_count_sheet_metrics_need_boolean_and_integer_fields(
    client: TestClient, key: str
) -> None:
    for name, metric_type, field in (("conv", "binary", "converted"), ("v", "count", "visits")):
        body = {
            "name": name,
            "type": metric_type,
            "source": {"kind": "sheet", "participant_type": "people", "field_name": field},
        }
        assert call(client, key, "POST", "/v1/metric-definitions", body).status_code == 201


# Analysis metrics -------------------------------------------------------------------------------


def test_analysis_metrics_default_to_the_design_and_are_replaced_with_roles(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    design = {"metrics": [{"field_name": "spend", "metric_pct_change": 0.1}]}
    eid, _ = make_experiment(runtime, design=design)
    path = f"/v1/experiments/{eid}/analysis-metrics"
    assert call(client, key, "GET", path).json() == {
        "analysis_metrics": [{"name": "spend", "role": "primary", "guardrail": None}],
        "default": True,
    }
    assert call(client, key, "POST", "/v1/metric-definitions", REVENUE).status_code == 201
    plan = [
        {"name": "revenue"},
        {"name": "visits", "role": "secondary"},
        {"name": "spend", "role": "guardrail", "guardrail": {"direction": "decrease"}},
    ]
    r = call(client, key, "PUT", path, {"analysis_metrics": plan})
    assert r.status_code == 200, r.text
    assert r.json()["default"] is False
    assert [(m["name"], m["role"]) for m in r.json()["analysis_metrics"]] == [
        ("revenue", "primary"), ("visits", "secondary"), ("spend", "guardrail")
    ]  # fmt: skip
    assert r.json()["analysis_metrics"][2]["guardrail"] == {
        "direction": "decrease", "threshold": 0.0, "relative": False, "auto_stop": False
    }  # fmt: skip
    with runtime.sessions() as session:
        actions = [e.action for e in session.query(AuditEntry).filter_by(experiment_id=eid)]
    assert actions == ["analysis_metrics"]
    # A definition in use cannot be deleted.
    r = call(client, key, "DELETE", "/v1/metric-definitions/revenue")
    assert r.status_code == 409
    assert eid in r.json()["error"]["message"]
    # An empty list restores the default.
    assert call(client, key, "PUT", path, {"analysis_metrics": []}).json()["default"] is True


BAD_PLANS: list[tuple[list[dict[str, Any]], str]] = [
        ([{"name": "nothing"}], "analysis_metrics[0].name"),
        ([{"name": "spend"}, {"name": "spend"}], "analysis_metrics[1].name"),
        ([{"name": "spend", "role": "guardrail"}], "analysis_metrics[0].guardrail"),
        ([{"name": "spend", "guardrail": {"direction": "increase"}}],
         "analysis_metrics[0].guardrail"),
        ([{"name": "region"}], "analysis_metrics[0].name"),
        ([{"name": "spend", "role": "tertiary"}], "analysis_metrics[0].role"),
]  # fmt: skip


def test_bad_analysis_metrics_get_422_naming_the_entry(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    eid, _ = make_experiment(runtime)
    for plan, field in BAD_PLANS:
        body = {"analysis_metrics": plan}
        r = call(client, key, "PUT", f"/v1/experiments/{eid}/analysis-metrics", body)
        assert r.status_code == 422, (plan, r.text)
        assert r.json()["error"]["field"] == field, (plan, r.text)


def test_a_sheet_metric_of_another_participant_type_is_refused(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    other = {
        "name": "other_spend",
        "type": "mean",
        "source": {"kind": "sheet", "participant_type": "households", "field_name": "spend"},
    }
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, "acme")
        ds = catalog.get_datasource(session, organization_id=org.id, name="wh")
        assert ds is not None
        catalog.upsert_participant_type(
            session, organization_id=org.id, name="households", datasource=ds,
            table_name="households", unique_id_field="participant_id", fields=SHEET,
            sheet_url=None,
        )  # fmt: skip
    assert call(client, key, "POST", "/v1/metric-definitions", other).status_code == 201
    eid, _ = make_experiment(runtime)
    r = call(
        client, key, "PUT", f"/v1/experiments/{eid}/analysis-metrics",
        {"analysis_metrics": [{"name": "other_spend"}]},
    )  # fmt: skip
    assert r.status_code == 422
    assert "households" in r.json()["error"]["message"]


# Features ---------------------------------------------------------------------------------------

BANNER = {
    "name": "banner",
    "description": "Home page banner copy",
    "type": "string",
    "allowed_values": ["plain", "bold", "festive"],
    "default": "plain",
}


def test_features_round_trip(client: TestClient, key: str) -> None:
    r = call(client, key, "POST", "/v1/features", BANNER)
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in BANNER} == BANNER
    assert call(client, key, "POST", "/v1/features", BANNER).status_code == 409
    flag = {"name": "new_checkout", "type": "boolean", "default": False}
    assert call(client, key, "POST", "/v1/features", flag).status_code == 201
    payload = {"name": "limits", "type": "json", "default": None}
    assert call(client, key, "POST", "/v1/features", payload).json()["default"] is None
    names = [f["name"] for f in call(client, key, "GET", "/v1/features").json()["items"]]
    assert names == ["banner", "limits", "new_checkout"]
    r = call(client, key, "PATCH", "/v1/features/banner", {"default": "bold"})
    assert r.status_code == 200 and r.json()["default"] == "bold"
    assert call(client, key, "DELETE", "/v1/features/new_checkout").status_code == 204
    assert call(client, key, "GET", "/v1/features/new_checkout").status_code == 404


BAD_FEATURES: list[tuple[dict[str, Any], str]] = [
    ({"default": "loud"}, "default"),
    ({"allowed_values": ["plain", 3]}, "allowed_values[1]"),
    ({"allowed_values": ["plain", "plain"]}, "allowed_values[1]"),
    ({"allowed_values": []}, "allowed_values"),
    ({"type": "boolean", "allowed_values": None, "default": "yes"}, "default"),
    ({"type": "number", "allowed_values": None, "default": True}, "default"),
    ({"type": "colour"}, "type"),
]


def test_feature_values_must_fit_the_type_and_allowed_values(client: TestClient, key: str) -> None:
    for change, field in BAD_FEATURES:
        r = call(client, key, "POST", "/v1/features", {**BANNER, **change})
        assert r.status_code == 422, (change, r.text)
        assert r.json()["error"]["field"] == field, (change, r.text)


def _principal(runtime: Runtime, organization: str = "acme") -> Principal:
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, organization)
        return Principal(organization_id=org.id, organization_name=org.name, api_key_id="t")


def test_arm_feature_values_are_checked_against_defined_features(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    assert call(client, key, "POST", "/v1/features", BANNER).status_code == 201
    principal = _principal(runtime)
    with runtime.sessions() as session:
        check_arm_features(
            session, principal, [None, {"features": {"banner": "bold", "undefined": 1}}]
        )
        with pytest.raises(InvalidInput) as refused:
            check_arm_features(session, principal, [{"features": {"banner": "neon"}}])
        assert refused.value.field == "arms[0].config.features.banner"
        with pytest.raises(InvalidInput) as not_object:
            check_arm_features(session, principal, [None, {"features": ["banner"]}])
        assert not_object.value.field == "arms[1].config.features"


def test_a_feature_set_by_a_live_experiment_cannot_be_narrowed_or_deleted(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    assert call(client, key, "POST", "/v1/features", BANNER).status_code == 201
    eid, _ = make_experiment(runtime, configs=(None, {"features": {"banner": "festive"}}))
    r = call(client, key, "PATCH", "/v1/features/banner", {"allowed_values": ["plain", "bold"]})
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "allowed_values" and eid in r.json()["error"]["message"]
    assert call(client, key, "DELETE", "/v1/features/banner").status_code == 409
    widened = ["plain", "bold", "festive", "minimal"]
    r = call(client, key, "PATCH", "/v1/features/banner", {"allowed_values": widened})
    assert r.status_code == 200


def value(client: TestClient, key: str, name: str, pid: str) -> dict[str, Any]:
    r = call(client, key, "GET", f"/v1/features/{name}/value?participant_id={pid}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_feature_value_comes_from_the_participants_arm_in_a_running_experiment(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    assert call(client, key, "POST", "/v1/features", BANNER).status_code == 201
    configs = (None, {"features": {"banner": "festive"}})
    eid, arms = make_experiment(runtime, configs=configs, assigned={"ann": 1, "bob": 0})
    paused, _ = make_experiment(runtime, state="paused", configs=configs, assigned={"cat": 1})
    got = value(client, key, "banner", "ann")
    assert (got["value"], got["source"]) == ("festive", "experiment")
    assert (got["experiment_id"], got["arm_id"]) == (eid, arms[1])
    # The control arm keeps the default, and says which experiment decided it.
    got = value(client, key, "banner", "bob")
    assert (got["value"], got["source"], got["experiment_id"]) == ("plain", "default", eid)
    # Not in a running experiment (only in a paused one): the default, no experiment.
    got = value(client, key, "banner", "cat")
    assert (got["value"], got["source"], got["experiment_id"]) == ("plain", "default", None)
    assert paused != eid
    assert (
        call(client, key, "GET", "/v1/features/nothing/value?participant_id=a").status_code == 404
    )


def test_the_oldest_running_experiment_that_has_the_participant_decides(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    assert call(client, key, "POST", "/v1/features", BANNER).status_code == 201
    newer, _ = make_experiment(
        runtime, configs=({"features": {"banner": "bold"}}, None), assigned={"ann": 0, "dan": 0}
    )
    older, _ = make_experiment(
        runtime,
        configs=(None, {"features": {"banner": "festive"}}),
        assigned={"ann": 1},
        created_at=NOW - timedelta(days=2),
    )
    assert value(client, key, "banner", "ann")["experiment_id"] == older
    got = value(client, key, "banner", "dan")  # only in the newer one
    assert (got["value"], got["experiment_id"]) == ("bold", newer)


def test_online_experiments_assign_newcomers_when_their_feature_is_asked_for(
    client: TestClient, key: str, runtime: Runtime
) -> None:
    flag = {"name": "new_checkout", "type": "boolean", "default": False}
    assert call(client, key, "POST", "/v1/features", flag).status_code == 201
    configs = ({"features": {"new_checkout": False}}, {"features": {"new_checkout": True}})
    eid, arms = make_experiment(runtime, type_="online", configs=configs)
    for pid in ("u1", "u2", "u3", "u4"):
        got = value(client, key, "new_checkout", pid)
        expected = online_arm_index(seed=7, participant_id=pid, weights=[1.0, 1.0])
        assert got["arm_id"] == arms[expected]
        assert got["value"] is (expected == 1)
        with runtime.sessions() as session:
            stored = get_assignment(session, experiment_id=eid, participant_id=pid)
        assert stored is not None and stored[0] == arms[expected]
