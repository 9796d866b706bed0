"""Saved-experiment fixtures: a migrated app database (SQLite and PostgreSQL), a small DuckDB
warehouse of participants registered as a participant type, and factories for experiments."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from xngin.services import experiments, lifecycle
from xngin.services.access import Principal, issue_api_key
from xngin.services.experiment_specs import ExperimentCreate, ExperimentUpdate
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store import organizations as orgs

PEOPLE_ROWS = 400

PEOPLE_SHEET: list[dict[str, Any]] = [
    {"field_name": "participant_id", "data_type": "string", "is_unique_id": True},
    {"field_name": "region", "data_type": "string", "is_filter": True, "is_strata": True},
    {"field_name": "gender", "data_type": "string", "is_filter": True, "is_strata": True},
    {"field_name": "age", "data_type": "integer", "is_filter": True},
    {"field_name": "income", "data_type": "float", "is_metric": True},
    {"field_name": "converted", "data_type": "boolean", "is_metric": True},
]


def people_frame(n: int = PEOPLE_ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(
        {
            "participant_id": [f"P{i:05d}" for i in range(n)],
            "region": rng.choice(["north", "south", "east"], size=n),
            "gender": rng.choice(["f", "m"], size=n),
            "age": rng.integers(18, 70, size=n),
            "income": np.round(rng.lognormal(7, 0.5, size=n), 2),
            "converted": rng.random(n) < 0.3,
        }
    )


@pytest.fixture
def warehouse_url(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.register("frame", people_frame())
        conn.execute("CREATE TABLE people AS SELECT * FROM frame")
    return f"duckdb:///{path}"


def register_people(runtime: Runtime, *, organization: str, warehouse_url: str) -> Principal:
    """An organization with an API key and the ``people`` participant type; its principal."""
    key = issue_api_key(runtime, organization=organization)
    with runtime.sessions.begin() as session:
        org = orgs.get_or_create_organization(session, organization)
        ds = catalog.upsert_datasource(
            session, organization_id=org.id, name="wh", url=warehouse_url, options={}
        )
        catalog.upsert_participant_type(
            session,
            organization_id=org.id,
            name="people",
            datasource=ds,
            table_name="people",
            unique_id_field="participant_id",
            fields=PEOPLE_SHEET,
            sheet_url=None,
        )
        return Principal(
            organization_id=org.id, organization_name=organization, api_key_id=key.key_id
        )


@pytest.fixture
def principal(runtime: Runtime, warehouse_url: str) -> Principal:
    return register_people(runtime, organization="acme", warehouse_url=warehouse_url)


@pytest.fixture
def other_principal(runtime: Runtime, warehouse_url: str) -> Principal:
    """Another organization with the same participant type name."""
    return register_people(runtime, organization="globex", warehouse_url=warehouse_url)


@pytest.fixture
def people() -> pd.DataFrame:
    """The warehouse table's rows, for expectations computed with pandas."""
    return people_frame()


@pytest.fixture
def make_design() -> Callable[..., dict[str, Any]]:
    return design


def design(**overrides: Any) -> dict[str, Any]:
    """A valid experiment body; keyword arguments replace its fields."""
    body: dict[str, Any] = {
        "name": "Reminder SMS",
        "type": "preassigned",
        "participant_type": "people",
        "filters": [{"field_name": "age", "relation": "between", "value": [20, 60]}],
        "arms": [
            {"arm_name": "control", "weight": 1},
            {"arm_name": "sms", "weight": 1, "config": {"template": "hello"}},
        ],
        "strata": ["region"],
        "seed": 42,
    }
    body.update(overrides)
    return body


@pytest.fixture
def make_experiment(runtime: Runtime, principal: Principal) -> Callable[..., str]:
    """Create an experiment (``design(**overrides)``) and bring it to ``state`` through the
    real actions; returns its id."""

    def make(state: str = "draft", **overrides: Any) -> str:
        spec = ExperimentCreate.model_validate(design(**overrides))
        with runtime.sessions.begin() as session:
            experiment_id = experiments.create_experiment(runtime, session, principal, spec).id
        for action in path_to(state, spec.type):
            with runtime.sessions.begin() as session:
                lifecycle.perform_action(
                    runtime,
                    session,
                    principal,
                    experiment_id=experiment_id,
                    action=action,
                    reason="test" if action == "stop" else None,
                )
        if state == "completed":
            # End time may change after commit; the scheduler then completes the experiment.
            past = ExperimentUpdate(end_at=datetime(2000, 1, 1, tzinfo=UTC))
            with runtime.sessions.begin() as session:
                experiments.update_experiment(
                    runtime, session, principal, experiment_id=experiment_id, changes=past
                )
            with runtime.sessions.begin() as session:
                lifecycle.advance_schedules(session, datetime.now(UTC))
        return experiment_id

    return make


def path_to(state: str, experiment_type: str) -> list[str]:
    """The actions that lead from draft to ``state`` (completed: to running, then the clock)."""
    head = ["assign", "commit"] if experiment_type == "preassigned" else ["commit"]
    return {
        "draft": [],
        "assigned": ["assign"],
        "committed": head,
        "running": [*head, "start"],
        "paused": [*head, "start", "pause"],
        "completed": [*head, "start"],
        "stopped": [*head, "start", "stop"],
        "abandoned": ["abandon"],
    }[state]
