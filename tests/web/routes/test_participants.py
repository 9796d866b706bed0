"""Participants pages: datasources and types, fields with their values, drift, isolation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from xngin.services.demo import DEMO_SHEET, DEMO_TABLE
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store import organizations as orgs


def test_the_participants_page_lists_types_and_datasources(
    signed_in: TestClient, read_page: Callable[[str], Any]
) -> None:
    response = signed_in.get("/ui/participants")
    assert response.status_code == 200
    page = read_page(response.text)
    link = page.find("a", href="/ui/participants/beneficiaries")
    assert link.text == "beneficiaries"
    assert "duckdb" in page.text()


def test_field_values_are_drawn_from_the_warehouse(
    signed_in: TestClient, people: pd.DataFrame, read_page: Callable[[str], Any]
) -> None:
    response = signed_in.get("/ui/participants/beneficiaries")
    assert response.status_code == 200
    page = read_page(response.text)
    region = page.find("article", id="field-region")
    bars = page.within(region, "rect", class_="bar")
    counted = {b.get("data-label"): float(b.get("data-value") or 0) for b in bars}
    assert counted == {k: float(v) for k, v in people["region"].value_counts().items()}
    (age_range,) = page.within(page.find("article", id="field-age"), "rect", class_="range")
    assert float(age_range.get("data-min") or 0) == people["age"].min()
    assert float(age_range.get("data-max") or 0) == people["age"].max()
    roles = page.find("article", id="field-region").text
    assert "filter" in roles and "strata" in roles


def test_drift_between_sheet_and_table_is_shown(
    signed_in: TestClient, org: Any, web_runtime: Runtime, warehouse_path: Path
) -> None:
    sheet = [
        *DEMO_SHEET,
        {"field_name": "shoe_size", "data_type": "integer", "description": "", "is_filter": True},
    ]
    with web_runtime.sessions.begin() as session:
        found = orgs.get_organization_by_name(session, org.name)
        assert found is not None
        ds = catalog.get_datasource(session, organization_id=found.id, name="demo")
        assert ds is not None
        catalog.upsert_participant_type(
            session,
            organization_id=found.id,
            name="drifted",
            datasource=ds,
            table_name=DEMO_TABLE,
            unique_id_field="participant_id",
            fields=sheet,
            sheet_url=None,
        )
    response = signed_in.get("/ui/participants/drifted")
    assert response.status_code == 200
    assert "The sheet and the table differ" in response.text
    assert "shoe_size" in response.text


def test_another_organizations_participant_type_is_not_found(
    web_app: Any, signed_in: TestClient, web_runtime: Runtime
) -> None:
    response = signed_in.get("/ui/participants/not-ours")
    assert response.status_code == 404
    assert "participant type &#39;not-ours&#39; does not exist" in response.text
