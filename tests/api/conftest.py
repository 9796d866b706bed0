from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store.db import upgrade


@pytest.fixture
def runtime(app_database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a migrated app database (SQLite and PostgreSQL) and a DuckDB event store."""
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


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def make_key(runtime: Runtime) -> Callable[..., str]:
    """Issue an API key for an organization (created on first use); returns the plaintext."""

    def make(organization: str = "acme") -> str:
        return issue_api_key(runtime, organization=organization).plaintext

    return make
