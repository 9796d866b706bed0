"""Benchmark: an experiment's analysis over 10,000,000 events, against its bare aggregate SQL.

One experiment, 1,000,000 participants in two arms: assignments in a PostgreSQL app database
(written with COPY) and mirrored in a temporary ClickHouse database; 1,000,000 exposures and
9,000,000 purchase outcomes generated inside ClickHouse (``INSERT ... SELECT`` from
``numbers()``). The metric is revenue: each participant's purchase values in the 7 days after
their first exposure.

* baseline: the per-arm sums of that metric as the store computes them
  (``events.metric_sql.arm_sums``), run directly through clickhouse-driver: the least any
  analysis must pay;
* ours: ``GET /v1/experiments/{id}/analysis`` through the API (in-process client): plan, app
  database counts, the metric's query, who reached the metric, statistics, report.

Both give the same per-arm sums (checked). Two alternating rounds, best of each.
Target: the analysis takes at most 2x the bare SQL. Run ``.venv/bin/python bench/analysis.py``;
the last line is the JSON summary.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_driver import Client
from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.events import EventMetric
from xngin.events.clickhouse_store import ClickHouseDialect
from xngin.events.metric_sql import arm_sums
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store import catalog
from xngin.store.assignments import replace_assignments
from xngin.store.db import upgrade
from xngin.store.models import Arm, Experiment, ExperimentMetric, MetricDefinition
from xngin.store.organizations import get_or_create_organization
from xngin.testing import servers

PARTICIPANTS = 1_000_000
OUTCOMES = 9_000_000
ROUNDS = 2
TARGET = 2.0
WEEK = 7 * 86400
T0_US = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1_000_000)


def setup_app_database(runtime: Runtime) -> tuple[str, str, list[str]]:
    key = issue_api_key(runtime, organization="bench").plaintext
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, "bench")
        ds = catalog.upsert_datasource(
            session, organization_id=org.id, name="wh", url="duckdb:///:memory:", options={}
        )
        pt = catalog.upsert_participant_type(
            session, organization_id=org.id, name="people", datasource=ds, table_name="people",
            unique_id_field="participant_id", fields=[], sheet_url=None,
        )  # fmt: skip
        experiment = Experiment(
            organization_id=org.id, participant_type_id=pt.id, name="bench",
            type="preassigned", state="running", design={"alpha": 0.05}, seed=1,
        )  # fmt: skip
        experiment.arms = [Arm(position=i, name=n) for i, n in enumerate(("control", "nudge"))]
        session.add(experiment)
        session.flush()
        arm_ids = [a.id for a in experiment.arms]
        replace_assignments(
            session, experiment_id=experiment.id,
            participant_ids=[f"p{i}" for i in range(PARTICIPANTS)],
            arm_ids=[arm_ids[i % 2] for i in range(PARTICIPANTS)], strata_json=None,
            assigned_at=datetime.fromtimestamp(T0_US / 1e6 - 86400, UTC),
        )  # fmt: skip
        source = {"kind": "event", "event_name": "purchase", "aggregation": "sum",
                  "window_seconds": WEEK}  # fmt: skip
        session.add(
            MetricDefinition(organization_id=org.id, name="revenue", type="mean", source=source)
        )
        session.add(
            ExperimentMetric(
                experiment_id=experiment.id, metric_name="revenue", position=0, role="primary"
            )
        )
        return key, experiment.id, arm_ids


def generate_events(client: Client, experiment_id: str, arm_ids: list[str]) -> None:
    """The mirror (same ids and arms as the app database) and the events, inside ClickHouse."""
    # Every value is a parameter (clickhouse-driver substitutes them), hence %% for modulo.
    params = {
        "e": experiment_id, "a0": arm_ids[0], "a1": arm_ids[1], "t0": T0_US,
        "assigned": T0_US - 86_400_000_000, "n": PARTICIPANTS, "outcomes": OUTCOMES,
    }  # fmt: skip
    client.execute(
        "INSERT INTO assignments (experiment_id, generation, participant_id, arm_id,"
        " assigned_at_us) SELECT %(e)s, 1, concat('p', toString(number)),"
        " if(number %% 2 = 0, %(a0)s, %(a1)s), %(assigned)s FROM numbers(%(n)s)",
        params,
    )
    client.execute(
        "INSERT INTO assignment_generations (experiment_id, generation) VALUES",
        [(experiment_id, 1)],
    )
    client.execute(
        "INSERT INTO events (event_id, type, experiment_id, participant_id, name, value, arm_id,"
        " timestamp_us, properties, received_at) SELECT concat('x', toString(number)),"
        " 'exposure', %(e)s, concat('p', toString(number)), '', NULL,"
        " if(number %% 2 = 0, %(a0)s, %(a1)s), %(t0)s + number * 1000, '{}', now()"
        " FROM numbers(%(n)s)",
        params,
    )
    # Purchases spread over 10 days after each exposure: about 70% fall in the 7-day window.
    # The nudge arm's purchases are worth 2 more.
    client.execute(
        "INSERT INTO events (event_id, type, experiment_id, participant_id, name, value, arm_id,"
        " timestamp_us, properties, received_at)"
        " SELECT concat('o', toString(number)), 'outcome', '', concat('p', toString(pid)),"
        " 'purchase', toFloat64(number %% 97) + 2 * (pid %% 2), NULL,"
        " %(t0)s + pid * 1000 + (intHash32(number) %% 864000) * 1000000, '{}', now()"
        " FROM (SELECT number, intHash32(number * 7) %% %(n)s AS pid FROM numbers(%(outcomes)s))",
        params,
    )


def bare_sql(client: Client, experiment_id: str) -> tuple[float, dict[str, tuple[Any, ...]]]:
    metric = EventMetric("purchase", "sum", window_seconds=WEEK)
    sql, params = arm_sums(ClickHouseDialect(), experiment_id=experiment_id, metric=metric)
    started = time.perf_counter()
    rows = client.execute(sql, params)
    return time.perf_counter() - started, {r[0]: tuple(r[1:]) for r in rows}


def ours(client: TestClient, key: str, experiment_id: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = client.get(f"/v1/experiments/{experiment_id}/analysis", headers={"X-API-Key": key})
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise SystemExit(f"analysis failed: {r.status_code} {r.text[:300]}")
    return elapsed, r.json()


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers.temporary_postgres_database("xngin_bench") as app_url,
        servers.temporary_clickhouse_database("xngin_bench") as database,
    ):
        store_url = (
            f"clickhouse://default:@{servers.CLICKHOUSE_HOST}:{servers.CLICKHOUSE_PORT}/{database}"
        )
        upgrade(app_url)
        settings = Settings(
            data_dir=Path(tmp), database_url=app_url, event_store_url=store_url,
            scheduler_interval_seconds=0,
        )  # fmt: skip
        runtime = Runtime.start(settings)
        runtime.event_store  # migrate  # noqa: B018
        started = time.perf_counter()
        key, experiment_id, arm_ids = setup_app_database(runtime)
        client = Client(
            host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT, database=database,
            send_receive_timeout=600,
        )  # fmt: skip
        generate_events(client, experiment_id, arm_ids)
        print(f"data: {PARTICIPANTS:,} assignments, {PARTICIPANTS + OUTCOMES:,} events "
              f"(generated in {time.perf_counter() - started:.0f} s)")  # fmt: skip
        bare_times: list[float] = []
        our_times: list[float] = []
        with TestClient(create_app(runtime=runtime)) as api:
            for _ in range(ROUNDS):
                seconds, sums = bare_sql(client, experiment_id)
                bare_times.append(seconds)
                seconds, report = ours(api, key, experiment_id)
                our_times.append(seconds)
        client.disconnect()
        runtime.close()
    arms = report["metrics"][0]["arms"]
    for arm in arms:
        n, total, _ = sums[arm["arm_id"]]
        assert arm["n"] == n and abs(arm["mean"] - total / n) < 1e-9 * abs(total / n), arm
    effect = arms[1]
    print(f"revenue: n = {[a['n'] for a in arms]}, means = {[round(a['mean'], 3) for a in arms]},"
          f" effect {effect['effect']:.3f} (CI {effect['ci_lower']:.3f} to "
          f"{effect['ci_upper']:.3f}), SRM ok: {report['srm']['ok']}")  # fmt: skip
    bare, analysis = min(bare_times), min(our_times)
    ratio = analysis / bare
    print(f"bare aggregate SQL: {', '.join(f'{t:.2f}' for t in bare_times)} s (best {bare:.2f})")
    print(f"GET analysis:       {', '.join(f'{t:.2f}' for t in our_times)} s (best {analysis:.2f})")
    print(f"analysis / bare SQL = {ratio:.2f}")
    summary = {
        "bench": "analysis",
        "value": round(ratio, 3),
        "unit": "x bare SQL time",
        "target": TARGET,
        "met": ratio <= TARGET,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
