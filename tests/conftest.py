from __future__ import annotations

from collections.abc import Iterator

import pytest

from xngin.testing import servers


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own (dropped afterwards)."""
    with servers.temporary_postgres_database() as url:
        yield url


@pytest.fixture
def clickhouse_database() -> Iterator[str]:
    """A fresh ClickHouse database name on the local server (dropped afterwards)."""
    with servers.temporary_clickhouse_database() as name:
        yield name


@pytest.fixture
def redis_url() -> str:
    return servers.require_redis()
