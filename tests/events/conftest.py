"""Event stores for tests: every backend, migrated, in a private database or file.

Tests that take ``store`` run once per backend with the same assertions. ``raw_sql`` runs SQL
beside the store through a plain driver connection, for arranging states the public API cannot
produce (an interrupted migration, a duplicate slipping past the ingest check).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xngin.events import ClickHouseEventStore, DuckDBEventStore, EventStore
from xngin.testing import servers

BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("clickhouse", id="clickhouse", marks=pytest.mark.clickhouse),
]


@contextlib.contextmanager
def _open_store(
    backend: str, tmp_dir: Path, clickhouse_database: str | None
) -> Iterator[EventStore]:
    store: EventStore
    if backend == "duckdb":
        store = DuckDBEventStore(tmp_dir / "events.duckdb")
    else:
        assert clickhouse_database is not None
        store = ClickHouseEventStore(
            host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT, database=clickhouse_database
        )
    try:
        store.migrate()
        yield store
    finally:
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """A freshly migrated, empty event store of each backend."""
    database = None
    if request.param == "clickhouse":
        database = request.getfixturevalue("clickhouse_database")
    with _open_store(request.param, tmp_path, database) as opened:
        yield opened


@pytest.fixture(scope="module", params=BACKENDS)
def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventStore]:
    """A migrated event store of each backend shared by one module's read-only tests."""
    tmp_dir = tmp_path_factory.mktemp("events")
    if request.param == "clickhouse":
        with (
            servers.temporary_clickhouse_database() as database,
            _open_store("clickhouse", tmp_dir, database) as opened,
        ):
            yield opened
    else:
        with _open_store("duckdb", tmp_dir, None) as opened:
            yield opened


@pytest.fixture
def raw_sql(store: EventStore) -> Callable[[str], list[tuple[Any, ...]]]:
    """Run one SQL statement (no parameters) on the store's database, outside the store."""

    def run(sql: str) -> list[tuple[Any, ...]]:
        if isinstance(store, DuckDBEventStore):
            import duckdb

            # Same process, same file: DuckDB hands out a connection to the open database.
            with duckdb.connect(store.path) as connection:
                return connection.execute(sql).fetchall()
        assert isinstance(store, ClickHouseEventStore)
        from clickhouse_driver import Client

        client = Client(host=store.host, port=store.port, database=store.database)
        try:
            rows: list[tuple[Any, ...]] = client.execute(sql)
            return rows
        finally:
            client.disconnect()

    return run
