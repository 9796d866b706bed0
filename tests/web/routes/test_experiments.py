"""Experiment pages: list, detail, lifecycle with confirmation, lookup, audit, isolation."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from xngin.services import experiments
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime

PageReader = Callable[[str], Any]


@pytest.fixture
def saved(
    signed_in: TestClient, post_form: Callable[..., Any], design_form: Callable[..., Any]
) -> str:
    """A preassigned experiment saved through the design page (state: assigned); its id."""
    response = post_form(
        signed_in, "/ui/design", {**design_form(), "op": "save"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text[:1000]
    return str(response.headers["location"]).rsplit("/", 1)[-1]


def _act(client: TestClient, post_form: Callable[..., Any], experiment_id: str, action: str,
         **data: str) -> Any:  # fmt: skip
    return post_form(
        client, f"/ui/experiments/{experiment_id}/actions/{action}", data, follow_redirects=False
    )


def _state(runtime: Runtime, org: Any, experiment_id: str) -> str:
    with runtime.sessions() as session:
        return experiments.get_experiment(session, org.principal, experiment_id).state


def test_the_list_shows_each_experiment_with_its_state(
    signed_in: TestClient, saved: str, read_page: PageReader
) -> None:
    page = read_page(signed_in.get("/ui/experiments").text)
    link = page.find("a", href=f"/ui/experiments/{saved}")
    assert link.text == "Savings nudge"
    assert "assigned" in page.text()
    assert "No experiments in state running" in signed_in.get("/ui/experiments?state=running").text


def test_the_detail_page_shows_design_assignment_actions_and_audit(
    signed_in: TestClient, saved: str, read_page: PageReader
) -> None:
    page = read_page(signed_in.get(f"/ui/experiments/{saved}").text)
    text = page.text()
    assert "age between 20, 60" in text
    assert "savings_balance (+10.0%)" in text
    actions = [b.get("data-action") for b in page.find_all("button") if b.get("data-action")]
    assert actions == ["assign", "commit"]
    assert page.find("a", href=f"/ui/experiments/{saved}/confirm/abandon")
    audit = page.within(page.find("table", class_="audit-table"), "tr")[1:]
    assert [page.within(r, "td")[2].text for r in audit] == ["create", "assign"]
    assert page.find("table", class_="balance-table")


def test_commit_and_start_move_the_experiment(
    signed_in: TestClient,
    saved: str,
    post_form: Callable[..., Any],
    web_runtime: Runtime,
    org: Any,
) -> None:
    assert _act(signed_in, post_form, saved, "commit").status_code == 303
    assert _act(signed_in, post_form, saved, "start").status_code == 303
    assert _state(web_runtime, org, saved) == "running"


def test_an_action_without_the_csrf_token_changes_nothing(
    signed_in: TestClient, saved: str, web_runtime: Runtime, org: Any
) -> None:
    response = signed_in.post(f"/ui/experiments/{saved}/actions/commit", data={})
    assert response.status_code == 403
    assert _state(web_runtime, org, saved) == "assigned"


def test_an_action_the_state_forbids_is_explained(
    signed_in: TestClient, saved: str, post_form: Callable[..., Any], read_page: PageReader
) -> None:
    response = _act(signed_in, post_form, saved, "start")
    assert response.status_code == 409
    summary = read_page(response.text).find("div", id="error-summary")
    assert "start" in summary.text


def test_stopping_asks_for_confirmation_and_a_reason(
    signed_in: TestClient,
    saved: str,
    post_form: Callable[..., Any],
    web_runtime: Runtime,
    org: Any,
    read_page: PageReader,
) -> None:
    _act(signed_in, post_form, saved, "commit")
    _act(signed_in, post_form, saved, "start")
    detail = read_page(signed_in.get(f"/ui/experiments/{saved}").text)
    stop_link = detail.find("a", href=f"/ui/experiments/{saved}/confirm/stop")
    assert "Stop" in stop_link.text
    confirm = signed_in.get(f"/ui/experiments/{saved}/confirm/stop")
    assert confirm.status_code == 200 and "Yes, stop the experiment" in confirm.text

    unconfirmed = _act(signed_in, post_form, saved, "stop", reason="done")
    assert unconfirmed.status_code == 422
    assert _state(web_runtime, org, saved) == "running"

    no_reason = _act(signed_in, post_form, saved, "stop", confirmed="yes", reason="  ")
    assert no_reason.status_code == 422
    assert read_page(no_reason.text).errors_for("reason") == [
        "stopping an experiment needs a non-empty reason"
    ]
    assert _state(web_runtime, org, saved) == "running"

    done = _act(signed_in, post_form, saved, "stop", confirmed="yes", reason="budget cut")
    assert done.status_code == 303
    assert _state(web_runtime, org, saved) == "stopped"
    assert "budget cut" in signed_in.get(f"/ui/experiments/{saved}").text


def test_abandoning_is_confirmed_too(
    signed_in: TestClient,
    saved: str,
    post_form: Callable[..., Any],
    web_runtime: Runtime,
    org: Any,
) -> None:
    assert _act(signed_in, post_form, saved, "abandon").status_code == 422
    assert _act(signed_in, post_form, saved, "abandon", confirmed="yes").status_code == 303
    assert _state(web_runtime, org, saved) == "abandoned"


def test_the_lookup_box_finds_a_participants_arm(
    signed_in: TestClient, saved: str, read_page: PageReader
) -> None:
    stored = list(
        csv.DictReader(io.StringIO(signed_in.get(f"/ui/experiments/{saved}/assignments.csv").text))
    )
    someone = stored[0]
    page = read_page(
        signed_in.get(f"/ui/experiments/{saved}?participant_id={someone['participant_id']}").text
    )
    result = " ".join(page.find("p", class_="lookup-result").text.split())
    assert f"{someone['participant_id']} is in arm {someone['arm_name']}" in result
    assert "Not committed yet" in result


def test_the_lookup_box_says_when_someone_is_not_in_the_experiment(
    signed_in: TestClient, saved: str, read_page: PageReader
) -> None:
    page = read_page(signed_in.get(f"/ui/experiments/{saved}?participant_id=nobody").text)
    assert "has no arm in this experiment" in page.find("p", class_="lookup-result").text


def test_an_overlong_participant_id_is_refused_next_to_the_box(
    signed_in: TestClient, saved: str, read_page: PageReader
) -> None:
    response = signed_in.get(f"/ui/experiments/{saved}?participant_id={'x' * 201}")
    assert response.status_code == 422
    assert "at most 200 characters" in read_page(response.text).errors_for("participant_id")[0]


def test_another_organizations_experiment_is_not_found(
    saved: str, client: TestClient, web_runtime: Runtime, sign_in: Callable[..., None]
) -> None:
    other_key = issue_api_key(web_runtime, organization="somebody-else").plaintext
    client.cookies.clear()
    sign_in(client, other_key)
    for path in ["", "/results", "/assignments.csv", "/confirm/stop"]:
        assert client.get(f"/ui/experiments/{saved}{path}").status_code == 404, path
