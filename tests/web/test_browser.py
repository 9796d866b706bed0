"""End to end in a real browser: Debian's chromium, driven by Playwright, against uvicorn.

The journey a program team makes: sign in, look at the fields, design with filters (watching the
live count, and seeing an invalid filter's error next to it), run the power analysis, preview the
assignment, save, commit, start, and look a participant up; then, for an experiment whose events
came in through the JSON API, the results with their forest plots. Screenshots of each page land
in test-artifacts/screenshots/ for reviewers; the phone-width passes check nothing overflows
sideways.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
import pytest

from xngin.services import analysis_plan, experiments, lifecycle, metrics
from xngin.services.design import ArmIn, FilterIn, MetricTargetIn
from xngin.services.experiment_specs import ExperimentCreate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Every visible form control has a label (or an aria-label); the hidden Enter-key default
# button is the only exception and is aria-hidden.
UNLABELLED_CONTROLS = """
() => Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.type !== 'hidden' && el.getAttribute('aria-hidden') !== 'true')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.name || el.id)
"""
OVERFLOWS_SIDEWAYS = "() => document.documentElement.scrollWidth > window.innerWidth + 1"


def _launch_page(browser: Any, live_server: Any, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport, base_url=live_server.base_url)
    context.set_default_timeout(15_000)
    return context.new_page()


def test_design_assign_commit_start_and_look_up_in_a_browser(
    browser: Any, live_server: Any, people: pd.DataFrame, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    page = _launch_page(browser, live_server, DESKTOP)

    # Sign in: the UI sends a signed-out visitor to the sign-in form.
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    screenshot(page, "01-sign-in")
    page.get_by_label("API key").fill(live_server.org.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()

    # Explore the fields: value counts drawn for categories, a range for numbers.
    page.get_by_role("link", name="Participants", exact=True).click()
    page.get_by_role("link", name="beneficiaries", exact=True).click()
    region = page.locator("#field-region")
    expect(region.locator("svg rect.bar")).to_have_count(people["region"].nunique())
    expect(page.locator("#field-age svg rect.range")).to_have_count(1)
    screenshot(page, "02-participant-fields")

    # Design: add a filter and watch the count follow it.
    page.get_by_role("link", name="Design an experiment on beneficiaries").click()
    expect(page.locator("#audience-count")).to_contain_text(f"{len(people):,}")
    page.get_by_role("button", name="Add a filter").click()
    page.locator("#f-filters-0-field_name").select_option("age")
    page.locator("#f-filters-0-relation").select_option("between")
    page.locator("#f-filters-0-value").fill("20, 60")
    in_audience = people[people["age"].between(20, 60)]
    expect(page.locator("#audience-count")).to_contain_text(f"{len(in_audience):,}")

    # An invalid value: the live count says why, next to the input...
    page.locator("#f-filters-0-value").fill("twenty, 60")
    live_error = page.locator("#f-filters-0-value ~ .js-error")
    expect(live_error).to_contain_text("does not fit field 'age' of type integer")
    expect(page.locator("#f-filters-0-value")).to_have_attribute("aria-invalid", "true")

    # ...and so does the server when the form is sent anyway.
    page.locator("#f-metrics-0-field_name").select_option("savings_balance")
    page.locator("#f-metrics-0-metric_pct_change").fill("10")
    page.get_by_label("region").check()
    page.get_by_role("button", name="Run power analysis").click()
    server_error = page.locator('p.field-error[data-field="filters[0].value"]')
    expect(server_error).to_contain_text("does not fit field 'age' of type integer")
    expect(page.locator("#error-summary")).to_be_visible()
    screenshot(page, "03-design-invalid-filter")
    assert page.evaluate(UNLABELLED_CONTROLS) == []

    # Power: per metric, the needed n against the available n and the curve with our point.
    page.locator("#f-filters-0-value").fill("20, 60")
    page.get_by_role("button", name="Run power analysis").click()
    card = page.locator('.power-card[data-metric="savings_balance"]')
    expect(card).to_contain_text(f"{len(in_audience):,} available")
    expect(card.locator("svg circle.marked")).to_have_count(1)
    expect(card.locator("svg polyline.curve")).to_have_count(1)
    screenshot(page, "04-power-analysis")

    # Assignment preview: arm sizes, strata counts and the balance table.
    page.get_by_role("button", name="Preview assignment").click()
    preview = page.locator("#assignment-preview")
    expect(preview).to_contain_text(f"{len(in_audience):,} participants assigned")
    expect(preview.locator("table.balance-table tbody tr")).not_to_have_count(0)
    expect(preview.locator("table.strata-table tbody tr")).to_have_count(
        in_audience["region"].nunique()
    )
    screenshot(page, "05-assignment-preview")

    # Save, commit and start.
    page.get_by_label("Name", exact=True).fill("Savings nudge")
    page.get_by_role("button", name="Save experiment").click()
    expect(page.locator("h1 .badge")).to_have_text("assigned")
    experiment_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.locator('button[data-action="commit"]').click()
    expect(page.locator("h1 .badge")).to_have_text("committed")
    page.locator('button[data-action="start"]').click()
    expect(page.locator("h1 .badge")).to_have_text("running")
    audit = page.locator(".audit-table tbody tr td:nth-child(3)")
    expect(audit).to_have_text(["create", "assign", "commit", "start"])

    # Look a participant up, and check the answer against the JSON API.
    participant = str(in_audience["participant_id"].iloc[0])
    page.get_by_label("Participant ID").fill(participant)
    page.get_by_role("button", name="Look up").click()
    result = page.locator(".lookup-result")
    api = httpx.get(
        f"{live_server.base_url}/v1/experiments/{experiment_id}/assignments/{participant}",
        headers={"X-API-Key": live_server.org.api_key},
    )
    assert api.status_code == 200, api.text
    expect(result).to_contain_text(f"is in arm {api.json()['assignment']['arm_name']}")
    screenshot(page, "06-experiment-running")

    # The same pages at phone width: nothing spills sideways.
    phone = browser.new_context(viewport=PHONE, storage_state=page.context.storage_state())
    small = phone.new_page()
    for path, name in [
        ("/ui/participants/beneficiaries", "07-phone-fields"),
        ("/ui/design?participant_type=beneficiaries", "08-phone-design"),
        (f"/ui/experiments/{experiment_id}", "09-phone-experiment"),
    ]:
        small.goto(live_server.base_url + path)
        assert not small.evaluate(OVERFLOWS_SIDEWAYS), f"{path} is wider than a phone"
        screenshot(small, name)
    phone.close()
    page.context.close()


def test_results_of_a_running_experiment_with_ingested_events_in_a_browser(
    browser: Any, live_server: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    # The experiment and its metrics are set up through the services, in committed
    # transactions; the events come in through the JSON API, as an SMS sender's would.
    runtime, principal = live_server.runtime, live_server.org.principal
    spec = ExperimentCreate(
        name="Deposit reminder",
        type="preassigned",
        participant_type="beneficiaries",
        filters=[FilterIn(field_name="has_phone", relation="includes", value=[True])],
        arms=[ArmIn(arm_name="control"), ArmIn(arm_name="reminder")],
        metrics=[MetricTargetIn(field_name="savings_balance", metric_pct_change=0.1)],
        strata=["region"],
        seed=3,
    )
    with runtime.sessions.begin() as session:
        experiment_id = experiments.create_experiment(runtime, session, principal, spec).id
    for action in ("assign", "commit", "start"):
        with runtime.sessions.begin() as session:
            lifecycle.perform_action(
                runtime, session, principal, experiment_id=experiment_id, action=action
            )
    with runtime.sessions.begin() as session:
        metrics.create_metric_definition(
            session,
            principal,
            metrics.MetricDefinitionCreate.model_validate(
                {
                    "name": "deposits",
                    "type": "mean",
                    "source": {"kind": "event", "event_name": "deposit", "aggregation": "sum"},
                }
            ),
        )
        analysis_plan.set_analysis_metrics(
            session,
            principal,
            experiment_id=experiment_id,
            metrics=[
                analysis_plan.AnalysisMetricIn(name="savings_balance"),
                analysis_plan.AnalysisMetricIn(name="deposits"),
            ],
        )
    api = httpx.Client(
        base_url=live_server.base_url, headers={"X-API-Key": live_server.org.api_key}
    )

    # Ingest through the JSON API: an exposure and a deposit per participant, larger deposits
    # in the reminder arm.
    rows = list(
        csv.DictReader(
            io.StringIO(api.get(f"/v1/experiments/{experiment_id}/assignments?format=csv").text)
        )
    )
    now = datetime.now(UTC).isoformat()
    events = []
    for i, row in enumerate(rows):
        pid = row["participant_id"]
        events.append({"event_id": f"x{i}", "type": "exposure", "experiment_id": experiment_id,
                       "participant_id": pid, "timestamp": now})  # fmt: skip
        amount = 100 + (i * 37) % 50 + (25 if row["arm_name"] == "reminder" else 0)
        events.append({"event_id": f"d{i}", "type": "outcome", "name": "deposit",
                       "participant_id": pid, "value": amount, "timestamp": now})  # fmt: skip
    ingested = api.post("/v1/events", json={"events": events})
    assert ingested.status_code == 200, ingested.text
    assert ingested.json()["accepted"] == len(events)

    page = _launch_page(browser, live_server, DESKTOP)
    page.goto("/ui/sign-in")
    page.get_by_label("API key").fill(live_server.org.api_key)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/ui/experiments/{experiment_id}/results")
    expect(page.locator("#srm-ok")).to_be_visible()
    deposits = page.locator('section[data-metric="deposits"]')
    expect(deposits.locator("svg rect.estimate")).to_have_count(1)
    estimate = float(deposits.locator("svg rect.estimate").get_attribute("data-estimate") or 0)
    reminder = [100 + (i * 37) % 50 + 25 for i, r in enumerate(rows) if r["arm_name"] == "reminder"]
    control = [100 + (i * 37) % 50 for i, r in enumerate(rows) if r["arm_name"] == "control"]
    assert estimate == pytest.approx(sum(reminder) / len(reminder) - sum(control) / len(control))
    expect(deposits.locator("svg line.sequence")).to_have_count(1)  # running: always-valid band
    expect(page.locator('section[data-metric="savings_balance"] svg rect.estimate')).to_have_count(
        1
    )
    screenshot(page, "10-results")
    phone = browser.new_context(viewport=PHONE, storage_state=page.context.storage_state())
    small = phone.new_page()
    small.goto(f"{live_server.base_url}/ui/experiments/{experiment_id}/results")
    assert not small.evaluate(OVERFLOWS_SIDEWAYS)
    screenshot(small, "11-phone-results")
    phone.close()
    page.context.close()
    api.close()
