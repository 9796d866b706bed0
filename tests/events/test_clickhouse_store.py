"""ClickHouse-only behaviour: unreachable servers, and the second line of defence on ids."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from clickhouse_driver import Client

from xngin.errors import Unavailable
from xngin.events import ClickHouseEventStore, Event, EventMetric, InvalidEvents, open_event_store
from xngin.testing import servers

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVENT = Event("o1", "outcome", "p1", T0, name="purchase", value=3.0)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable(closed_port: int) -> Iterator[ClickHouseEventStore]:
    store = ClickHouseEventStore(
        host="127.0.0.1", port=closed_port, database="xngin_nowhere", password="s3cret-pass"
    )
    yield store
    store.close()


def assert_names_store_without_password(error: Unavailable, port: int) -> None:
    assert error.status == 503
    assert error.code == "unavailable"
    assert f"ClickHouse at 127.0.0.1:{port}" in error.message
    assert "s3cret" not in error.message


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.ingest([EVENT]), id="ingest"),
        pytest.param(lambda s: s.migrate(), id="migrate"),
        pytest.param(lambda s: s.ping(), id="ping"),
        pytest.param(lambda s: s.arm_metric_stats("exp", EventMetric("purchase")), id="stats"),
        pytest.param(lambda s: s.record_assignments("exp", [("p1", "a", T0)]), id="assign"),
        pytest.param(
            lambda s: list(s.participant_metric_rows("exp", EventMetric("purchase"))), id="rows"
        ),
    ],
)
def test_unreachable_server_raises_unavailable(
    unreachable: ClickHouseEventStore, closed_port: int, call: object
) -> None:
    with pytest.raises(Unavailable) as caught:
        call(unreachable)  # type: ignore[operator]

    assert_names_store_without_password(caught.value, closed_port)


def test_bad_batch_is_refused_before_the_server_is_asked(
    unreachable: ClickHouseEventStore,
) -> None:
    with pytest.raises(InvalidEvents):
        unreachable.ingest([Event("o1", "outcome", "p1", T0)])  # outcome without a name


def test_store_from_url_hides_the_password_when_unreachable(closed_port: int) -> None:
    store = open_event_store(f"clickhouse://reader:s3cret-pass@127.0.0.1:{closed_port}/db")

    with pytest.raises(Unavailable) as caught:
        store.ingest([EVENT])

    assert_names_store_without_password(caught.value, closed_port)


@pytest.mark.clickhouse
def test_wrong_password_raises_unavailable(clickhouse_database: str) -> None:
    store = ClickHouseEventStore(
        host=servers.CLICKHOUSE_HOST,
        port=servers.CLICKHOUSE_PORT,
        database=clickhouse_database,
        password="s3cret-pass",
    )

    with pytest.raises(Unavailable) as caught:
        store.ping()

    assert "password" in caught.value.message.lower()
    assert "s3cret" not in caught.value.message
    assert "Stack trace" not in caught.value.message


@pytest.mark.clickhouse
def test_unmigrated_database_raises_unavailable(clickhouse_database: str) -> None:
    store = ClickHouseEventStore(
        host=servers.CLICKHOUSE_HOST,
        port=servers.CLICKHOUSE_PORT,
        database=f"{clickhouse_database}_missing",
    )

    with pytest.raises(Unavailable) as caught:
        store.count_events()

    assert "doesn't exist" in caught.value.message


@pytest.mark.clickhouse
def test_identical_rows_slipping_past_the_ingest_check_are_read_once(
    clickhouse_database: str,
) -> None:
    store = ClickHouseEventStore(
        host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT, database=clickhouse_database
    )
    store.migrate()
    store.record_assignments("exp", [("p1", "a", T0)])
    store.ingest([EVENT])
    # What two processes racing on the same new id would leave behind: a second identical row.
    raw = Client(host=store.host, port=store.port, database=store.database)
    raw.execute("INSERT INTO events SELECT * FROM events")
    assert raw.execute("SELECT count() FROM events")[0][0] == 2

    assert store.count_events() == 1
    assert store.arm_metric_stats("exp", EventMetric("purchase"))["a"].sum == 3.0
    raw.disconnect()
    store.close()


def test_database_names_are_checked_before_use_in_sql() -> None:
    from xngin.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        ClickHouseEventStore(host="127.0.0.1", database="x; DROP DATABASE y")
    assert caught.value.field == "database"
