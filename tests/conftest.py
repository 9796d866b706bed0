from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store.db import upgrade
from xngin.testing import servers

ROOT = Path(__file__).resolve().parent.parent

# Tests read the committed testing settings, never a developer's own xngin.settings.json or .env.
os.environ["XNGIN_SETTINGS_FILE"] = str(ROOT / "xngin.testing.settings.json")


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


@pytest.fixture(params=["sqlite", "postgres"])
def app_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty app database URL on each supported backend (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite'}"
    else:
        with servers.temporary_postgres_database() as url:
            yield url


@pytest.fixture
def runtime(app_database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a migrated app database (each backend), a DuckDB event store in tmp_path
    and the in-process cache."""
    upgrade(app_database_url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=app_database_url,
        event_store_url=f"duckdb:///{tmp_path / 'events.duckdb'}",
        cache_url="memory://",
    )
    rt = Runtime.start(settings)
    yield rt
    rt.close()
