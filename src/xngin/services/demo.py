"""`xngin demo`: a ready-to-use embedded installation with a realistic participant table.

Creates once, under the data directory: the SQLite app database (migrated), a DuckDB warehouse
holding ``beneficiaries`` (a cash-transfer program's participants), the datasource and participant
type pointing at it, and an API key. Re-running reuses all of it and issues a fresh key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from xngin.services.access import DEFAULT_ORGANIZATION, issue_api_key
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store import organizations as orgs
from xngin.store.db import upgrade

DEMO_DATASOURCE = "demo"
DEMO_TABLE = "beneficiaries"
DEMO_PARTICIPANT_TYPE = "beneficiaries"
DEMO_ROWS = 120_000
DEMO_SEED = 20261121

REGIONS = ["Nairobi", "Mombasa", "Kisumu", "Nakuru", "Eldoret", "Garissa"]
REGION_WEIGHTS = [0.3, 0.18, 0.16, 0.14, 0.12, 0.10]


def _row(
    name: str,
    data_type: str,
    description: str,
    *,
    unique_id: bool = False,
    filter_: bool = False,
    metric: bool = False,
    strata: bool = False,
) -> dict[str, Any]:
    return {
        "field_name": name,
        "data_type": data_type,
        "description": description,
        "is_unique_id": unique_id,
        "is_filter": filter_,
        "is_metric": metric,
        "is_strata": strata,
        "extra": "",
    }


DEMO_SHEET: list[dict[str, Any]] = [
    _row("participant_id", "string", "Program ID of the beneficiary", unique_id=True),
    _row("region", "string", "Region of residence", filter_=True, strata=True),
    _row("gender", "string", "Self-reported gender", filter_=True, strata=True),
    _row("age", "integer", "Age in years at enrolment", filter_=True, strata=True),
    _row("household_size", "integer", "People in the household", filter_=True, metric=True),
    _row(
        "monthly_income",
        "float",
        "Monthly household income (KES); may be missing",
        filter_=True,
        metric=True,
    ),
    _row("has_phone", "boolean", "Owns a mobile phone", filter_=True, strata=True),
    _row("enrolled_on", "date", "Date the beneficiary enrolled", filter_=True),
    _row("last_contact_at", "timestamp", "Last time the program reached them", filter_=True),
    _row("savings_balance", "float", "Savings balance (KES) at last survey", metric=True),
    _row(
        "completed_training",
        "boolean",
        "Completed the financial-literacy training",
        filter_=True,
        metric=True,
    ),
    _row("attended_meetings", "integer", "Group meetings attended this year", metric=True),
]


def generate_beneficiaries(n: int = DEMO_ROWS, seed: int = DEMO_SEED) -> pd.DataFrame:
    """Synthetic but plausible participants: correlated income, savings and training uptake."""
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, size=n, p=REGION_WEIGHTS)
    region_effect = (
        pd.Series(region)
        .map(dict(zip(REGIONS, [1.4, 1.2, 0.9, 1.0, 0.95, 0.7], strict=True)))
        .to_numpy()
    )
    gender = rng.choice(["female", "male", "other"], size=n, p=[0.56, 0.43, 0.01]).astype(object)
    gender[rng.random(n) < 0.02] = None
    age = np.clip(np.round(rng.normal(36, 11, n)), 18, 85).astype(int)
    household = np.clip(rng.poisson(4.2, n), 1, 14)
    income = np.round(rng.lognormal(9.3, 0.6, n) * region_effect, 0)
    income_missing = rng.random(n) < 0.07
    has_phone = rng.random(n) < np.clip(
        0.55 + 0.25 * (region_effect - 1) - 0.004 * (age - 36), 0.1, 0.98
    )
    enrolled = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    contact = pd.Timestamp("2025-06-01") + pd.to_timedelta(
        rng.integers(0, 500 * 86400, n), unit="s"
    )
    logit = -0.6 + 0.5 * has_phone + 0.00002 * income - 0.01 * (age - 36)
    trained = rng.random(n) < 1 / (1 + np.exp(-logit))
    savings = np.maximum(0.0, np.round(0.35 * income + 900 * trained + rng.normal(0, 1500, n), 2))
    meetings = rng.poisson(3 + 2 * trained)
    return pd.DataFrame(
        {
            "participant_id": [f"B{i:07d}" for i in range(1, n + 1)],
            "region": region,
            "gender": gender,
            "age": age,
            "household_size": household.astype(int),
            "monthly_income": np.where(income_missing, np.nan, income),
            "has_phone": has_phone,
            "enrolled_on": enrolled.date,
            "last_contact_at": contact,
            "savings_balance": savings,
            "completed_training": trained,
            "attended_meetings": meetings.astype(int),
        }
    )


def write_demo_warehouse(path: Path, *, n: int = DEMO_ROWS) -> None:
    """Write the beneficiaries table into a DuckDB file (replacing a half-written one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.duckdb")
    tmp.unlink(missing_ok=True)
    frame = generate_beneficiaries(n)
    with duckdb.connect(str(tmp)) as conn:
        conn.register("frame", frame)
        conn.execute(f"CREATE TABLE {DEMO_TABLE} AS SELECT * FROM frame")  # noqa: S608 - constant
        conn.execute(f"ALTER TABLE {DEMO_TABLE} ADD PRIMARY KEY (participant_id)")
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class DemoSetup:
    api_key: str
    warehouse_path: Path
    created_warehouse: bool


def prepare_demo(runtime: Runtime) -> DemoSetup:
    """Make the embedded installation ready (idempotent) and issue an API key for it."""
    data_dir = runtime.settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(runtime.settings.resolved_database_url)
    warehouse = data_dir / "warehouse.duckdb"
    created = not warehouse.exists()
    if created:
        write_demo_warehouse(warehouse)
    with runtime.sessions.begin() as session:
        org = orgs.get_or_create_organization(session, DEFAULT_ORGANIZATION)
        ds = catalog.upsert_datasource(
            session,
            organization_id=org.id,
            name=DEMO_DATASOURCE,
            url=f"duckdb:///{warehouse}",
            options={"connect_args": {"read_only": True}},
        )
        catalog.upsert_participant_type(
            session,
            organization_id=org.id,
            name=DEMO_PARTICIPANT_TYPE,
            datasource=ds,
            table_name=DEMO_TABLE,
            unique_id_field="participant_id",
            fields=DEMO_SHEET,
            sheet_url=None,
        )
    key = issue_api_key(runtime, organization=DEFAULT_ORGANIZATION, name="demo")
    return DemoSetup(api_key=key.plaintext, warehouse_path=warehouse, created_warehouse=created)
