"""The results page over the real analysis: effects checked against scipy on the same
participants, and the sample-ratio warning when the stored split does not fit the weights."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from xngin.services import experiments
from xngin.services.runtime import Runtime
from xngin.store import assignments as assignment_repo

PageReader = Callable[[str], Any]


@pytest.fixture
def running(
    signed_in: TestClient, post_form: Callable[..., Any], design_form: Callable[..., Any]
) -> str:
    """An experiment on savings_balance saved, committed and started through the UI."""
    saved = post_form(
        signed_in, "/ui/design", {**design_form(), "op": "save"}, follow_redirects=False
    )
    experiment_id = str(saved.headers["location"]).rsplit("/", 1)[-1]
    for action in ("commit", "start"):
        moved = post_form(
            signed_in,
            f"/ui/experiments/{experiment_id}/actions/{action}",
            {},
            follow_redirects=False,
        )
        assert moved.status_code == 303, moved.text[:500]
    return experiment_id


def _arms(client: TestClient, experiment_id: str) -> dict[str, str]:
    text = client.get(f"/ui/experiments/{experiment_id}/assignments.csv").text
    return {r["participant_id"]: r["arm_name"] for r in csv.DictReader(io.StringIO(text))}


def test_results_show_the_welch_effect_scipy_finds(
    signed_in: TestClient, running: str, people: pd.DataFrame, read_page: PageReader
) -> None:
    response = signed_in.get(f"/ui/experiments/{running}/results")
    assert response.status_code == 200, response.text[:1000]
    page = read_page(response.text)
    assert page.find("p", id="srm-ok")
    section = page.find("section", class_="card metric-result", data_metric="savings_balance")
    (estimate,) = page.within(section, "rect")
    arms = _arms(signed_in, running)
    values = people.set_index("participant_id")["savings_balance"]
    sms = values[[p for p, a in arms.items() if a == "sms"]]
    control = values[[p for p, a in arms.items() if a == "control"]]
    assert float(estimate.get("data-estimate") or "nan") == pytest.approx(
        sms.mean() - control.mean(), rel=1e-9
    )
    welch = stats.ttest_ind(sms, control, equal_var=False)
    row = page.within(section, "tr")[2]  # header, control, sms
    n, _mean, _effect, _relative, _interval, p, p_adjusted, _always_valid = [
        c.text for c in page.within(row, "td")
    ]
    assert n.startswith(f"{len(sms):,}")
    shown = "< 0.001" if welch.pvalue < 0.001 else f"{welch.pvalue:.3f}"
    # One comparison: Holm's adjustment leaves the p-value as it is.
    assert p == shown and p_adjusted == shown
    assert "always-valid" in page.text()


def test_a_split_that_does_not_fit_the_weights_raises_the_srm_warning(
    signed_in: TestClient,
    post_form: Callable[..., Any],
    design_form: Callable[..., Any],
    web_runtime: Runtime,
    org: Any,
    read_page: PageReader,
) -> None:
    saved = post_form(
        signed_in, "/ui/design", {**design_form(), "op": "save"}, follow_redirects=False
    )
    experiment_id = str(saved.headers["location"]).rsplit("/", 1)[-1]
    arms = _arms(signed_in, experiment_id)
    ids = sorted(arms)
    with web_runtime.sessions() as session:
        experiment = experiments.get_experiment(session, org.principal, experiment_id)
        arm_ids = {arm.name: arm.id for arm in experiment.arms}
    # Tracking gone wrong: 70% of the stored participants end up in control.
    cut = int(len(ids) * 0.7)
    with web_runtime.sessions.begin() as session:
        assignment_repo.replace_assignments(
            session,
            experiment_id=experiment_id,
            participant_ids=ids,
            arm_ids=[arm_ids["control"]] * cut + [arm_ids["sms"]] * (len(ids) - cut),
            strata_json=None,
            assigned_at=datetime.now(UTC),
        )
    response = signed_in.get(f"/ui/experiments/{experiment_id}/results")
    assert response.status_code == 200
    warning = read_page(response.text).find("div", id="srm-warning")
    assert f"{cut:,} / {len(ids) - cut:,}" in " ".join(warning.text.split())
