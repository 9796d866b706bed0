"""End to end through the API: warehouse, experiment, events with a known effect, analysis.

A small participant table is generated, registered, and a preassigned experiment stratified by
region is created, assigned, committed and started through the API. Events are generated per
participant with a known treatment effect and sent through POST /v1/events. Every number of the
analysis is then checked against an independent computation on the same generated data: scipy's
Welch t-test, statsmodels' two-proportion Wald test, OLS with HC1 errors, multipletests and
chisquare, and the delta method's linearization on the raw rows.

Two stacks: SQLite app database + DuckDB warehouse + DuckDB event store, and PostgreSQL app
database + PostgreSQL warehouse + ClickHouse event store.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import statsmodels.api as sm
from fastapi.testclient import TestClient
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from xngin.api.app import create_app
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store.db import upgrade
from xngin.testing import servers

N = 600
DAY = timedelta(days=1)
WINDOW = 7 * DAY
T0 = datetime.now(UTC).replace(microsecond=0) - 30 * DAY
REGIONS = ["north", "south", "east"]

SHEET = [
    {"field_name": "participant_id", "data_type": "string", "description": "id",
     "is_unique_id": True, "is_filter": False, "is_metric": False, "is_strata": False},
    {"field_name": "region", "data_type": "string", "description": "region",
     "is_unique_id": False, "is_filter": True, "is_metric": False, "is_strata": True},
    {"field_name": "spend", "data_type": "float", "description": "spend last year",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
    {"field_name": "converted", "data_type": "boolean", "description": "converted",
     "is_unique_id": False, "is_filter": False, "is_metric": True, "is_strata": False},
]  # fmt: skip


def people_frame(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, size=N, p=[0.5, 0.3, 0.2])
    shift = pd.Series(region).map({"north": 0.0, "south": 8.0, "east": -5.0}).to_numpy()
    return pd.DataFrame(
        {
            "participant_id": [f"P{i:04d}" for i in range(N)],
            "region": region,
            "spend": np.round(rng.gamma(3.0, 10.0, N) + shift + 10, 2),
            "converted": rng.random(N) < 0.3,
        }
    )


@dataclass
class Stack:
    client: TestClient
    runtime: Runtime
    key: str
    people: pd.DataFrame
    headers: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _warehouse(kind: str, tmp_path: Path, people: pd.DataFrame) -> Iterator[str]:
    if kind == "duckdb":
        import duckdb

        path = tmp_path / "wh.duckdb"
        with duckdb.connect(str(path)) as conn:
            conn.register("frame", people)
            conn.execute("CREATE TABLE people AS SELECT * FROM frame")
        yield f"duckdb:///{path}"
        return
    with servers.temporary_postgres_database("xngin_wh") as url:
        engine = sa.create_engine(url)
        people.to_sql("people", engine, index=False)
        engine.dispose()
        yield url


@pytest.fixture(
    params=[
        pytest.param("duckdb", id="sqlite-duckdb-duckdb"),
        pytest.param(
            "clickhouse",
            id="postgres-postgres-clickhouse",
            marks=[pytest.mark.postgres, pytest.mark.clickhouse],
        ),
    ]
)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A running API on one of the two stacks, with the participant type registered."""
    people = people_frame()
    with contextlib.ExitStack() as resources:
        if request.param == "duckdb":
            app_url = f"sqlite:///{tmp_path / 'app.sqlite'}"
            event_store_url = f"duckdb:///{tmp_path / 'events.duckdb'}"
        else:
            app_url = resources.enter_context(servers.temporary_postgres_database())
            database = request.getfixturevalue("clickhouse_database")
            event_store_url = f"clickhouse://default:@127.0.0.1:9000/{database}"
        warehouse_url = resources.enter_context(_warehouse(request.param, tmp_path, people))
        upgrade(app_url)
        settings = Settings(
            data_dir=tmp_path,
            database_url=app_url,
            event_store_url=event_store_url,
            cache_url="memory://",
        )
        runtime = Runtime.start(settings)
        resources.callback(runtime.close)
        key = issue_api_key(runtime, organization="acme").plaintext
        client = resources.enter_context(
            TestClient(create_app(runtime=runtime), raise_server_exceptions=False)
        )
        headers = {"X-API-Key": key}
        r = client.post(
            "/v1/datasources", json={"name": "wh", "url": warehouse_url}, headers=headers
        )
        assert r.status_code == 201, r.text
        r = client.post(
            "/v1/participant-types",
            json={"name": "people", "datasource": "wh", "table_name": "people", "fields": SHEET},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        yield Stack(client, runtime, key, people, headers)


def start_experiment(stack: Stack, **design: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Create, assign, commit and start a preassigned experiment; returns it and the arms."""
    body = {
        "name": "nudge",
        "type": "preassigned",
        "participant_type": "people",
        "arms": [{"arm_name": "control"}, {"arm_name": "nudge"}],
        "strata": ["region"],
        "seed": 17,
        **design,
    }
    client, headers = stack.client, stack.headers
    r = client.post("/v1/experiments", json=body, headers=headers)
    assert r.status_code == 201, r.text
    experiment = r.json()
    for action in ("assign", "commit", "start"):
        r = client.post(f"/v1/experiments/{experiment['id']}/{action}", headers=headers)
        assert r.status_code == 200, r.text
    r = client.get(
        f"/v1/experiments/{experiment['id']}/assignments", params={"limit": 10_000}, headers=headers
    )
    assert r.status_code == 200, r.text
    arms = {a["participant_id"]: a["arm_id"] for a in r.json()["items"]}
    assert len(arms) == N
    return experiment, arms


@dataclass
class Generated:
    events: list[dict[str, Any]]
    revenue: dict[str, float]
    pre_revenue: dict[str, float]
    purchases: dict[str, int]
    complaints: dict[str, int]


def generate_events(
    experiment_id: str, arms: dict[str, str], treatment_arm: str, *, seed: int = 5
) -> Generated:
    """Per participant: one exposure, purchases before and after it, with a known effect."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    revenue: dict[str, float] = {}
    pre_revenue: dict[str, float] = {}
    purchases: dict[str, int] = {}
    complaints: dict[str, int] = {}
    for pid in sorted(arms):
        treated = arms[pid] == treatment_arm
        exposed_at = T0 + timedelta(minutes=int(rng.integers(0, 3 * 24 * 60)))
        events.append(
            {"event_id": f"x-{pid}", "type": "exposure", "experiment_id": experiment_id,
             "participant_id": pid, "timestamp": exposed_at.isoformat()}
        )  # fmt: skip
        habit = rng.gamma(2.0, 5.0)  # what the participant tends to spend: drives pre and post
        pre = [habit + rng.normal(0, 2) for _ in range(int(rng.poisson(1.2)))]
        count = int(rng.poisson(1.5 + 0.6 * treated))
        post = [habit + 4.0 * treated + rng.normal(0, 3) for _ in range(count)]
        late = int(rng.poisson(0.5))  # after the window: never counted
        pre_revenue[pid] = float(sum(pre))
        revenue[pid] = float(sum(post))
        purchases[pid] = len(post)
        complaints[pid] = int(rng.poisson(0.2 + 0.25 * treated))
        for j, value in enumerate(pre):
            at = exposed_at - timedelta(seconds=int(rng.integers(1, 7 * 86400)))
            events.append(_outcome(f"pre-{pid}-{j}", pid, "purchase", value, at, None))
        for j, value in enumerate(post):
            at = exposed_at + timedelta(seconds=int(rng.integers(0, 7 * 86400 - 1)))
            tag = experiment_id if j % 2 else None
            events.append(_outcome(f"post-{pid}-{j}", pid, "purchase", value, at, tag))
        for j in range(late):
            at = exposed_at + WINDOW + timedelta(hours=int(rng.integers(1, 48)))
            events.append(_outcome(f"late-{pid}-{j}", pid, "purchase", 100.0, at, None))
        for j in range(complaints[pid]):
            at = exposed_at + timedelta(hours=int(rng.integers(0, 100)))
            events.append(_outcome(f"c-{pid}-{j}", pid, "complaint", None, at, experiment_id))
        events.append(_outcome(f"view-{pid}", pid, "page_view", 1.0, exposed_at, None))
    return Generated(events, revenue, pre_revenue, purchases, complaints)


def _outcome(
    event_id: str, pid: str, name: str, value: float | None, at: datetime, experiment: str | None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id, "type": "outcome", "participant_id": pid, "name": name,
        "value": value, "timestamp": at.isoformat(), "properties": {"source": "test"},
    }  # fmt: skip
    if experiment is not None:
        event["experiment_id"] = experiment
    return event


def send(stack: Stack, events: list[dict[str, Any]]) -> tuple[int, int]:
    accepted = duplicates = 0
    for start in range(0, len(events), 5000):
        r = stack.client.post(
            "/v1/events", json={"events": events[start : start + 5000]}, headers=stack.headers
        )
        assert r.status_code == 200, r.text
        accepted += r.json()["accepted"]
        duplicates += r.json()["duplicates"]
    return accepted, duplicates


METRICS = [
    {"name": "revenue", "type": "mean",
     "source": {"kind": "event", "event_name": "purchase", "window_seconds": 7 * 86400}},
    {"name": "revenue_cuped", "type": "mean", "cuped": True,
     "source": {"kind": "event", "event_name": "purchase", "window_seconds": 7 * 86400}},
    {"name": "purchased", "type": "binary",
     "source": {"kind": "event", "event_name": "purchase", "window_seconds": 7 * 86400}},
    {"name": "purchases", "type": "count",
     "source": {"kind": "event", "event_name": "purchase", "window_seconds": 7 * 86400}},
    {"name": "revenue_per_purchase", "type": "ratio",
     "source": {"kind": "ratio",
                "numerator": {"event_name": "purchase", "window_seconds": 7 * 86400},
                "denominator": {"event_name": "purchase", "window_seconds": 7 * 86400}}},
    {"name": "complaints", "type": "count", "source": {"kind": "event", "event_name": "complaint"}},
]  # fmt: skip


def _by_arm(values: dict[str, float], arms: dict[str, str], arm: str) -> np.ndarray:
    return np.array([v for pid, v in sorted(values.items()) if arms[pid] == arm], dtype=float)


def _check_welch(result: dict[str, Any], base: np.ndarray, treat: np.ndarray) -> None:
    reference = scipy_stats.ttest_ind(treat, base, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    baseline, treatment = result["arms"]
    assert baseline["n"] == base.size and treatment["n"] == treat.size
    assert baseline["mean"] == pytest.approx(base.mean(), rel=1e-9)
    assert baseline["std_error"] == pytest.approx(scipy_stats.sem(base), rel=1e-9)
    assert treatment["effect"] == pytest.approx(treat.mean() - base.mean(), rel=1e-9)
    assert treatment["effect_relative"] == pytest.approx(treat.mean() / base.mean() - 1, rel=1e-9)
    assert treatment["p_value"] == pytest.approx(reference.pvalue, rel=1e-6)
    assert treatment["ci_lower"] == pytest.approx(low, rel=1e-6)
    assert treatment["ci_upper"] == pytest.approx(high, rel=1e-6)


def test_analysis_matches_independent_computations_on_the_same_data(stack: Stack) -> None:
    experiment, arms = start_experiment(stack)
    control, treatment = (a["arm_id"] for a in experiment["arms"])
    eid = experiment["id"]
    data = generate_events(eid, arms, treatment)
    accepted, duplicates = send(stack, data.events)
    assert (accepted, duplicates) == (len(data.events), 0)
    client, headers = stack.client, stack.headers
    for definition in METRICS:
        r = client.post("/v1/metric-definitions", json=definition, headers=headers)
        assert r.status_code == 201, r.text
    plan = [
        {"name": "revenue", "role": "primary"},
        {"name": "revenue_cuped", "role": "secondary"},
        {"name": "purchased", "role": "secondary"},
        {"name": "purchases", "role": "secondary"},
        {"name": "revenue_per_purchase", "role": "secondary"},
        {"name": "spend", "role": "secondary"},
        {"name": "converted", "role": "secondary"},
        {"name": "complaints", "role": "guardrail",
         "guardrail": {"direction": "increase", "threshold": 0.0}},
    ]  # fmt: skip
    r = client.put(
        f"/v1/experiments/{eid}/analysis-metrics", json={"analysis_metrics": plan}, headers=headers
    )
    assert r.status_code == 200, r.text
    r = client.get(f"/v1/experiments/{eid}/analysis", headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    metrics = {m["metric_name"]: m for m in report["metrics"]}
    assert [m["metric_name"] for m in report["metrics"]] == [p["name"] for p in plan]
    assert all(m["error"] is None for m in report["metrics"]), report["metrics"]

    # Sample ratio: chi-square of assigned counts against equal weights.
    counts = [sum(1 for a in arms.values() if a == arm) for arm in (control, treatment)]
    assert report["srm"]["observed"] == counts
    chi = scipy_stats.chisquare(counts)
    assert report["srm"]["p_value"] == pytest.approx(chi.pvalue, rel=1e-9)
    assert report["srm"]["ok"] is True

    revenue_b, revenue_t = (_by_arm(data.revenue, arms, a) for a in (control, treatment))
    _check_welch(metrics["revenue"], revenue_b, revenue_t)
    assert metrics["revenue"]["method"] == "welch"
    assert metrics["revenue"]["arms"][1]["ci_lower"] > 0  # the effect is real and detected
    count_b, count_t = (_by_arm(data.purchases, arms, a) for a in (control, treatment))  # type: ignore[arg-type]
    _check_welch(metrics["purchases"], count_b, count_t)
    spend = dict(zip(stack.people["participant_id"], stack.people["spend"], strict=True))
    _check_welch(metrics["spend"], *(_by_arm(spend, arms, a) for a in (control, treatment)))
    assert metrics["spend"]["source"] == "sheet"

    # Binary metrics: statsmodels' Wald test of two independent proportions.
    bought = {pid: float(n > 0) for pid, n in data.purchases.items()}
    converted = dict(
        zip(stack.people["participant_id"], stack.people["converted"].astype(float), strict=True)
    )
    for name, values in (("purchased", bought), ("converted", converted)):
        base, treat = (_by_arm(values, arms, a) for a in (control, treatment))
        reference = sm_proportion.test_proportions_2indep(
            treat.sum(), treat.size, base.sum(), base.size, method="wald", compare="diff",
            correction=False,
        )  # fmt: skip
        result = metrics[name]["arms"][1]
        assert metrics[name]["method"] == "proportion"
        assert result["effect"] == pytest.approx(treat.mean() - base.mean(), rel=1e-9)
        assert result["p_value"] == pytest.approx(reference.pvalue, rel=1e-6)
    # Who reached the metric: participants with a purchase in the window, per arm.
    participation = {p["arm_id"]: p for p in metrics["purchased"]["participation"]}
    assert participation[treatment]["with_outcome"] == int(_by_arm(bought, arms, treatment).sum())
    assert participation[control]["without_outcome"] == int(
        (1 - _by_arm(bought, arms, control)).sum()
    )

    # CUPED: same effect as OLS of revenue on the arm and the centred pre-period revenue.
    pre = np.array([data.pre_revenue[p] for p in sorted(arms)])
    post = np.array([data.revenue[p] for p in sorted(arms)])
    treated = np.array([arms[p] == treatment for p in sorted(arms)], dtype=float)
    fit = sm.OLS(post, sm.add_constant(np.column_stack([treated, pre - pre.mean()]))).fit(
        cov_type="HC1"
    )
    cuped = metrics["revenue_cuped"]
    assert cuped["method"] == "cuped"
    assert cuped["arms"][1]["effect"] == pytest.approx(fit.params[1], rel=1e-9)
    assert cuped["arms"][1]["effect_std_error"] == pytest.approx(fit.bse[1], rel=2e-2)
    assert cuped["variance_reduction"] > 0.1  # pre-period spending predicts the outcome
    assert cuped["arms"][1]["effect_std_error"] < metrics["revenue"]["arms"][1]["effect_std_error"]

    # Ratio: revenue per purchase, delta method = linearization on the raw rows.
    ratio = metrics["revenue_per_purchase"]
    assert ratio["method"] == "delta"
    estimates, variances = [], []
    for arm in (control, treatment):
        x, y = _by_arm(data.revenue, arms, arm), _by_arm(data.purchases, arms, arm)  # type: ignore[arg-type]
        r_hat = x.sum() / y.sum()
        estimates.append(r_hat)
        variances.append(((x - r_hat * y) / y.mean()).var(ddof=1) / x.size)
    assert ratio["arms"][0]["mean"] == pytest.approx(estimates[0], rel=1e-9)
    assert ratio["arms"][1]["effect"] == pytest.approx(estimates[1] - estimates[0], rel=1e-9)
    assert ratio["arms"][1]["effect_std_error"] == pytest.approx(
        math.sqrt(sum(variances)), rel=1e-6
    )

    # Holm over the whole family (one comparison per metric here).
    p_values = [m["arms"][1]["p_value"] for m in report["metrics"]]
    holm = multipletests(p_values, method="holm")[1]
    assert [m["arms"][1]["p_value_adjusted"] for m in report["metrics"]] == pytest.approx(holm)
    r = client.get(f"/v1/experiments/{eid}/analysis?correction=bh", headers=headers)
    bh = multipletests(p_values, method="fdr_bh")[1]
    assert [m["arms"][1]["p_value_adjusted"] for m in r.json()["metrics"]] == pytest.approx(bh)

    # Running: always-valid p-values, never below the fixed-horizon ones.
    for metric in report["metrics"]:
        arm = metric["arms"][1]
        assert arm["always_valid_p_value"] is not None
        assert arm["always_valid_p_value"] >= arm["p_value"] * (1 - 1e-9)

    # The guardrail: complaints went up in the treatment arm, significantly.
    complaints = metrics["complaints"]["arms"][1]
    assert complaints["guardrail"]["status"] == "worse"
    assert report["guardrails"]["breaches"][0]["metric_name"] == "complaints"
    assert report["guardrails"]["auto_stopped"] is False


def test_regression_matches_statsmodels_ols_hc1_with_strata_fixed_effects(stack: Stack) -> None:
    experiment, arms = start_experiment(stack)
    control, treatment = (a["arm_id"] for a in experiment["arms"])
    eid = experiment["id"]
    data = generate_events(eid, arms, treatment, seed=8)
    send(stack, data.events)
    client, headers = stack.client, stack.headers
    for definition in METRICS[:2]:
        assert client.post("/v1/metric-definitions", json=definition, headers=headers).is_success
    plan = [{"name": n} for n in ("revenue", "revenue_cuped", "spend")]
    r = client.put(
        f"/v1/experiments/{eid}/analysis-metrics", json={"analysis_metrics": plan}, headers=headers
    )
    assert r.status_code == 200, r.text
    r = client.get(f"/v1/experiments/{eid}/analysis?method=regression", headers=headers)
    assert r.status_code == 200, r.text
    metrics = {m["metric_name"]: m for m in r.json()["metrics"]}

    people = stack.people.set_index("participant_id").loc[sorted(arms)]
    treated = np.array([arms[p] == treatment for p in people.index], dtype=float)
    dummies = pd.get_dummies(people["region"], drop_first=True, dtype=float).to_numpy()
    pre = np.array([data.pre_revenue[p] for p in people.index])
    outcomes = {
        "revenue": (np.array([data.revenue[p] for p in people.index]), None),
        "revenue_cuped": (np.array([data.revenue[p] for p in people.index]), pre),
        "spend": (people["spend"].to_numpy(dtype=float), None),
    }
    for name, (y, covariate) in outcomes.items():
        columns = [treated, dummies] + ([covariate] if covariate is not None else [])
        fit = sm.OLS(y, sm.add_constant(np.column_stack(columns))).fit(cov_type="HC1")
        result = metrics[name]["arms"][1]
        assert metrics[name]["method"] == "ols_hc1", metrics[name]
        assert result["effect"] == pytest.approx(fit.params[1], rel=1e-8)
        assert result["effect_std_error"] == pytest.approx(fit.bse[1], rel=1e-8)
        assert result["p_value"] == pytest.approx(fit.pvalues[1], rel=1e-6)
        low, high = fit.conf_int()[1]
        assert (result["ci_lower"], result["ci_upper"]) == pytest.approx((low, high), rel=1e-8)
