"""Opening an event store from a settings URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from xngin.errors import ConfigError
from xngin.events import ClickHouseEventStore, DuckDBEventStore, open_event_store


def test_duckdb_url_with_three_slashes_is_a_relative_path() -> None:
    store = open_event_store("duckdb:///data/events.duckdb")

    assert isinstance(store, DuckDBEventStore)
    assert store.path == "data/events.duckdb"


def test_duckdb_url_with_four_slashes_is_an_absolute_path(tmp_path: Path) -> None:
    store = open_event_store(f"duckdb:///{tmp_path}/events.duckdb")

    assert isinstance(store, DuckDBEventStore)
    assert store.path == f"{tmp_path}/events.duckdb"
    store.migrate()
    assert (tmp_path / "events.duckdb").exists()
    store.close()


def test_duckdb_memory_url_opens_a_throwaway_store() -> None:
    store = open_event_store("duckdb:///:memory:")

    assert isinstance(store, DuckDBEventStore)
    assert store.path == ":memory:"


def test_clickhouse_url_gives_every_connection_part() -> None:
    store = open_event_store("clickhouse://reader:p%40ss@ch.internal:9440/analytics")

    assert isinstance(store, ClickHouseEventStore)
    assert (store.host, store.port, store.database) == ("ch.internal", 9440, "analytics")
    options = store._client_options
    assert (options["user"], options["password"]) == ("reader", "p@ss")


def test_clickhouse_url_defaults_port_user_and_database() -> None:
    store = open_event_store("clickhouse+native://ch.internal")

    assert isinstance(store, ClickHouseEventStore)
    assert (store.port, store.database, store._client_options["user"]) == (
        9000,
        "default",
        "default",
    )


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///events.db",
        "duckdb://",
        "duckdb://host/events.duckdb",
        "clickhouse:///analytics",
        "clickhouse://reader:secret@ch.internal:notaport/db",
    ],
)
def test_unsupported_urls_are_refused_without_showing_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_event_store(url)

    assert caught.value.field == "event_store_url"
    assert "duckdb:///" in caught.value.message  # the accepted forms are listed
    assert "secret@" not in caught.value.message
