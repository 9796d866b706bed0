"""Schema migrations: ordered, recorded, and safe to run again, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from xngin.events import ClickHouseEventStore, DuckDBEventStore, Event, EventStore
from xngin.events.migrations import CLICKHOUSE_MIGRATIONS, DUCKDB_MIGRATIONS

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_migrations_are_numbered_one_up_without_gaps() -> None:
    for migrations in (DUCKDB_MIGRATIONS, CLICKHOUSE_MIGRATIONS):
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert all(m.statements and m.description for m in migrations)


def test_both_backends_have_the_same_schema_versions() -> None:
    assert [m.version for m in DUCKDB_MIGRATIONS] == [m.version for m in CLICKHOUSE_MIGRATIONS]


def test_migrate_records_every_version(store: EventStore) -> None:
    expected = [m.version for m in store.migrations]

    assert store.applied_migrations() == expected


def test_migrate_again_applies_nothing_and_keeps_data(store: EventStore) -> None:
    store.ingest([Event("o1", "outcome", "p1", T0, name="visit")])

    assert store.migrate() == []
    assert store.migrate() == []
    assert store.count_events() == 1


def test_step_interrupted_before_its_record_is_applied_again(
    store: EventStore, raw_sql: Callable[[str], list[tuple[Any, ...]]]
) -> None:
    # The DDL of step 2 ran but its record was lost: migrate must finish the job, not fail.
    store.record_assignments("exp", [("p1", "a", T0)])
    if isinstance(store, ClickHouseEventStore):  # 18.16 has no DELETE: lose every record
        raw_sql("TRUNCATE TABLE schema_migrations")
    else:
        raw_sql("DELETE FROM schema_migrations WHERE version = 2")
    assert 2 not in store.applied_migrations()

    applied = store.migrate()

    assert 2 in applied
    assert store.applied_migrations() == [m.version for m in store.migrations]
    assert store.arm_exposure_counts("exp") == {"a": 0}


def test_migrate_creates_the_database_or_file_when_missing(
    store: EventStore, tmp_path: Any
) -> None:
    fresh: EventStore
    if isinstance(store, DuckDBEventStore):
        fresh = DuckDBEventStore(tmp_path / "brand-new.duckdb")
    else:
        assert isinstance(store, ClickHouseEventStore)
        fresh = ClickHouseEventStore(
            host=store.host, port=store.port, database=f"{store.database}_fresh"
        )
    try:
        assert fresh.migrate() == [m.version for m in fresh.migrations]
        assert fresh.count_events() == 0
    finally:
        if isinstance(fresh, ClickHouseEventStore):
            from clickhouse_driver import Client

            Client(host=fresh.host, port=fresh.port).execute(
                f"DROP DATABASE IF EXISTS {fresh.database}"
            )
        fresh.close()
