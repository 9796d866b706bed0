"""Time in xngin is UTC. One helper for the naive datetimes some stores hand back."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value (SQLite and DuckDB return those for UTC columns) is taken
    to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
