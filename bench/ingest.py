"""Benchmark: events per second through ``POST /v1/events`` into ClickHouse, end to end.

A real uvicorn server (two workers) on loopback, with a migrated SQLite app database holding one
running experiment (20,000 assigned participants) and an event store in a temporary ClickHouse
database of its own. Batches of 5,000 events (10% exposures, whose arm the service looks up in
the app database; 90% outcomes, half tagged with the experiment), their JSON encoded before the
clock starts, are posted by four client threads with keep-alive connections. The run is bounded:
60 batches (300,000 events) or 60 s per round, whichever comes first; best of three
rounds, as load from other processes on the machine comes and goes.

Measured in the same run, on the same rows:

* baseline ``bare INSERT``: clickhouse-driver inserting the rows straight into a copy of the
  ``events`` table, one INSERT per batch: what the server takes without any checks;
* ``store.ingest``: our event store in-process (validation, id lookup, insert), no HTTP;
* ``HTTP``: the whole path (JSON, API key, org and assignment lookups, store).

Target: 50,000 events/s through HTTP. Run ``.venv/bin/python bench/ingest.py``; the last line is
the JSON summary.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from clickhouse_driver import Client

from xngin.events import ClickHouseEventStore
from xngin.services.access import issue_api_key
from xngin.services.events import EventBatch
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store import catalog
from xngin.store.assignments import replace_assignments
from xngin.store.db import upgrade
from xngin.store.models import Arm, Experiment
from xngin.store.organizations import get_or_create_organization
from xngin.testing import servers

BATCH = 5000
BATCHES = 60
PARTICIPANTS = 20_000
THREADS = 4
TIME_LIMIT = 60.0
ROUNDS = 3
TARGET = 50_000.0
NOW = datetime.now(UTC).replace(microsecond=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_app_database(runtime: Runtime) -> tuple[str, str]:
    """One organization, key and running experiment with assigned participants."""
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
            type="preassigned", state="running", design={}, seed=1,
        )  # fmt: skip
        experiment.arms = [Arm(position=i, name=n) for i, n in enumerate(("control", "nudge"))]
        session.add(experiment)
        session.flush()
        arm_ids = [a.id for a in experiment.arms]
        replace_assignments(
            session, experiment_id=experiment.id,
            participant_ids=[f"p{i}" for i in range(PARTICIPANTS)],
            arm_ids=[arm_ids[i % 2] for i in range(PARTICIPANTS)], strata_json=None,
            assigned_at=NOW - timedelta(days=3),
        )  # fmt: skip
        return key, experiment.id


def make_batches(experiment_id: str, prefix: str) -> list[list[dict[str, Any]]]:
    batches = []
    for b in range(BATCHES):
        events = []
        for i in range(BATCH):
            n = b * BATCH + i
            pid = f"p{(n * 7919) % PARTICIPANTS}"
            at = (NOW - timedelta(hours=12) + timedelta(milliseconds=n)).isoformat()
            if i % 10 == 0:
                events.append({"event_id": f"{prefix}{n}", "type": "exposure",
                               "experiment_id": experiment_id, "participant_id": pid,
                               "timestamp": at})  # fmt: skip
            else:
                event = {"event_id": f"{prefix}{n}", "type": "outcome", "participant_id": pid,
                         "name": "purchase", "value": float(n % 97), "timestamp": at,
                         "properties": {"channel": "app"}}  # fmt: skip
                if i % 2:
                    event["experiment_id"] = experiment_id
                events.append(event)
        batches.append(events)
    return batches


def bare_insert(database: str, batches: list[list[dict[str, Any]]]) -> float:
    """Seconds to INSERT the rows into a copy of the events table, one INSERT per batch."""
    client = Client(host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT, database=database)
    try:
        client.execute("CREATE TABLE IF NOT EXISTS bare_events AS events")
        rows = [
            [
                (e["event_id"], e["type"], e.get("experiment_id", ""), e["participant_id"],
                 e.get("name", ""), e.get("value"), None,
                 int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1e6),
                 json.dumps(e.get("properties", {})), NOW)
                for e in batch
            ]
            for batch in batches
        ]  # fmt: skip
        started = time.perf_counter()
        for batch_rows in rows:
            client.execute(
                "INSERT INTO bare_events (event_id, type, experiment_id, participant_id, name,"
                " value, arm_id, timestamp_us, properties, received_at) VALUES",
                batch_rows,
            )
        return time.perf_counter() - started
    finally:
        client.disconnect()


def store_ingest(database: str, batches: list[list[dict[str, Any]]]) -> float:
    """Seconds for ``EventStore.ingest`` of the same events (already parsed), in-process."""
    store = ClickHouseEventStore(
        host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT, database=database
    )
    parsed = [EventBatch.model_validate({"events": batch}).events for batch in batches]
    started = time.perf_counter()
    for events in parsed:
        store.ingest(events)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "xngin.api.main:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "2", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code < 600:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not start within 60 s")


def post_all(port: int, key: str, bodies: list[bytes]) -> tuple[float, int, list[str]]:
    """Post the bodies from THREADS threads; returns seconds, events accepted and errors."""
    accepted = [0]
    errors: list[str] = []
    lock = threading.Lock()
    queue: Iterator[bytes] = iter(bodies)
    started = time.perf_counter()

    def worker() -> None:
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while time.perf_counter() - started < TIME_LIMIT:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                r = client.post("/v1/events", content=body, headers=headers)
                with lock:
                    if r.status_code == 200:
                        accepted[0] += r.json()["accepted"]
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, accepted[0], errors


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers.temporary_clickhouse_database("xngin_bench") as database,
    ):
        app_url = f"sqlite:///{Path(tmp) / 'app.sqlite'}"
        store_url = (
            f"clickhouse://default:@{servers.CLICKHOUSE_HOST}:{servers.CLICKHOUSE_PORT}/{database}"
        )
        upgrade(app_url)
        runtime = Runtime.start(
            Settings(data_dir=Path(tmp), database_url=app_url, event_store_url=store_url)
        )
        runtime.event_store  # migrate once, before the workers start  # noqa: B018
        key, experiment_id = setup_app_database(runtime)
        runtime.close()

        env = {
            **os.environ,
            "XNGIN_DATABASE_URL": app_url,
            "XNGIN_EVENT_STORE_URL": store_url,
            "XNGIN_DATA_DIR": tmp,
            "XNGIN_SCHEDULER_INTERVAL_SECONDS": "0",
            "XNGIN_LOG_LEVEL": "warning",
        }
        port = free_port()
        server = serve(env, port)
        bare, in_process, http = [], [], []
        errors: list[str] = []
        try:
            warm = [json.dumps({"events": b}).encode() for b in make_batches(experiment_id, "w-")]
            post_all(port, key, warm[:4])
            # Rounds alternate the three ways, so a burst of load elsewhere hits them alike.
            for round_ in range(ROUNDS):
                bare.append(bare_insert(database, make_batches(experiment_id, f"b{round_}-")))
                rows = make_batches(experiment_id, f"s{round_}-")
                in_process.append(store_ingest(database, rows))
                bodies = [
                    json.dumps({"events": b}).encode()
                    for b in make_batches(experiment_id, f"h{round_}-")
                ]
                elapsed, accepted, failed = post_all(port, key, bodies)
                errors += failed
                http.append(accepted / elapsed)
        finally:
            server.terminate()
            server.wait(timeout=30)
        if errors:
            raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
        sent = BATCH * BATCHES
        http_rate = max(http)
        print(f"events per run: {sent:,} in batches of {BATCH:,}; {THREADS} client threads; "
              f"best of {ROUNDS} rounds")  # fmt: skip
        print(f"bare INSERT (clickhouse-driver, no checks):  {sent / min(bare):12,.0f} events/s")
        store_rate = sent / min(in_process)
        print(f"store.ingest in-process (checks, ids, insert): {store_rate:10,.0f} events/s")
        print(f"POST /v1/events via uvicorn, 2 workers:        {http_rate:12,.0f} events/s "
              f"(rounds: {', '.join(f'{r:,.0f}' for r in http)})")  # fmt: skip
        summary = {
            "bench": "ingest",
            "value": round(http_rate),
            "unit": "events/s",
            "target": TARGET,
            "met": http_rate >= TARGET,
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
