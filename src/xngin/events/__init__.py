"""The event store: exposures, outcome events and assignments, aggregated per arm in place.

Open one with :func:`open_event_store` (DuckDB file by default, ClickHouse in production), run
``migrate()``, then ``ingest()`` batches of :class:`Event`, keep assignments current with
``record_assignments()`` / ``add_assignment()``, and read per-arm sufficient statistics with
``arm_metric_stats()``, ``arm_ratio_stats()``, ``arm_cuped_stats()``, ``arm_participation()``,
or per-participant values with ``participant_metric_rows()``.
"""

from xngin.events.clickhouse_store import ClickHouseEventStore
from xngin.events.duckdb_store import DuckDBEventStore
from xngin.events.factory import open_event_store
from xngin.events.model import (
    Aggregation,
    ArmParticipation,
    ArmSums,
    Event,
    EventMetric,
    EventType,
    IngestResult,
    PairSums,
    ParticipantMetricRow,
)
from xngin.events.store import EventStore
from xngin.events.validation import MAX_BATCH_SIZE, InvalidEvents

__all__ = [
    "MAX_BATCH_SIZE",
    "Aggregation",
    "ArmParticipation",
    "ArmSums",
    "ClickHouseEventStore",
    "DuckDBEventStore",
    "Event",
    "EventMetric",
    "EventStore",
    "EventType",
    "IngestResult",
    "InvalidEvents",
    "PairSums",
    "ParticipantMetricRow",
    "open_event_store",
]
