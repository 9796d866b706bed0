"""The event store's schema, as an ordered list of versioned DDL steps per backend.

``EventStore.migrate()`` applies the steps whose version is not yet in ``schema_migrations`` and
records each one after it ran. Every statement is written to be safe to repeat (``IF NOT
EXISTS``), so a step interrupted between its DDL and its record is simply applied again.
Append new steps; never edit one that has shipped.

ClickHouse choices (server 18.16, see shared/DEPENDENCY-FACTS.md):

* 18.16 has no ``DateTime64``, so event times are ``timestamp_us Int64`` (microseconds since the
  epoch, UTC); a ``timestamp DateTime`` column is materialized from it for people reading the
  table.
* 18.16 refuses ``Nullable`` columns in the sorting key, so ``experiment_id`` and ``name`` are
  plain ``String`` with ``''`` meaning "none" (validation refuses empty ids and names, so ``''`` is
  never ambiguous).
* ``events`` is a ``ReplacingMergeTree`` sorted by (type, experiment_id, name, participant_id,
  timestamp_us, event_id): exposures of one experiment and outcomes of one name are contiguous,
  which is how the metric queries read them. Ending the key with ``event_id`` makes an identical
  re-sent event collapse into one row, a second line of defence behind the ingest check; reads
  use ``FINAL`` so such a pair is never counted twice.
* No partition key: a batch then becomes one part, written atomically by one ``INSERT`` (a
  partitioned table would split a batch spanning months into several parts, each committed on its
  own).
* ``event_ids`` (fed by a materialized view on every insert) is sorted by ``event_id``, so the
  ingest check "which of these ids exist" reads a few granules instead of scanning every event.
* Assignments are replaced per experiment by writing a new ``generation`` and then switching
  ``assignment_generations`` to it: readers see the old or the new set, never half of one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (ascending, unique), what it does, and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


DUCKDB_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events table",
        (
            """
            CREATE TABLE IF NOT EXISTS events (
                event_id VARCHAR PRIMARY KEY,
                type VARCHAR NOT NULL CHECK (type IN ('exposure', 'outcome')),
                experiment_id VARCHAR,
                participant_id VARCHAR NOT NULL,
                name VARCHAR,
                value DOUBLE,
                arm_id VARCHAR,
                timestamp TIMESTAMP NOT NULL,
                properties VARCHAR NOT NULL,
                received_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "assignments table",
        (
            """
            CREATE TABLE IF NOT EXISTS assignments (
                experiment_id VARCHAR NOT NULL,
                participant_id VARCHAR NOT NULL,
                arm_id VARCHAR NOT NULL,
                assigned_at TIMESTAMP NOT NULL,
                PRIMARY KEY (experiment_id, participant_id)
            )
            """,
        ),
    ),
)

CLICKHOUSE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events table and its event id index",
        (
            """
            CREATE TABLE IF NOT EXISTS events (
                event_id String,
                type Enum8('exposure' = 1, 'outcome' = 2),
                experiment_id String,
                participant_id String,
                name String,
                value Nullable(Float64),
                arm_id Nullable(String),
                timestamp_us Int64,
                timestamp DateTime('UTC')
                    MATERIALIZED toDateTime(intDiv(timestamp_us, 1000000), 'UTC'),
                properties String,
                received_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (type, experiment_id, name, participant_id, timestamp_us, event_id)
            """,
            """
            CREATE TABLE IF NOT EXISTS event_ids (event_id String)
            ENGINE = ReplacingMergeTree() ORDER BY event_id
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_feed TO event_ids
            AS SELECT event_id FROM events
            """,
        ),
    ),
    Migration(
        2,
        "assignments table with generations",
        (
            """
            CREATE TABLE IF NOT EXISTS assignments (
                experiment_id String,
                generation UInt64,
                participant_id String,
                arm_id String,
                assigned_at_us Int64
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (experiment_id, generation, participant_id)
            """,
            """
            CREATE TABLE IF NOT EXISTS assignment_generations (
                experiment_id String,
                generation UInt64
            ) ENGINE = ReplacingMergeTree(generation) ORDER BY experiment_id
            """,
        ),
    ),
)
