"""The design page through the app: live count, errors next to their inputs, power, preview,
CSV, and saving exactly the previewed assignment. Expected numbers come from pandas over the
same participants, and the required n from statsmodels."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from statsmodels.stats.power import TTestIndPower

PageReader = Callable[[str], Any]


def _design(
    client: TestClient, post_form: Callable[..., Any], form: dict[str, Any], op: str
) -> Any:
    return post_form(client, "/ui/design", {**form, "op": op}, follow_redirects=False)


def _error_follows_its_input(page: Any, name: str) -> list[str]:
    """The messages placed for ``name``, checked to sit between it and the next input."""
    control = page.by_name(name)
    following = page.next_input_after(control)
    errors = [
        e
        for e in page.elements
        if e.tag == "p"
        and e.get("data-field") == name
        and e.position > control.position
        and (following is None or e.position < following.position)
    ]
    assert errors, f"no error right after {name}"
    assert control.get("aria-invalid") == "true"
    assert (control.get("aria-describedby") or "").startswith(errors[0].get("id") or "?")
    return [" ".join(e.text.split()) for e in errors]


def test_design_without_a_participant_type_offers_the_types(signed_in: TestClient) -> None:
    response = signed_in.get("/ui/design")
    assert response.status_code == 200
    assert "/ui/design?participant_type=beneficiaries" in response.text


def test_the_design_page_counts_the_whole_table_at_first(
    signed_in: TestClient, people: pd.DataFrame, read_page: PageReader
) -> None:
    response = signed_in.get("/ui/design?participant_type=beneficiaries")
    assert response.status_code == 200
    page = read_page(response.text)
    assert f"{len(people):,} participants match" in page.find("p", id="audience-count").text
    assert page.by_name("arms[1].arm_name").get("value") == "treatment"


def test_the_count_endpoint_answers_for_the_filters(
    signed_in: TestClient, people: pd.DataFrame, post_form: Callable[..., Any]
) -> None:
    form = {
        "participant_type": "beneficiaries",
        "filters[0].field_name": "region",
        "filters[0].relation": "includes",
        "filters[0].value": "Nairobi, Kisumu",
        "filters[1].field_name": "has_phone",
        "filters[1].relation": "includes",
        "filters[1].value": "true",
    }
    response = post_form(signed_in, "/ui/design/count", form)
    assert response.status_code == 200
    expected = people["region"].isin(["Nairobi", "Kisumu"]) & people["has_phone"]
    assert response.json() == {"count": int(expected.sum()), "errors": []}


def test_the_count_endpoint_points_at_the_bad_input_as_the_page_numbers_it(
    signed_in: TestClient, post_form: Callable[..., Any]
) -> None:
    form = {
        "participant_type": "beneficiaries",
        "filters[0].field_name": "",  # a blank row before the bad one
        "filters[1].field_name": "age",
        "filters[1].relation": "between",
        "filters[1].value": "old, 60",
    }
    response = post_form(signed_in, "/ui/design/count", form)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["input"] == "f-filters-1-value"
    assert "does not fit field 'age' of type integer" in error["message"]


def test_the_count_endpoint_needs_the_csrf_header(signed_in: TestClient) -> None:
    response = signed_in.post("/ui/design/count", data={"participant_type": "beneficiaries"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("fields", "name", "words"),
    [
        ({"filters[0].value": "twenty, 60"}, "filters[0].value", "of type integer"),
        ({"filters[0].value": "60, 20"}, "filters[0].value", "above upper bound"),
        ({"filters[0].relation": "between", "filters[0].field_name": "region"},
         "filters[0].relation", "between does not apply"),
        ({"arms[1].weight": "lots"}, "arms[1].weight", "valid number"),
        ({"arms[1].arm_name": "control"}, "arms[1].arm_name", "used twice"),
        ({"metrics[0].field_name": "region"}, "metrics[0].field_name", "not a metric field"),
        ({"alpha": "1.5"}, "alpha", "less than 1"),
    ],
)  # fmt: skip
def test_errors_are_shown_next_to_the_field_at_fault(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    read_page: PageReader,
    fields: dict[str, str],
    name: str,
    words: str,
) -> None:
    response = _design(signed_in, post_form, design_form(**fields), "power")
    assert response.status_code == 422, response.text[:500]
    page = read_page(response.text)
    messages = _error_follows_its_input(page, name)
    assert any(words in m for m in messages), messages
    summary = page.find("div", id="error-summary")
    assert page.within(summary, "a", href="#" + (page.by_name(name).get("id") or "?"))


def test_too_few_arms_is_shown_on_the_arms_section(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    read_page: PageReader,
) -> None:
    form = design_form()
    del form["arms[1].arm_name"], form["arms[1].weight"]
    page = read_page(_design(signed_in, post_form, form, "assign").text)
    (error,) = [e for e in page.find_all("p") if e.get("data-field") == "arms"]
    assert "at least 2 arms" in error.text
    assert error.position > page.find("fieldset", id="section-arms").position


def test_power_shows_the_required_n_statsmodels_computes(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    people: pd.DataFrame,
    read_page: PageReader,
) -> None:
    response = _design(signed_in, post_form, design_form(), "power")
    assert response.status_code == 200, response.text[:2000]
    page = read_page(response.text)
    card = page.find("article", class_="card power-card", data_metric="savings_balance")
    audience = people[people["age"].between(20, 60)]["savings_balance"]
    # Reference: two-sample t-test, equal arms, effect 10% of the audience mean in sd units.
    effect_size = 0.1 * audience.mean() / audience.std(ddof=1)
    per_arm = TTestIndPower().solve_power(effect_size=effect_size, alpha=0.05, power=0.8)
    needed = 2 * math.ceil(per_arm)
    text = " ".join(card.text.split())
    assert f"{needed:,} needed" in text, text
    assert f"{len(audience):,} available" in text
    assert len(page.within(card, "circle", class_="marked")) == 1


def test_power_needs_a_metric(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    read_page: PageReader,
) -> None:
    form = design_form(**{"metrics[0].field_name": "", "metrics[0].metric_pct_change": ""})
    page = read_page(_design(signed_in, post_form, form, "power").text)
    assert [e.text for e in page.find_all("p") if e.get("data-field") == "metrics"] == [
        "add a metric to run the power analysis"
    ]


def test_the_preview_balances_every_stratum(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    people: pd.DataFrame,
    read_page: PageReader,
) -> None:
    response = _design(signed_in, post_form, design_form(), "assign")
    assert response.status_code == 200
    page = read_page(response.text)
    preview = page.find("section", id="assignment-preview")
    audience = people[people["age"].between(20, 60)]
    assert f"{len(audience):,} participants assigned" in " ".join(preview.text.split())
    rows = page.within(page.find("table", class_="strata-table"), "tr")[1:]
    assert len(rows) == audience["region"].nunique()
    for row in rows:
        region, control, sms = [c.text for c in page.within(row, "td")]
        expected = int((audience["region"] == region).sum())
        control_n, sms_n = int(control.replace(",", "")), int(sms.replace(",", ""))
        assert control_n + sms_n == expected and abs(control_n - sms_n) <= 1
    assert page.within(page.find("table", class_="balance-table"), "tbody")


def test_drawing_again_picks_a_new_seed(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    read_page: PageReader,
) -> None:
    page = read_page(_design(signed_in, post_form, design_form(), "redraw").text)
    assert page.by_name("seed").get("value") != "42"
    assert page.find("section", id="assignment-preview")


def _preview_csv(client: TestClient, post_form: Callable[..., Any], form: dict[str, Any]) -> Any:
    response = _design(client, post_form, form, "download")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return pd.read_csv(io.StringIO(response.text), dtype={"participant_id": str})


def test_the_preview_downloads_as_csv(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    people: pd.DataFrame,
) -> None:
    table = _preview_csv(signed_in, post_form, design_form())
    audience = people[people["age"].between(20, 60)]
    assert sorted(table["participant_id"]) == sorted(audience["participant_id"])
    assert set(table["arm_name"]) == {"control", "sms"}
    assert list(table.columns) == ["participant_id", "arm_name", "region"]


def test_saving_stores_exactly_the_previewed_assignment(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
) -> None:
    form = design_form()
    previewed = _preview_csv(signed_in, post_form, form)
    response = _design(signed_in, post_form, form, "save")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/ui/experiments/")
    page = signed_in.get(location)
    assert "assigned" in page.text
    stored = signed_in.get(location + "/assignments.csv")
    assert stored.status_code == 200
    rows = list(csv.DictReader(io.StringIO(stored.text)))
    saved = {r["participant_id"]: r["arm_name"] for r in rows}
    assert saved == dict(zip(previewed["participant_id"], previewed["arm_name"], strict=True))


def test_a_save_that_fails_leaves_nothing_behind(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    read_page: PageReader,
) -> None:
    response = _design(signed_in, post_form, design_form(name=""), "save")
    assert response.status_code == 422
    _error_follows_its_input(read_page(response.text), "name")
    assert "No experiments" in signed_in.get("/ui/experiments").text


def test_row_buttons_add_and_remove_rows(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., dict[str, Any]],
    read_page: PageReader,
) -> None:
    page = read_page(_design(signed_in, post_form, design_form(), "add_arm").text)
    assert page.by_name("arms[2].arm_name").get("value") == ""
    page = read_page(_design(signed_in, post_form, design_form(), "remove_filter:0").text)
    assert not [e for e in page.elements if e.get("name") == "filters[0].value"]
