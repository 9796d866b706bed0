"""GET /v1/experiments/{id}/analysis/history: the looks the analysis recorded, per metric and arm.

A running experiment on a sheet metric of a DuckDB warehouse is set up through the API on both
app-database backends (the ``runtime`` fixture); the history's numbers must be the analysis's own
always-valid results at that look, and other organizations must not see it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from fastapi.testclient import TestClient

SHEET = [
    {"field_name": "participant_id", "data_type": "string", "description": "id",
     "is_unique_id": True, "is_filter": False, "is_metric": False, "is_strata": False},
    {"field_name": "score", "data_type": "float", "description": "score",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
]  # fmt: skip


@pytest.fixture
def warehouse_url(tmp_path: Path) -> str:
    rng = np.random.default_rng(2)
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE people AS SELECT unnest($ids) AS participant_id,"
            " unnest($scores)::DOUBLE AS score",
            {"ids": [f"P{i:03d}" for i in range(300)], "scores": list(rng.normal(50, 10, 300))},
        )
    return f"duckdb:///{path}"


def start_experiment(client: TestClient, headers: dict[str, str], warehouse_url: str) -> str:
    """Register the warehouse and start a two-arm experiment on ``score``; returns its id."""
    r = client.post("/v1/datasources", json={"name": "wh", "url": warehouse_url}, headers=headers)
    assert r.status_code == 201, r.text
    r = client.post(
        "/v1/participant-types",
        json={"name": "people", "datasource": "wh", "table_name": "people", "fields": SHEET},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body = {
        "name": "history", "type": "preassigned", "participant_type": "people",
        "arms": [{"arm_name": "control"}, {"arm_name": "nudge"}], "strata": [], "seed": 4,
        "metrics": [{"field_name": "score", "metric_pct_change": 0.1}],
    }  # fmt: skip
    r = client.post("/v1/experiments", json=body, headers=headers)
    assert r.status_code == 201, r.text
    experiment_id = str(r.json()["id"])
    for action in ("assign", "commit", "start"):
        r = client.post(f"/v1/experiments/{experiment_id}/{action}", headers=headers)
        assert r.status_code == 200, r.text
    return experiment_id


def test_the_history_holds_the_analysis_look_in_the_documented_shape(
    client: TestClient, make_key: Callable[..., str], warehouse_url: str
) -> None:
    headers = {"X-API-Key": make_key("acme")}
    experiment_id = start_experiment(client, headers, warehouse_url)
    empty = client.get(f"/v1/experiments/{experiment_id}/analysis/history", headers=headers)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"experiment_id": experiment_id, "items": []}

    analysis = client.get(f"/v1/experiments/{experiment_id}/analysis", headers=headers).json()
    # A second analysis within the minute uses the stored look but records none.
    again = client.get(f"/v1/experiments/{experiment_id}/analysis", headers=headers)
    assert again.status_code == 200, again.text
    r = client.get(f"/v1/experiments/{experiment_id}/analysis/history", headers=headers)
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    (metric,) = analysis["metrics"]
    _, nudge = metric["arms"]
    assert {k: item[k] for k in ("metric_name", "arm_id", "arm_name")} == {
        "metric_name": "score",
        "arm_id": nudge["arm_id"],
        "arm_name": "nudge",
    }
    (look,) = item["looks"]
    assert datetime.fromisoformat(look["at"]) == datetime.fromisoformat(analysis["computed_at"])
    expected: dict[str, Any] = {
        "n": nudge["n"],
        "effect": nudge["effect"],
        "always_valid_p_value": nudge["always_valid_p_value"],
        "cs_lower": nudge["always_valid_ci_lower"],
        "cs_upper": nudge["always_valid_ci_upper"],
    }
    assert {k: look[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert look["n"] + look["baseline_n"] == 300


def test_the_history_is_private_to_the_experiments_organization(
    client: TestClient, make_key: Callable[..., str], warehouse_url: str
) -> None:
    headers = {"X-API-Key": make_key("acme")}
    experiment_id = start_experiment(client, headers, warehouse_url)
    client.get(f"/v1/experiments/{experiment_id}/analysis", headers=headers)
    other = {"X-API-Key": make_key("globex")}
    r = client.get(f"/v1/experiments/{experiment_id}/analysis/history", headers=other)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/experiments/nope/analysis/history", headers=headers)
    assert r.status_code == 404, r.text
    r = client.get(f"/v1/experiments/{experiment_id}/analysis/history")
    assert r.status_code == 401, r.text
