"""The event store's contract, and everything about it that does not depend on the backend.

A backend (:class:`~xngin.events.duckdb_store.DuckDBEventStore`,
:class:`~xngin.events.clickhouse_store.ClickHouseEventStore`) supplies a SQL dialect and a few
primitives (apply a migration, insert unseen events, replace assignments, run a query); this class
builds ingest, assignments and the per-arm aggregates on top of them.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from xngin.errors import InvalidInput, Unavailable
from xngin.events import metric_sql
from xngin.events.metric_sql import Dialect, MetricColumn
from xngin.events.migrations import Migration
from xngin.events.model import (
    ArmParticipation,
    ArmSums,
    Event,
    EventMetric,
    IngestResult,
    PairSums,
    ParticipantMetricRow,
)
from xngin.events.validation import checked_assignment_rows, validate_events
from xngin.timestamps import as_utc


class EventStore(ABC):
    """Records exposures, outcome events and assignments; aggregates them per arm in place.

    Open one with :func:`xngin.events.open_event_store`, run :meth:`migrate` once, then share it
    between threads. Every method raises :class:`~xngin.errors.Unavailable` when the backend
    cannot be reached, and :class:`~xngin.errors.InvalidInput` for unacceptable input.
    """

    migrations: ClassVar[tuple[Migration, ...]]
    dialect: Dialect

    def __init__(self) -> None:
        # Makes "check which ids exist, insert the others" one step for this process's threads.
        self._ingest_lock = threading.Lock()

    # -- what a backend supplies ----------------------------------------------------------------

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages: never contains credentials."""

    @abstractmethod
    def _is_unavailable(self, exc: BaseException) -> bool:
        """Whether a driver exception means "cannot be reached or used right now"."""

    def _reason(self, exc: BaseException) -> str:
        """A one-line reason for an unavailability message (drivers may override)."""
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store reconnects if used again."""

    @abstractmethod
    def _applied_versions(self) -> set[int]:
        """Versions recorded in ``schema_migrations`` (creating that table if needed)."""

    @abstractmethod
    def _apply(self, migration: Migration) -> None:
        """Run the migration's statements and record its version."""

    @abstractmethod
    def _insert_unseen(self, events: Sequence[Event], *, received_at: datetime) -> int:
        """Insert those of ``events`` (unique ids) not stored yet, all or none; return how many."""

    @abstractmethod
    def _replace_assignments(
        self, experiment_id: str, rows: Iterator[tuple[str, str, datetime]]
    ) -> int:
        """Make ``rows`` the experiment's assignments, switching over at once; return the count."""

    @abstractmethod
    def _upsert_assignment(
        self, *, experiment_id: str, participant_id: str, arm_id: str, assigned_at: datetime
    ) -> None:
        """Add or replace one participant's assignment."""

    @abstractmethod
    def _fetch_all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""

    @abstractmethod
    def _fetch_chunks(
        self, sql: str, params: dict[str, Any], *, chunk_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Run a query and yield its rows in lists of at most ``chunk_size``, streaming."""

    # -- shared behaviour -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn the driver's connection failures into :class:`Unavailable`."""
        try:
            yield
        except Unavailable:
            raise
        except Exception as exc:
            if not self._is_unavailable(exc):
                raise
            reason = self._reason(exc)
            raise Unavailable(
                f"the event store ({self.describe()}) cannot be used right now: {reason}; "
                "nothing from this request was stored, retry later",
                field="event_store",
            ) from exc

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def migrate(self) -> list[int]:
        """Apply the schema steps not applied yet, in order; safe to call any number of times.

        Returns
        -------
        The versions applied by this call (empty when the schema was up to date).
        """
        with self._reachable():
            applied = self._applied_versions()
            done = []
            for migration in sorted(self.migrations, key=lambda m: m.version):
                if migration.version not in applied:
                    self._apply(migration)
                    done.append(migration.version)
            return done

    def applied_migrations(self) -> list[int]:
        """The schema versions recorded as applied, ascending."""
        with self._reachable():
            return sorted(self._applied_versions())

    def ping(self) -> None:
        """Check the store answers; raises :class:`Unavailable` when it does not."""
        with self._reachable():
            self._fetch_all("SELECT 1", {})

    def ingest(self, events: Sequence[Event]) -> IngestResult:
        """Store a batch of events, all or nothing, idempotent by ``event_id``.

        Parameters
        ----------
        events
            At most 10,000 events. An id already stored, or repeated inside the batch (the first
            occurrence wins), is not stored again and counts as a duplicate.

        Returns
        -------
        IngestResult
            ``accepted + duplicates == len(events)``. It is returned only after the backend has
            confirmed the write.

        Raises
        ------
        InvalidEvents
            (an :class:`~xngin.errors.InvalidInput`) listing every bad event; nothing is stored.
        Unavailable
            The store cannot be reached; nothing is acknowledged, so the sender retries.
        """
        events = list(events)
        received_at = datetime.now(UTC)
        validate_events(events, received_at=received_at)
        first_by_id: dict[str, Event] = {}
        for event in events:
            first_by_id.setdefault(event.event_id, event)
        accepted = 0
        if first_by_id:
            with self._ingest_lock, self._reachable():
                accepted = self._insert_unseen(list(first_by_id.values()), received_at=received_at)
        return IngestResult(accepted=accepted, duplicates=len(events) - accepted)

    def count_events(self) -> int:
        """How many distinct events are stored."""
        with self._reachable():
            sql = f"SELECT count(*) FROM {self.dialect.events_table}"  # noqa: S608 - our constant
            return int(self._fetch_all(sql, {})[0][0])

    def record_assignments(
        self, experiment_id: str, rows: Iterable[tuple[str, str, datetime]]
    ) -> int:
        """Replace all assignments of an experiment with ``rows``.

        Parameters
        ----------
        experiment_id
            The experiment.
        rows
            ``(participant_id, arm_id, assigned_at)``; each participant at most once. Naive
            ``assigned_at`` values are taken as UTC. May be a generator of millions of rows.

        Returns
        -------
        The number of assignments recorded. Readers see the old set until the new one is
        complete.
        """
        checked = checked_assignment_rows(experiment_id, rows)
        with self._reachable():
            return self._replace_assignments(experiment_id, checked)

    def add_assignment(
        self, *, experiment_id: str, participant_id: str, arm_id: str, assigned_at: datetime
    ) -> None:
        """Add one participant's assignment (online experiments), replacing an earlier one."""
        row = next(checked_assignment_rows(experiment_id, [(participant_id, arm_id, assigned_at)]))
        with self._reachable():
            self._upsert_assignment(
                experiment_id=experiment_id,
                participant_id=row[0],
                arm_id=row[1],
                assigned_at=as_utc(row[2]),
            )

    def arm_metric_stats(self, experiment_id: str, metric: EventMetric) -> dict[str, ArmSums]:
        """Per arm ``n``, ``sum`` and ``sum_sq`` of a metric's per-participant values.

        Parameters
        ----------
        experiment_id
            The experiment; its current assignments define participants and arms.
        metric
            How a participant's events become one value (see :class:`EventMetric`).

        Returns
        -------
        ``{arm_id: ArmSums}`` for every arm with assigned participants, sorted by arm id.
        """
        _check_experiment_id(experiment_id)
        sql, params = metric_sql.arm_sums(self.dialect, experiment_id=experiment_id, metric=metric)
        with self._reachable():
            rows = self._fetch_all(sql, params)
        return {
            str(arm): ArmSums(n=int(n), sum=float(total), sum_sq=float(total_sq))
            for arm, n, total, total_sq in rows
        }

    def arm_ratio_stats(
        self, experiment_id: str, *, numerator: EventMetric, denominator: EventMetric
    ) -> dict[str, PairSums]:
        """Per arm sums for a ratio metric (delta method): ``x`` is the numerator's
        per-participant value, ``y`` the denominator's; participants need both."""
        _check_experiment_id(experiment_id)
        sql, params = metric_sql.arm_pair_sums(
            self.dialect,
            experiment_id=experiment_id,
            x=MetricColumn.of(numerator),
            y=MetricColumn.of(denominator),
            x_missing_is_zero=False,
        )
        return self._pair_sums(sql, params)

    def arm_cuped_stats(
        self, experiment_id: str, metric: EventMetric, *, covariate: EventMetric | None = None
    ) -> dict[str, PairSums]:
        """Per arm sums for CUPED: ``y`` is the metric, ``x`` its pre-period covariate.

        Parameters
        ----------
        experiment_id
            The experiment.
        metric
            The outcome metric (not a pre-period one).
        covariate
            Defaults to ``metric.as_pre_period()``: the same events before the anchor, over the
            same window length. A participant without a covariate value has 0.
        """
        _check_experiment_id(experiment_id)
        if metric.pre_period:
            raise InvalidInput(
                "a CUPED outcome metric must measure after the anchor; got pre_period=true",
                field="metric.pre_period",
            )
        sql, params = metric_sql.arm_pair_sums(
            self.dialect,
            experiment_id=experiment_id,
            x=MetricColumn.of(covariate or metric.as_pre_period()),
            y=MetricColumn.of(metric),
            x_missing_is_zero=True,
        )
        return self._pair_sums(sql, params)

    def _pair_sums(self, sql: str, params: dict[str, Any]) -> dict[str, PairSums]:
        with self._reachable():
            rows = self._fetch_all(sql, params)
        return {
            str(arm): PairSums(int(n), *(float(v or 0) for v in sums)) for arm, n, *sums in rows
        }

    def participant_metric_rows(
        self,
        experiment_id: str,
        metric: EventMetric,
        *,
        chunk_size: int = 10_000,
        covariate: EventMetric | None = None,
    ) -> Iterator[list[ParticipantMetricRow]]:
        """Per-participant values, streamed in chunks, for regression-based analyses.

        Parameters
        ----------
        experiment_id
            The experiment.
        metric
            The value per participant; participants without one (mean over no events) are left
            out.
        chunk_size
            Rows per chunk, >= 1; memory stays bounded by it whatever the experiment's size.
        covariate
            Also return this metric as ``covariate`` (0 when missing).

        Yields
        ------
        Lists of :class:`ParticipantMetricRow`, ordered by participant id.
        """
        _check_experiment_id(experiment_id)
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidInput(
                f"chunk_size {chunk_size!r} is not acceptable; give an integer >= 1",
                field="chunk_size",
            )
        sql, params = metric_sql.participant_rows(
            self.dialect, experiment_id=experiment_id, metric=metric, covariate=covariate
        )
        # Checked above, streamed below: bad arguments fail at the call, not at the first next().
        return self._stream_rows(sql, params, chunk_size=chunk_size)

    def _stream_rows(
        self, sql: str, params: dict[str, Any], *, chunk_size: int
    ) -> Iterator[list[ParticipantMetricRow]]:
        with self._reachable():
            for chunk in self._fetch_chunks(sql, params, chunk_size=chunk_size):
                yield [
                    ParticipantMetricRow(
                        str(row[0]),
                        str(row[1]),
                        float(row[2]),
                        float(row[3]) if len(row) > 3 else None,
                    )
                    for row in chunk
                ]

    def arm_participation(
        self, experiment_id: str, *, event_name: str | None = None
    ) -> dict[str, ArmParticipation]:
        """Per arm: assigned participants, how many were exposed, how many have an outcome.

        Parameters
        ----------
        experiment_id
            The experiment.
        event_name
            Count only outcomes of this name; None counts any outcome. Outcomes count at or
            after the participant's anchor (first exposure, else assignment), without a limit.
        """
        _check_experiment_id(experiment_id)
        sql, params = metric_sql.arm_participation(
            self.dialect, experiment_id=experiment_id, event_name=event_name
        )
        with self._reachable():
            rows = self._fetch_all(sql, params)
        return {
            str(arm): ArmParticipation(int(assigned), int(exposed or 0), int(outcome or 0))
            for arm, assigned, exposed, outcome in rows
        }

    def arm_exposure_counts(self, experiment_id: str) -> dict[str, int]:
        """Per arm, how many assigned participants have at least one exposure."""
        return {arm: p.exposed for arm, p in self.arm_participation(experiment_id).items()}

    def arm_counts_without_outcome(
        self, experiment_id: str, *, event_name: str | None = None
    ) -> dict[str, int]:
        """Per arm, how many assigned participants have no outcome (of ``event_name``, or any)."""
        participation = self.arm_participation(experiment_id, event_name=event_name)
        return {arm: p.without_outcome for arm, p in participation.items()}


def _check_experiment_id(experiment_id: object) -> None:
    if not isinstance(experiment_id, str) or not experiment_id:
        raise InvalidInput(
            f"experiment_id {experiment_id!r} is not acceptable; give a non-empty string",
            field="experiment_id",
        )
