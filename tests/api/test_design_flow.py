"""The design flow through the API on real warehouses: fields, power, assignment.

The participant table is the demo generator's (a few thousand rows), loaded into DuckDB and
PostgreSQL; expectations are computed with pandas from the same rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from xngin.services.demo import DEMO_SHEET, generate_beneficiaries
from xngin.testing import servers

N = 3000


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return generate_beneficiaries(N, seed=7)


@pytest.fixture
def app_database_url(tmp_path: Path) -> str:
    """The app database is not what these tests vary: SQLite only (the warehouse varies)."""
    return f"sqlite:///{tmp_path / 'app.sqlite'}"


CLICKHOUSE_DDL = """
CREATE TABLE {db}.beneficiaries (
    participant_id String, region Nullable(String), gender Nullable(String), age Int64,
    household_size Int64, monthly_income Nullable(Float64), has_phone UInt8,
    enrolled_on Date, last_contact_at DateTime, savings_balance Float64,
    completed_training UInt8, attended_meetings Int64
) ENGINE = MergeTree ORDER BY participant_id
"""


def _load_clickhouse(database: str, people: pd.DataFrame) -> None:
    from clickhouse_driver import Client

    client = Client(host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT)
    client.execute(CLICKHOUSE_DDL.format(db=database))
    rows = [
        tuple(None if (isinstance(v, float) and np.isnan(v)) else v for v in row)
        for row in people.astype(object).itertuples(index=False, name=None)
    ]
    rows = [(*r[:6], int(r[6]), r[7], r[8].to_pydatetime(), r[9], int(r[10]), r[11]) for r in rows]
    client.execute(f"INSERT INTO {database}.beneficiaries VALUES", rows)
    client.disconnect()


@pytest.fixture(params=["duckdb", "postgres", "clickhouse"])
def warehouse_url(
    request: pytest.FixtureRequest, tmp_path: Path, people: pd.DataFrame
) -> Iterator[str]:
    if request.param == "duckdb":
        import duckdb

        path = tmp_path / "wh.duckdb"
        with duckdb.connect(str(path)) as conn:
            conn.register("frame", people)
            conn.execute("CREATE TABLE beneficiaries AS SELECT * FROM frame")
        yield f"duckdb:///{path}"
    elif request.param == "clickhouse":
        with servers.temporary_clickhouse_database("xngin_wh") as database:
            _load_clickhouse(database, people)
            yield (
                f"clickhouse+native://default:@{servers.CLICKHOUSE_HOST}:"
                f"{servers.CLICKHOUSE_PORT}/{database}"
            )
    else:
        with servers.temporary_postgres_database("xngin_wh") as url:
            engine = sa.create_engine(url)
            people.to_sql("beneficiaries", engine, index=False)
            engine.dispose()
            yield url


@pytest.fixture
def key(client: TestClient, make_key: Callable[..., str], warehouse_url: str) -> str:
    k = make_key("acme")
    r = client.post(
        "/v1/datasources", json={"name": "wh", "url": warehouse_url}, headers={"X-API-Key": k}
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "ok"
    r = client.post(
        "/v1/participant-types",
        json={
            "name": "people",
            "datasource": "wh",
            "table_name": "beneficiaries",
            "fields": DEMO_SHEET,
        },
        headers={"X-API-Key": k},
    )
    assert r.status_code == 201, r.text
    assert r.json()["drift"] == []
    return k


def test_filters_list_values_computed_in_the_warehouse(
    client: TestClient, key: str, people: pd.DataFrame
) -> None:
    r = client.get("/v1/filters", params={"participant_type": "people"}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    fields = {f["field_name"]: f for f in r.json()["fields"]}
    assert set(fields) == {row["field_name"] for row in DEMO_SHEET if row["is_filter"]}
    region = fields["region"]["values"]
    assert region["complete"] is True
    assert {d["value"]: d["count"] for d in region["distinct"]} == people[
        "region"
    ].value_counts().to_dict()
    gender = {d["value"]: d["count"] for d in fields["gender"]["values"]["distinct"]}
    assert gender[None] == int(people["gender"].isna().sum())
    income = fields["monthly_income"]["values"]
    assert income["min"] == pytest.approx(people["monthly_income"].min())
    assert income["max"] == pytest.approx(people["monthly_income"].max())
    assert income["null_count"] == int(people["monthly_income"].isna().sum())


def test_metrics_and_strata_list_their_fields(client: TestClient, key: str) -> None:
    for path, flag in (("/v1/metrics", "is_metric"), ("/v1/strata", "is_strata")):
        r = client.get(path, params={"participant_type": "people"}, headers={"X-API-Key": key})
        assert r.status_code == 200
        assert [f["field_name"] for f in r.json()["fields"]] == [
            row["field_name"] for row in DEMO_SHEET if row[flag]
        ]


def test_unknown_participant_type_is_404_naming_the_field(client: TestClient, key: str) -> None:
    r = client.get("/v1/strata", params={"participant_type": "nobody"}, headers={"X-API-Key": key})
    assert r.status_code == 404
    assert r.json()["error"]["field"] == "participant_type"


def test_power_uses_the_filtered_audience_baseline(
    client: TestClient, key: str, people: pd.DataFrame
) -> None:
    body = {
        "participant_type": "people",
        "filters": [
            {"field_name": "region", "relation": "includes", "value": ["Nairobi", "Kisumu"]}
        ],
        "arms": [{"arm_name": "control"}, {"arm_name": "sms"}, {"arm_name": "call", "weight": 2}],
        "metrics": [
            {"field_name": "completed_training", "metric_pct_change": 0.1},
            {"field_name": "savings_balance", "metric_target": 6000},
        ],
        "multiple_comparison": "bonferroni",
    }
    r = client.post("/v1/power", json=body, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    audience = people[people["region"].isin(["Nairobi", "Kisumu"])]
    binary, numeric = r.json()["analyses"]
    assert binary["metric_type"] == "binary"
    assert binary["available_n"] == len(audience)
    assert binary["baseline"] == pytest.approx(audience["completed_training"].mean())
    assert binary["target"] == pytest.approx(audience["completed_training"].mean() * 1.1)
    assert numeric["stddev"] == pytest.approx(audience["savings_balance"].std(), rel=1e-9)
    assert len(numeric["n_per_arm"]) == 3
    # The double-weight arm gets twice the others' share.
    assert numeric["n_per_arm"][2] == pytest.approx(2 * numeric["n_per_arm"][0], abs=2)
    assert numeric["power_curve"] and all(p["n"] > 0 for p in numeric["power_curve"])


def _assign(client: TestClient, key: str, **overrides: object) -> dict:
    body = {
        "participant_type": "people",
        "filters": [{"field_name": "region", "relation": "excludes", "value": ["Garissa"]}],
        "arms": [{"arm_name": "control"}, {"arm_name": "sms"}, {"arm_name": "visit", "weight": 2}],
        "strata": ["region", "gender", "age"],
        "seed": 11,
        **overrides,
    }
    r = client.post("/v1/assign", json=body, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()


def test_assignment_respects_filters_and_balances_every_stratum(
    client: TestClient, key: str, people: pd.DataFrame
) -> None:
    result = _assign(client, key)
    audience = people[people["region"].fillna("") != "Garissa"]
    assert result["sample_size"] == len(audience)
    ids = [a["participant_id"] for a in result["assignments"]]
    assert len(ids) == len(set(ids)) == len(audience)
    assert set(ids) == set(audience["participant_id"])
    shares = np.array([1, 1, 2]) / 4
    sizes = np.array([a["size"] for a in result["arm_sizes"]])
    assert np.all(np.abs(sizes - len(audience) * shares) < 1)
    for stratum in result["strata_counts"]:
        counts = np.array(stratum["arm_sizes"])
        assert np.all(np.abs(counts - counts.sum() * shares) < 1), stratum
    assert result["balance_check"]["numerator_df"] > 0
    assert 0 <= result["balance_check"]["p_value"] <= 1


def test_assignment_is_reproducible_and_seed_dependent(client: TestClient, key: str) -> None:
    first = _assign(client, key, desired_n=1000)
    again = _assign(client, key, desired_n=1000)
    other = _assign(client, key, desired_n=1000, seed=12)
    assert first["assignments"] == again["assignments"]
    assert first["sample_size"] == 1000
    assert {a["participant_id"] for a in first["assignments"]} != {
        a["participant_id"] for a in other["assignments"]
    }


def test_assignment_csv_streams_every_participant(client: TestClient, key: str) -> None:
    r = client.post(
        "/v1/assign?format=csv",
        json={
            "participant_type": "people",
            "arms": [{"arm_name": "a"}, {"arm_name": "b"}],
            "strata": ["gender"],
            "seed": 3,
        },
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == N
    assert set(rows[0]) == {"participant_id", "arm_id", "arm_name", "gender"}
    assert {row["arm_name"] for row in rows} == {"a", "b"}


@pytest.mark.parametrize(
    ("body_change", "field"),
    [
        (
            {"filters": [{"field_name": "savings_balance", "relation": "includes", "value": [1]}]},
            "filters[0].field_name",
        ),
        (
            {"filters": [{"field_name": "age", "relation": "includes", "value": ["old"]}]},
            "filters[0].value",
        ),
        (
            {"filters": [{"field_name": "age", "relation": "between", "value": [1]}]},
            "filters[0].value",
        ),
        ({"strata": ["savings_balance"]}, "strata[0]"),
        ({"arms": [{"arm_name": "a"}, {"arm_name": "a"}]}, "arms[1].arm_name"),
        ({"arms": [{"arm_name": "a"}, {"arm_name": "b", "weight": -1}]}, "arms[1].weight"),
    ],
)
def test_bad_designs_get_422_naming_the_field(
    client: TestClient, key: str, body_change: dict, field: str
) -> None:
    body = {
        "participant_type": "people",
        "arms": [{"arm_name": "a"}, {"arm_name": "b"}],
        "strata": [],
        "seed": 1,
        **body_change,
    }
    r = client.post("/v1/assign", json=body, headers={"X-API-Key": key})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


HOSTILE = [
    "'; DROP TABLE beneficiaries; --",
    "Nairobi' OR '1'='1",
    "/* comment */ Nairobi",
    "ñandú 🐍 \u202e",
    "x" * 10_000,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_filter_values_match_nothing_and_never_500(
    client: TestClient, key: str, value: str
) -> None:
    r = client.post(
        "/v1/assign",
        json={
            "participant_type": "people",
            "filters": [{"field_name": "region", "relation": "includes", "value": [value]}],
            "arms": [{"arm_name": "a"}, {"arm_name": "b"}],
            "seed": 1,
        },
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sample_size"] == 0
    # The table is still there.
    again = client.get(
        "/v1/strata", params={"participant_type": "people"}, headers={"X-API-Key": key}
    )
    assert again.status_code == 200


@pytest.mark.parametrize("name", HOSTILE + ['region"; --', "nonexistent"])
def test_hostile_field_names_get_422(client: TestClient, key: str, name: str) -> None:
    r = client.post(
        "/v1/power",
        json={
            "participant_type": "people",
            "filters": [{"field_name": name, "relation": "includes", "value": ["a"]}],
            "arms": [{"arm_name": "a"}, {"arm_name": "b"}],
            "metrics": [{"field_name": "age", "metric_pct_change": 0.1}],
        },
        headers={"X-API-Key": key},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] in ("filters[0].field_name", "metrics[0]")


def test_a_table_drifted_from_its_sheet_gets_409_not_500(
    client: TestClient, key: str, warehouse_url: str
) -> None:
    from xngin.dwh.engines import get_engine

    engine = get_engine(name="wh", url=warehouse_url)  # the app's own engine for this datasource
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE beneficiaries DROP COLUMN region")
    headers = {"X-API-Key": key}
    r = client.get("/v1/filters", params={"participant_type": "people"}, headers=headers)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("warehouse_query_failed", "participant_type")
    drift = client.get("/v1/participant-types/people", headers=headers).json()["drift"]
    assert [(d["kind"], d["field_name"]) for d in drift] == [("column_dropped", "region")]


def test_audience_size_counts_the_filtered_participants(
    client: TestClient, key: str, people: pd.DataFrame
) -> None:
    body = {
        "participant_type": "people",
        "filters": [
            {"field_name": "region", "relation": "includes", "value": ["Nairobi", None]},
            {"field_name": "age", "relation": "between", "value": [30, None]},
        ],
    }
    r = client.post("/v1/audience-size", json=body, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    expected = people[
        (people["region"].isin(["Nairobi"]) | people["region"].isna()) & (people["age"] >= 30)
    ]
    assert r.json() == {"participant_type": "people", "count": len(expected)}
    bad = {**body, "filters": [{"field_name": "age", "relation": "between", "value": ["x", 1]}]}
    r = client.post("/v1/audience-size", json=bad, headers={"X-API-Key": key})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "filters[0].value")


def test_numeric_and_date_fields_carry_a_histogram_matching_numpy(
    client: TestClient, key: str, people: pd.DataFrame
) -> None:
    plain = client.get(
        "/v1/filters", params={"participant_type": "people"}, headers={"X-API-Key": key}
    )
    assert set(next(f for f in plain.json()["fields"] if f["field_name"] == "age")["values"]) == {
        "min",
        "max",
        "null_count",
    }
    r = client.get(
        "/v1/filters",
        params={"participant_type": "people", "histograms": "true"},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text
    fields = {f["field_name"]: f["values"] for f in r.json()["fields"]}
    assert "histogram" not in fields["region"]
    income = fields["monthly_income"]
    assert set(income) == {"min", "max", "null_count", "histogram"}
    counts, edges = np.histogram(people["monthly_income"].dropna(), bins=20)
    assert income["histogram"]["counts"] == counts.tolist()
    assert income["histogram"]["edges"] == pytest.approx(edges.tolist())
    assert "unit" not in income["histogram"]
    # Dates are binned as days since 1970-01-01 (the demo's enrolment dates are whole days).
    enrolled = fields["enrolled_on"]["histogram"]
    days = (pd.to_datetime(people["enrolled_on"]) - pd.Timestamp("1970-01-01")).dt.days
    counts, edges = np.histogram(days.to_numpy(dtype=float), bins=20)
    assert enrolled["unit"] == "epoch_days"
    assert enrolled["counts"] == counts.tolist()
    assert enrolled["edges"] == pytest.approx(edges.tolist())
    contact = fields["last_contact_at"]["histogram"]
    seconds = (pd.to_datetime(people["last_contact_at"]) - pd.Timestamp("1970-01-01")).dt
    counts, _ = np.histogram(seconds.total_seconds().to_numpy(), bins=20)
    assert (contact["unit"], contact["counts"]) == ("epoch_seconds", counts.tolist())
