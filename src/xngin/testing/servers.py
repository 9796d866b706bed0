"""Find, or refuse, the local PostgreSQL, Redis and ClickHouse servers used by tests and benches."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

POSTGRES_ADMIN_URL = os.environ.get(
    "XNGIN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("XNGIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLICKHOUSE_HOST = os.environ.get("XNGIN_TEST_CLICKHOUSE_HOST", "127.0.0.1")
CLICKHOUSE_PORT = int(os.environ.get("XNGIN_TEST_CLICKHOUSE_PORT", "9000"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip the calling test when the server is down, or fail when running in CI."""
    import pytest

    if port_open(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port}"
    if in_ci():
        pytest.fail(f"{reason}; CI must run these tests for real (.ci/run starts it)")
    pytest.skip(reason)


@contextlib.contextmanager
def temporary_postgres_database(prefix: str = "xngin_test") -> Iterator[str]:
    """Create a uniquely named PostgreSQL database, yield its SQLAlchemy URL, then drop it."""
    admin_url = sa.make_url(POSTGRES_ADMIN_URL)
    require_server("PostgreSQL", admin_url.host or "127.0.0.1", admin_url.port or 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def temporary_clickhouse_database(prefix: str = "xngin_test") -> Iterator[str]:
    """Create a uniquely named ClickHouse database, yield its name, then drop it."""
    require_server("ClickHouse", CLICKHOUSE_HOST, CLICKHOUSE_PORT)
    from clickhouse_driver import Client

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    client = Client(host=CLICKHOUSE_HOST, port=CLICKHOUSE_PORT)
    client.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {name}")
        client.disconnect()


def require_redis() -> str:
    url = sa.make_url(REDIS_URL.replace("redis://", "redis+x://", 1))
    require_server("Redis", url.host or "127.0.0.1", url.port or 6379)
    return REDIS_URL
