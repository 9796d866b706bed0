"""DuckDB-only behaviour: a file held by another process, and the primary key on event ids."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from xngin.errors import Unavailable
from xngin.events import DuckDBEventStore, Event, EventMetric

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVENT = Event("o1", "outcome", "p1", T0, name="purchase", value=3.0)

_HOLD_FILE = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


def test_file_held_by_another_process_raises_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    with DuckDBEventStore(path) as creator:
        creator.migrate()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_FILE, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        store = DuckDBEventStore(path)

        with pytest.raises(Unavailable) as caught:
            store.ingest([EVENT])

        assert caught.value.status == 503
        assert f"DuckDB file {path}" in caught.value.message
    finally:
        holder.communicate("", timeout=10)

    # Once the other process lets go, the same store object works.
    assert store.ingest([EVENT]).accepted == 1


def test_file_in_a_missing_directory_raises_unavailable(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "no-such-dir" / "events.duckdb")

    with pytest.raises(Unavailable):
        store.migrate()


def test_primary_key_refuses_a_duplicate_that_slipped_past_the_check(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    store.migrate()
    store.record_assignments("exp", [("p1", "a", T0)])
    store.ingest([EVENT])

    with duckdb.connect(store.path) as raw, pytest.raises(duckdb.ConstraintException):
        raw.execute("INSERT INTO events SELECT * FROM events")

    assert store.count_events() == 1
    assert store.arm_metric_stats("exp", EventMetric("purchase"))["a"].sum == 3.0
    store.close()


def test_in_memory_store_works_without_a_file() -> None:
    store = DuckDBEventStore(":memory:")
    store.migrate()

    assert store.ingest([EVENT]).accepted == 1
    assert store.count_events() == 1
