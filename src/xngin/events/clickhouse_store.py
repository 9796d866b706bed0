"""The production event store: ClickHouse over the native protocol (``clickhouse-driver``).

Written for, and tested on, ClickHouse 18.16 (Debian's package); the schema choices that server
forces are explained in :mod:`xngin.events.migrations`. A ``clickhouse-driver`` client is not
thread-safe, so each thread gets its own; streaming reads get a private one, because a half-read
result would otherwise block the thread's next query.

Ingest: the ids of a batch are looked up in ``event_ids`` in one query (sent as an external
table, so a 10,000-id batch does not hit ``max_query_size``), then the unseen events go in one
``INSERT``. One INSERT below ``max_insert_block_size`` rows into an unpartitioned MergeTree is one
part, committed atomically, and the driver returns only after the server confirmed it. Two
processes ingesting the same new id at the same instant could both insert it; the rows then share
their sorting key, and ``FINAL`` reads them as one.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from clickhouse_driver import Client, errors

from xngin.errors import InvalidInput
from xngin.events.metric_sql import Dialect
from xngin.events.migrations import CLICKHOUSE_MIGRATIONS, Migration
from xngin.events.model import Event
from xngin.events.store import EventStore
from xngin.events.validation import epoch_us, properties_json

ASSIGNMENT_CHUNK = 100_000
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Server error codes that mean "cannot be used now" rather than "wrong query": unknown database
# (81: not migrated yet, or a wrong URL), timeout (159), unknown user (192), wrong password
# (193), too many queries (202), socket timeout (209), network error (210), authentication
# failed (516, newer servers).
_UNAVAILABLE_CODES = frozenset({81, 159, 192, 193, 202, 209, 210, 516})

_CURRENT_GENERATION = (
    "SELECT max(generation) FROM assignment_generations WHERE experiment_id = %(experiment_id)s"
)


class ClickHouseDialect(Dialect):
    left_join = "ALL LEFT JOIN"
    events_table = "events FINAL"
    event_time_us = "timestamp_us"
    no_experiment = "experiment_id = ''"

    def param(self, name: str) -> str:
        return f"%({name})s"

    def current_assignments(self) -> str:
        return (
            # Only our own constant is formatted in; the experiment id stays a parameter.
            "SELECT participant_id, arm_id, assigned_at_us FROM assignments FINAL"  # noqa: S608
            " WHERE experiment_id = %(experiment_id)s"
            f" AND generation = ({_CURRENT_GENERATION})"
        )


class ClickHouseEventStore(EventStore):
    """Event store in database ``database`` of the ClickHouse server at ``host:port`` (native)."""

    migrations = CLICKHOUSE_MIGRATIONS
    dialect = ClickHouseDialect()

    def __init__(
        self,
        *,
        host: str,
        port: int = 9000,
        database: str,
        user: str = "default",
        password: str = "",
        connect_timeout: float = 5.0,
        query_timeout: float = 300.0,
    ) -> None:
        super().__init__()
        if not _DATABASE_NAME.fullmatch(database):
            raise InvalidInput(
                f"ClickHouse database name {database!r} is not acceptable; use letters, digits "
                "and underscores, starting with a letter or underscore",
                field="database",
            )
        self.host = host
        self.port = port
        self.database = database
        self._client_options: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "connect_timeout": connect_timeout,
            "send_receive_timeout": query_timeout,
            "sync_request_timeout": connect_timeout,
        }
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()

    def describe(self) -> str:
        return f"ClickHouse at {self.host}:{self.port}, database {self.database}"

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                client.disconnect()
            self._clients.clear()
            self._local = threading.local()

    def _is_unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, errors.ServerException):
            return exc.code in _UNAVAILABLE_CODES
        # OSError covers refused connections and socket timeouts; EOFError a dropped connection.
        return isinstance(exc, errors.NetworkError | errors.SocketTimeoutError | EOFError | OSError)

    def _reason(self, exc: BaseException) -> str:
        # Server messages carry the server's stack trace; its first sentence is the reason.
        message = getattr(exc, "message", None)
        if isinstance(message, str) and message.strip():
            code = getattr(exc, "code", None)
            first = message.split(" Stack trace:")[0].strip().splitlines()[0]
            return f"{first} (code {code})" if code is not None else first
        return super()._reason(exc)

    def _new_client(self, database: str | None = None) -> Client:
        return Client(database=database or self.database, **self._client_options)

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._new_client()
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _applied_versions(self) -> set[int]:
        # The database itself is part of the schema: create it through the always-present one.
        bootstrap = self._new_client(database="default")
        try:
            bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        finally:
            bootstrap.disconnect()
        client = self._client()
        client.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version UInt32, description String, applied_at DateTime('UTC'))"
            " ENGINE = ReplacingMergeTree() ORDER BY version"
        )
        return {int(v) for (v,) in client.execute("SELECT version FROM schema_migrations")}

    def _apply(self, migration: Migration) -> None:
        # ClickHouse DDL is not transactional; each statement is repeatable (IF NOT EXISTS) and
        # the version is recorded last, so an interrupted step is simply run again.
        client = self._client()
        for statement in migration.statements:
            client.execute(statement)
        client.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES",
            [(migration.version, migration.description, datetime.now(UTC))],
        )

    def _insert_unseen(self, events: Sequence[Event], *, received_at: datetime) -> int:
        client = self._client()
        batch_ids = {
            "name": "batch_ids",
            "structure": [("event_id", "String")],
            "data": [{"event_id": e.event_id} for e in events],
        }
        known = {
            event_id
            for (event_id,) in client.execute(
                "SELECT DISTINCT event_id FROM event_ids WHERE event_id IN batch_ids",
                external_tables=[batch_ids],
            )
        }
        new = [e for e in events if e.event_id not in known]
        if new:
            client.execute(
                "INSERT INTO events (event_id, type, experiment_id, participant_id, name, value,"
                " arm_id, timestamp_us, properties, received_at) VALUES",
                [
                    (
                        e.event_id,
                        e.type,
                        e.experiment_id or "",
                        e.participant_id,
                        e.name or "",
                        None if e.value is None else float(e.value),
                        e.arm_id,
                        epoch_us(e.timestamp),
                        properties_json(e.properties),
                        received_at,
                    )
                    for e in new
                ],
            )
        return len(new)

    def _current_generation(self, client: Client, experiment_id: str) -> int:
        rows = client.execute(_CURRENT_GENERATION, {"experiment_id": experiment_id})
        return int(rows[0][0] or 0) if rows else 0

    def _insert_assignments(
        self, client: Client, rows: list[tuple[str, int, str, str, int]]
    ) -> None:
        client.execute(
            "INSERT INTO assignments"
            " (experiment_id, generation, participant_id, arm_id, assigned_at_us) VALUES",
            rows,
        )

    def _replace_assignments(
        self, experiment_id: str, rows: Iterator[tuple[str, str, datetime]]
    ) -> int:
        client = self._client()
        previous = self._current_generation(client, experiment_id)
        generation = max(time.time_ns(), previous + 1)
        count = 0
        while chunk := list(islice(rows, ASSIGNMENT_CHUNK)):
            self._insert_assignments(
                client, [(experiment_id, generation, p, a, epoch_us(t)) for p, a, t in chunk]
            )
            count += len(chunk)
        # The switch: until this row lands, readers keep seeing the previous generation.
        client.execute(
            "INSERT INTO assignment_generations (experiment_id, generation) VALUES",
            [(experiment_id, generation)],
        )
        if previous:
            # Asynchronous clean-up (a mutation); readers already ignore older generations.
            client.execute(
                "ALTER TABLE assignments DELETE"
                " WHERE experiment_id = %(experiment_id)s AND generation < %(generation)s",
                {"experiment_id": experiment_id, "generation": generation},
            )
        return count

    def _upsert_assignment(
        self, *, experiment_id: str, participant_id: str, arm_id: str, assigned_at: datetime
    ) -> None:
        client = self._client()
        generation = self._current_generation(client, experiment_id)
        first = generation == 0
        if first:
            generation = time.time_ns()
        # Same sorting key as an earlier row of this participant: FINAL keeps the last inserted.
        self._insert_assignments(
            client, [(experiment_id, generation, participant_id, arm_id, epoch_us(assigned_at))]
        )
        if first:
            client.execute(
                "INSERT INTO assignment_generations (experiment_id, generation) VALUES",
                [(experiment_id, generation)],
            )

    def _fetch_all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._client().execute(sql, params or None)
        return rows

    def _fetch_chunks(
        self, sql: str, params: dict[str, Any], *, chunk_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        client = self._new_client()
        try:
            rows = client.execute_iter(
                sql, params or None, settings={"max_block_size": max(chunk_size, 1024)}
            )
            while chunk := list(islice(rows, chunk_size)):
                yield chunk
        finally:
            client.disconnect()
