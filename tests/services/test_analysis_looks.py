"""Looks of a started experiment's analysis: stored, passed back as ``previous``, and listed.

The experiment's metric is a sheet column (``score``) of a DuckDB warehouse; the app database is
SQLite and PostgreSQL (the ``runtime`` fixture). Data grows between looks by assigning more
participants. Expected numbers come from scipy (the Welch effect and its standard error) and the
mSPRT closed form written out here (Johari et al. 2017), not from our earlier output.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats as scipy_stats

from xngin.errors import NotFound
from xngin.services.access import Principal
from xngin.services.analysis import analyze
from xngin.services.analysis_looks import LOOK_INTERVAL, analysis_history
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store.analysis_looks import list_looks
from xngin.store.assignments import replace_assignments
from xngin.store.models import Arm, Experiment
from xngin.store.organizations import get_or_create_organization

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PARTICIPANTS = 400
SHEET = [
    {"field_name": "participant_id", "data_type": "integer", "description": "",
     "is_unique_id": True, "is_filter": False, "is_metric": False, "is_strata": False},
    {"field_name": "score", "data_type": "float", "description": "",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
]  # fmt: skip


def scores() -> dict[str, float]:
    """Participant i is in arm i % 2. Among the first 200 the treatment arm scores 10 higher;
    among the rest the arms are equal, so the effect halves when they join (sd 10)."""
    rng = np.random.default_rng(5)
    noise = rng.normal(50, 10, size=PARTICIPANTS)
    return {
        str(i): float(noise[i] + (10.0 if i % 2 and i < PARTICIPANTS // 2 else 0.0))
        for i in range(PARTICIPANTS)
    }


@pytest.fixture
def warehouse_url(tmp_path: Path) -> str:
    values = scores()
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE people AS SELECT unnest($ids)::BIGINT AS participant_id,"
            " unnest($scores)::DOUBLE AS score",
            {"ids": [int(k) for k in values], "scores": list(values.values())},
        )
    return f"duckdb:///{path}"


def principal_for(runtime: Runtime, organization: str) -> Principal:
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, organization)
        return Principal(
            organization_id=org.id, organization_name=organization, api_key_id="tester"
        )


def create_experiment(runtime: Runtime, warehouse_url: str, *, state: str) -> tuple[str, str]:
    """A two-arm experiment on ``score`` of organization "acme"; returns its id and the
    treatment arm's id. Nobody is assigned yet (see :func:`assign`, which replaces the
    whole assignment)."""
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, "acme")
        source = catalog.upsert_datasource(
            session, organization_id=org.id, name="wh", url=warehouse_url, options={}
        )
        people = catalog.upsert_participant_type(
            session, organization_id=org.id, name="people", datasource=source,
            table_name="people", unique_id_field="participant_id", fields=SHEET, sheet_url=None,
        )  # fmt: skip
        experiment = Experiment(
            organization_id=org.id, participant_type_id=people.id, name="looks",
            type="preassigned", state=state, seed=1,
            design={"metrics": [{"field_name": "score", "metric_pct_change": 0.1}]},
        )  # fmt: skip
        experiment.arms = [Arm(position=i, name=n, weight=1.0) for i, n in enumerate("ab")]
        session.add(experiment)
        session.flush()
        return experiment.id, experiment.arms[1].id


def assign(runtime: Runtime, experiment_id: str, participants: range) -> None:
    with runtime.sessions.begin() as session:
        arm_ids = [a.id for a in session.get_one(Experiment, experiment_id).arms]
        replace_assignments(
            session, experiment_id=experiment_id,
            participant_ids=[str(i) for i in participants],
            arm_ids=[arm_ids[i % 2] for i in participants], strata_json=None, assigned_at=T0,
        )  # fmt: skip


def look(
    runtime: Runtime, principal: Principal, experiment_id: str, at: datetime
) -> dict[str, object]:
    """The treatment arm of ``score`` in an analysis computed (and committed) at ``at``."""
    with runtime.sessions.begin() as session:
        report = analyze(runtime, session, principal, experiment_id=experiment_id, now=at)
    (metric,) = report["metrics"]  # type: ignore[misc]
    return dict(metric["arms"][1])


def welch(participants: range) -> tuple[float, float]:
    """Effect and its Welch standard error over ``participants``, from scipy."""
    values = scores()
    treated = [values[str(i)] for i in participants if i % 2]
    control = [values[str(i)] for i in participants if not i % 2]
    result = scipy_stats.ttest_ind(treated, control, equal_var=False)
    effect = float(np.mean(treated) - np.mean(control))
    return effect, effect / float(result.statistic)


def msprt(effect: float, std_error: float, tau2: float, alpha: float) -> tuple[float, float]:
    """1 / Lambda (the look's own always-valid p-value) and the half width of its confidence
    sequence, Johari, Koomen, Pekelis & Walsh (2017) in the standard-error form."""
    s2 = std_error**2
    log_lambda = 0.5 * math.log(s2 / (s2 + tau2)) + tau2 * effect**2 / (2 * s2 * (s2 + tau2))
    half = math.sqrt(s2 * (s2 + tau2) / tau2 * (math.log((s2 + tau2) / s2) - 2 * math.log(alpha)))
    return min(1.0, math.exp(-log_lambda)), half


def test_a_started_experiments_analysis_stores_one_look_per_comparison(
    runtime: Runtime, warehouse_url: str
) -> None:
    experiment_id, treatment = create_experiment(runtime, warehouse_url, state="running")
    assign(runtime, experiment_id, range(200))
    arm = look(runtime, principal_for(runtime, "acme"), experiment_id, T0)
    with runtime.sessions.begin() as session:
        (stored,) = list_looks(session, experiment_id)
    effect, std_error = welch(range(200))
    assert (stored.metric_name, stored.arm_id, stored.at) == ("score", treatment, T0)
    assert (stored.n, stored.baseline_n) == (100, 100)
    assert stored.effect == pytest.approx(effect, rel=1e-9)
    assert stored.std_error == pytest.approx(std_error, rel=1e-9)
    assert stored.always_valid_p_value == pytest.approx(arm["always_valid_p_value"], rel=1e-12)
    assert (stored.cs_lower, stored.cs_upper) == pytest.approx(
        (arm["always_valid_ci_lower"], arm["always_valid_ci_upper"]), rel=1e-12
    )


def test_a_later_look_never_raises_the_always_valid_p_value_and_nests_the_sequence(
    runtime: Runtime, warehouse_url: str
) -> None:
    experiment_id, _ = create_experiment(runtime, warehouse_url, state="running")
    principal = principal_for(runtime, "acme")
    assign(runtime, experiment_id, range(200))
    look(runtime, principal, experiment_id, T0)
    assign(runtime, experiment_id, range(PARTICIPANTS))
    second = look(runtime, principal, experiment_id, T0 + 2 * LOOK_INTERVAL)
    with runtime.sessions.begin() as session:
        first_look, second_look = list_looks(session, experiment_id)
    effect, std_error = welch(range(PARTICIPANTS))
    assert second_look.effect == pytest.approx(effect, rel=1e-9)
    fresh_p, half = msprt(effect, std_error, second_look.tau2, alpha=0.05)
    # The data were chosen so that this look alone would give a larger p-value and an interval
    # reaching below the first one: the stored history is what keeps both in check.
    assert fresh_p > first_look.always_valid_p_value
    assert effect - half < first_look.cs_lower
    assert second_look.always_valid_p_value == pytest.approx(first_look.always_valid_p_value)
    assert second["always_valid_p_value"] == pytest.approx(first_look.always_valid_p_value)
    assert second_look.cs_lower == pytest.approx(first_look.cs_lower)
    assert second_look.cs_upper == pytest.approx(min(first_look.cs_upper, effect + half))
    assert first_look.cs_lower <= second_look.cs_lower <= second_look.cs_upper
    assert second_look.cs_upper <= first_look.cs_upper


def test_looks_closer_than_the_interval_are_not_stored_but_still_capped(
    runtime: Runtime, warehouse_url: str
) -> None:
    experiment_id, _ = create_experiment(runtime, warehouse_url, state="running")
    principal = principal_for(runtime, "acme")
    assign(runtime, experiment_id, range(200))
    look(runtime, principal, experiment_id, T0)
    assign(runtime, experiment_id, range(PARTICIPANTS))
    soon = look(runtime, principal, experiment_id, T0 + LOOK_INTERVAL / 2)
    with runtime.sessions.begin() as session:
        (first_look,) = list_looks(session, experiment_id)
    assert soon["always_valid_p_value"] == pytest.approx(first_look.always_valid_p_value)
    assert soon["always_valid_ci_lower"] == pytest.approx(first_look.cs_lower)


@pytest.mark.parametrize("state", ["assigned", "committed"])
def test_an_experiment_that_has_not_started_records_no_looks(
    runtime: Runtime, warehouse_url: str, state: str
) -> None:
    experiment_id, _ = create_experiment(runtime, warehouse_url, state=state)
    assign(runtime, experiment_id, range(200))
    arm = look(runtime, principal_for(runtime, "acme"), experiment_id, T0)
    assert arm["always_valid_p_value"] is None
    with runtime.sessions.begin() as session:
        assert list_looks(session, experiment_id) == []


def test_the_history_lists_the_looks_per_metric_and_arm_for_its_organization_only(
    runtime: Runtime, warehouse_url: str
) -> None:
    experiment_id, treatment = create_experiment(runtime, warehouse_url, state="running")
    principal = principal_for(runtime, "acme")
    assign(runtime, experiment_id, range(200))
    look(runtime, principal, experiment_id, T0)
    assign(runtime, experiment_id, range(PARTICIPANTS))
    look(runtime, principal, experiment_id, T0 + timedelta(days=1))
    with runtime.sessions.begin() as session:
        history = analysis_history(session, principal, experiment_id)
    (item,) = history["items"]
    assert (item["metric_name"], item["arm_id"], item["arm_name"]) == ("score", treatment, "b")
    assert [datetime.fromisoformat(x["at"]) for x in item["looks"]] == [
        T0,
        T0 + timedelta(days=1),
    ]
    assert [x["n"] for x in item["looks"]] == [100, 200]
    other = principal_for(runtime, "globex")
    with runtime.sessions.begin() as session, pytest.raises(NotFound):
        analysis_history(session, other, experiment_id)
