"""Open the event store named by a URL from the settings."""

from __future__ import annotations

from urllib.parse import SplitResult, unquote, urlsplit

from xngin.errors import ConfigError
from xngin.events.clickhouse_store import ClickHouseEventStore
from xngin.events.duckdb_store import DuckDBEventStore
from xngin.events.store import EventStore

ACCEPTED_URLS = (
    "duckdb:///relative/path.duckdb, duckdb:////absolute/path.duckdb, duckdb:///:memory:, "
    "clickhouse://user:password@host:9000/database"
)


def _masked(parts: SplitResult) -> str:
    """The URL without its password, for messages."""
    if parts.password is None:
        return parts.geturl()
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def open_event_store(url: str) -> EventStore:
    """The event store at ``url``; call ``migrate()`` on it before first use.

    Parameters
    ----------
    url
        ``duckdb:///events.duckdb`` (path after the third slash, as SQLAlchemy reads SQLite and
        DuckDB URLs: relative with three slashes, absolute with four; ``:memory:`` for a
        throwaway store), or ``clickhouse://user:password@host:port/database`` (also
        ``clickhouse+native://``; native protocol, port 9000, user ``default``, empty password
        and database ``default`` when left out; user and password percent-decoded).

    Raises
    ------
    ConfigError
        The URL names no supported store; the message never shows the password.
    """
    parts = urlsplit(url)
    if parts.scheme == "duckdb":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not path:
            raise ConfigError(
                f"event store URL {_masked(parts)!r} names no DuckDB file; "
                f"accepted forms: {ACCEPTED_URLS}",
                field="event_store_url",
            )
        return DuckDBEventStore(unquote(path))
    if parts.scheme in ("clickhouse", "clickhouse+native"):
        try:
            port = parts.port or 9000
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ConfigError(
                f"event store URL {_masked(parts)!r} needs a host and a numeric port; "
                f"accepted forms: {ACCEPTED_URLS}",
                field="event_store_url",
            )
        return ClickHouseEventStore(
            host=parts.hostname,
            port=port,
            database=unquote(parts.path.lstrip("/")) or "default",
            user=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
        )
    raise ConfigError(
        f"event store URL scheme {parts.scheme!r} is not supported; accepted forms: "
        f"{ACCEPTED_URLS}",
        field="event_store_url",
    )
