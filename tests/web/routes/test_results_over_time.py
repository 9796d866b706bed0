"""The results page's sequential view over time for a running experiment: the confidence
sequence band and the always-valid p-value drawn from the stored looks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from xngin.services.runtime import Runtime
from xngin.store.analysis_looks import LookRow, add_looks, list_looks
from xngin.store.models import Experiment

PageReader = Callable[[str], Any]


def start_through_the_ui(
    client: TestClient, post_form: Callable[..., Any], form: dict[str, Any]
) -> str:
    saved = post_form(client, "/ui/design", {**form, "op": "save"}, follow_redirects=False)
    experiment_id = str(saved.headers["location"]).rsplit("/", 1)[-1]
    for action in ("commit", "start"):
        moved = post_form(
            client, f"/ui/experiments/{experiment_id}/actions/{action}", {},
            follow_redirects=False,
        )  # fmt: skip
        assert moved.status_code == 303, moved.text[:500]
    return experiment_id


def test_a_running_experiment_shows_its_confidence_sequence_and_p_value_over_time(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., Any],
    web_runtime: Runtime,
    read_page: PageReader,
) -> None:
    experiment_id = start_through_the_ui(signed_in, post_form, design_form())
    day_ago = datetime.now(UTC) - timedelta(days=1)
    with web_runtime.sessions.begin() as session:
        sms = session.get_one(Experiment, experiment_id).arms[1].id
        # A wide, inconclusive earlier look: the analysis below continues from it.
        earlier = LookRow(
            metric_name="savings_balance", arm_id=sms, at=day_ago, n=10, baseline_n=10,
            effect=0.0, std_error=1e4, always_valid_p_value=0.9, cs_lower=-1e6, cs_upper=1e6,
            tau2=1.0,
        )  # fmt: skip
        add_looks(session, experiment_id=experiment_id, looks=[earlier])

    response = signed_in.get(f"/ui/experiments/{experiment_id}/results")
    assert response.status_code == 200, response.text[:1000]
    with web_runtime.sessions.begin() as session:
        first, latest = list_looks(session, experiment_id)
    assert first.at == day_ago and latest.always_valid_p_value <= 0.9
    page = read_page(response.text)
    section = page.find("section", class_="card metric-result", data_metric="savings_balance")
    assert page.within(section, "div", class_="sequential-view")
    looks = page.within(section, "circle", class_="look")
    days = [float(c.get("data-x") or "nan") for c in looks]
    assert days[0] == 0.0
    assert days[1] == pytest.approx((latest.at - day_ago).total_seconds() / 86400)
    assert float(looks[1].get("data-lower") or "nan") == pytest.approx(latest.cs_lower)
    assert float(looks[1].get("data-upper") or "nan") == pytest.approx(latest.cs_upper)
    assert page.within(section, "polygon", class_="sequence-band")
    (marked,) = page.within(section, "circle", class_="marked")
    assert float(marked.get("data-y") or "nan") == pytest.approx(latest.always_valid_p_value)


def test_an_experiment_that_has_not_started_has_no_view_over_time(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., Any],
    read_page: PageReader,
) -> None:
    saved = post_form(
        signed_in, "/ui/design", {**design_form(), "op": "save"}, follow_redirects=False
    )
    experiment_id = str(saved.headers["location"]).rsplit("/", 1)[-1]
    response = signed_in.get(f"/ui/experiments/{experiment_id}/results")
    assert response.status_code == 200, response.text[:1000]
    page = read_page(response.text)
    assert page.find_all("div", class_="sequential-view") == []
    assert page.find_all("circle", class_="look") == []
