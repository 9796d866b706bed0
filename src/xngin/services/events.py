"""Recording events, mirroring assignments into the event store, and reading event metrics.

``POST /v1/events`` goes through :func:`record_events`. A batch is all or nothing: every event is
checked first (the store's field checks, plus ours below), every problem is reported at once by
its index (``events[3].participant_id``), and only a clean batch is written. What we add to the
store's checks:

* an event's ``experiment_id`` must name an experiment of the caller's organization (422, as
  the experiment is a field of the body, not the resource addressed);
* an exposure records the arm *looked up* from the stored assignment, never one sent by the
  client (the body has no ``arm_id``). An exposure of a participant who is not assigned in that
  experiment is refused (422 naming ``events[i].participant_id``) rather than stored without an
  arm: the analysis could never use it, and storing it silently would hide the sender's bug
  (exposing before looking the participant up). The sender drops the listed events and resends;
  ``event_id`` makes resending the rest harmless.

The reply comes only after the store confirmed the write; when the store is down the request
fails with 503 and nothing was acknowledged, so the sender's retry loses nothing.

The event store joins events to assignments inside itself, so it keeps a mirror of the app
database's assignments: :func:`mirror_assignments` copies an experiment's assignments in chunks
(call it when a preassigned experiment is committed or started), and
:func:`mirror_new_assignment` adds one online first assignment. The analysis re-mirrors by itself
when it finds the mirror's arm counts differ from the app database's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from sqlalchemy.orm import Session

from xngin.errors import Unavailable
from xngin.events import MAX_BATCH_SIZE, Event, EventMetric, EventStore, IngestResult, InvalidEvents
from xngin.events.validation import validate_events
from xngin.services.access import Principal
from xngin.services.analysis_plan import EventSource, RatioSource
from xngin.services.runtime import Runtime
from xngin.stats.regression import RegressionResult, arm_regression
from xngin.stats.regression_rows import ParticipantRows
from xngin.stats.sufficient import CupedStats, MeanStats, RatioStats
from xngin.store.assignments import iter_assignment_chunks
from xngin.store.models import Assignment, Experiment

log = logging.getLogger(__name__)

# Parameters per IN list: well below SQLite's and PostgreSQL's limits on bound parameters.
LOOKUP_CHUNK = 1000
MIRROR_CHUNK = 50_000
REGRESSION_CHUNK = 5000
_INDEX = re.compile(r"events\[(\d+)\]")


# Requests are validated straight into xngin.events.Event, which takes about 40% less time than a
# model plus a conversion (measured on batches of 5,000); EventIn only documents the shape.
class EventIn(BaseModel):
    """One exposure or outcome of a participant."""

    model_config = ConfigDict(extra="forbid", title="Event")

    event_id: str = Field(description="Your unique id for the event; resending it adds nothing.")
    type: Literal["exposure", "outcome"] = Field(
        description="exposure: the participant saw their arm of experiment_id (required); "
        "outcome: the participant did name (required), optionally worth value."
    )
    experiment_id: str | None = Field(
        default=None,
        description="The experiment; outcomes without one count for every experiment the "
        "participant is in.",
    )
    participant_id: str = Field(description="The participant's unique id.")
    name: str | None = Field(default=None, description="Outcome name, e.g. purchase.")
    value: float | None = Field(default=None, description="What the outcome is worth, or null.")
    timestamp: datetime = Field(
        description="When it happened, with a time zone (e.g. 2024-05-01T12:00:00Z)."
    )
    properties: dict[str, Any] = Field(default_factory=dict, description="Free-form details.")


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Annotated[Event, WithJsonSchema(EventIn.model_json_schema())]] = Field(
        max_length=MAX_BATCH_SIZE, description=f"At most {MAX_BATCH_SIZE:,} events."
    )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _own_experiments(session: Session, principal: Principal, ids: set[str]) -> set[str]:
    table = Experiment.__table__.c
    found: set[str] = set()
    for chunk in _chunks(sorted(ids), LOOKUP_CHUNK):
        found.update(
            session.scalars(
                sa.select(table.id).where(
                    table.organization_id == principal.organization_id, table.id.in_(chunk)
                )
            )
        )
    return found


def assigned_arms(
    session: Session, experiment_id: str, participant_ids: set[str]
) -> dict[str, str]:
    """``{participant_id: arm_id}`` of those of ``participant_ids`` assigned in the experiment."""
    table = Assignment.__table__.c
    arms: dict[str, str] = {}
    for chunk in _chunks(sorted(participant_ids), LOOKUP_CHUNK):
        rows = session.execute(
            sa.select(table.participant_id, table.arm_id).where(
                table.experiment_id == experiment_id, table.participant_id.in_(chunk)
            )
        )
        arms.update((str(p), str(a)) for p, a in rows)
    return arms


def record_events(
    runtime: Runtime, session: Session, principal: Principal, events: Sequence[Event]
) -> IngestResult:
    """Check a batch and store it in the event store, all or nothing, idempotent by event_id.

    Parameters
    ----------
    runtime, session, principal
        The process runtime (its event store), the request's session (read only) and the caller.
    events : sequence of Event
        At most 10,000 events, as parsed from the request; ``arm_id`` must be None (it is looked
        up for exposures).

    Returns
    -------
    IngestResult
        ``accepted`` new events and ``duplicates`` (already stored, or repeated in the batch).

    Raises
    ------
    xngin.events.InvalidEvents
        A 422 listing every problem by index; nothing is stored.
    xngin.errors.Unavailable
        The event store cannot be reached; nothing is stored or acknowledged.
    """
    events = list(events)
    problems: list[tuple[int, str, str]] = [
        (i, f"events[{i}].arm_id", "is not accepted: the arm is looked up from the assignment")
        for i, event in enumerate(events)
        if event.arm_id is not None
    ]
    named = {e.experiment_id for e in events if e.experiment_id}
    own = _own_experiments(session, principal, named) if named else set()
    exposed: dict[str, set[str]] = {}
    for i, event in enumerate(events):
        if event.experiment_id and event.experiment_id not in own:
            problems.append(
                (
                    i,
                    f"events[{i}].experiment_id",
                    f"experiment {event.experiment_id!r} does not exist in your organization",
                )
            )
        elif event.type == "exposure" and event.experiment_id:
            exposed.setdefault(event.experiment_id, set()).add(event.participant_id)
    arms = {eid: assigned_arms(session, eid, pids) for eid, pids in exposed.items()}
    for i, event in enumerate(events):
        if event.type != "exposure" or event.experiment_id not in arms:
            continue
        arm = arms[event.experiment_id].get(event.participant_id)
        if arm is None:
            problems.append(
                (
                    i,
                    f"events[{i}].participant_id",
                    f"participant {event.participant_id!r} is not assigned in experiment "
                    f"{event.experiment_id!r}; record exposures only after the participant's "
                    "treatment status was looked up",
                )
            )
        else:
            events[i] = replace(event, arm_id=arm)
    if problems:
        _raise_all(problems, events)
    return runtime.event_store.ingest(events)


def _raise_all(problems: list[tuple[int, str, str]], events: list[Event]) -> None:
    """Raise one InvalidEvents with our problems and the store's field checks, by index."""
    try:
        validate_events(events, received_at=datetime.now(UTC))
    except InvalidEvents as exc:
        for where, what in exc.problems:
            found = _INDEX.match(where)
            problems.append((int(found.group(1)) if found else -1, where, what))
    problems.sort(key=lambda p: p[0])
    raise InvalidEvents([(where, what) for _, where, what in problems])


# Assignments mirrored into the event store --------------------------------------------------


def _assignment_rows(
    connection: sa.Connection, experiment_id: str, chunk_size: int
) -> Iterator[tuple[str, str, datetime]]:
    for chunk in iter_assignment_chunks(
        connection, experiment_id=experiment_id, chunk_size=chunk_size
    ):
        for participant_id, arm_id, assigned_at, _ in chunk:
            yield participant_id, arm_id, assigned_at


def mirror_assignments(
    runtime: Runtime,
    experiment_id: str,
    *,
    connection: sa.Connection | None = None,
    chunk_size: int = MIRROR_CHUNK,
) -> int:
    """Make the event store's copy of an experiment's assignments equal the app database's.

    Parameters
    ----------
    runtime : Runtime
        Its app database is read, its event store written.
    experiment_id : str
        The experiment.
    connection : sqlalchemy.Connection, optional
        Read through this connection (e.g. ``session.connection()`` inside the transaction that
        just wrote the assignments, which another connection would not see yet); default a new
        connection of the app engine.
    chunk_size : int
        Rows read and written at a time (>= 1); memory stays bounded whatever the audience.

    Returns
    -------
    int
        Assignments mirrored. Readers of the store see the old set until the new one is complete.

    Raises
    ------
    xngin.errors.Unavailable
        The event store cannot be reached (the app database is left as it was).
    """
    store = runtime.event_store
    if connection is not None:
        return store.record_assignments(
            experiment_id, _assignment_rows(connection, experiment_id, chunk_size)
        )
    with runtime.app_engine.connect() as conn:
        return store.record_assignments(
            experiment_id, _assignment_rows(conn, experiment_id, chunk_size)
        )


def mirror_new_assignment(
    runtime: Runtime, *, experiment_id: str, participant_id: str, arm_id: str, assigned_at: datetime
) -> bool:
    """Add one online first assignment to the event store's mirror; True when it was written.

    Never raises for an unreachable store: serving a participant must not fail because the
    event store is down. The miss is logged, and the next analysis re-mirrors the experiment
    when it finds the counts differ.
    """
    try:
        runtime.event_store.add_assignment(
            experiment_id=experiment_id,
            participant_id=participant_id,
            arm_id=arm_id,
            assigned_at=assigned_at,
        )
    except Unavailable as exc:
        log.warning("assignment of %s in %s not mirrored: %s", participant_id, experiment_id, exc)
        return False
    return True


# Event metrics, per arm ------------------------------------------------------------------------

ArmStats = MeanStats | RatioStats | CupedStats


@dataclass(frozen=True)
class EventMetricStats:
    """One event metric's per-arm statistics, as read from the event store in one query.

    Attributes
    ----------
    arm_stats : dict of arm_id to MeanStats, RatioStats or CupedStats
        For the arms that have participants in the store.
    store_assigned : dict of arm_id to int, or None
        Participants per arm the store knows, when the query counts every one of them (every
        aggregation but ``mean``); compared with the app database to find a stale mirror.
    with_outcome : dict of arm_id to int, or None
        Participants per arm with at least one of the metric's events in its window, when the
        query tells.
    """

    arm_stats: dict[str, ArmStats]
    store_assigned: dict[str, int] | None
    with_outcome: dict[str, int] | None


def event_metric_stats(
    store: EventStore, experiment_id: str, source: EventSource | RatioSource, *, cuped: bool
) -> EventMetricStats:
    """Per-arm sufficient statistics of an event metric, computed inside the event store.

    Parameters
    ----------
    store : EventStore
        The event store holding the experiment's events and assignment mirror.
    experiment_id : str
        The experiment.
    source : EventSource or RatioSource
        What to aggregate per participant.
    cuped : bool
        For an event source: pair the metric with its own pre-period value (CUPED covariate).

    Returns
    -------
    EventMetricStats
    """
    if isinstance(source, RatioSource):
        pairs = store.arm_ratio_stats(
            experiment_id, numerator=source.numerator, denominator=source.denominator
        )
        counts_all = "mean" not in (source.numerator.aggregation, source.denominator.aggregation)
        ratios: dict[str, ArmStats] = {
            a: RatioStats(p.n, p.sum_x, p.sum_x_sq, p.sum_y, p.sum_y_sq, p.sum_xy)
            for a, p in pairs.items()
        }
        return EventMetricStats(
            ratios, {a: p.n for a, p in pairs.items()} if counts_all else None, None
        )
    metric = source.metric
    counts_all = metric.aggregation != "mean"
    if cuped:
        pairs = store.arm_cuped_stats(experiment_id, metric)
        adjusted: dict[str, ArmStats] = {
            a: CupedStats(
                n=p.n,
                sum_y=p.sum_y,
                sum_y_sq=p.sum_y_sq,
                sum_x=p.sum_x,
                sum_x_sq=p.sum_x_sq,
                sum_xy=p.sum_xy,
            )
            for a, p in pairs.items()
        }
        counts = {a: p.n for a, p in pairs.items()}
        return EventMetricStats(
            adjusted, counts if counts_all else None, None if counts_all else counts
        )
    if not counts_all:
        sums = store.arm_metric_stats(experiment_id, metric)
        means: dict[str, ArmStats] = {
            a: MeanStats(s.n, s.sum, max(s.sum_sq, 0.0)) for a, s in sums.items()
        }
        # A mean has a value exactly for the participants with a valued event in the window.
        return EventMetricStats(means, None, {a: s.n for a, s in sums.items()})
    # One pass gives the metric and who reached it: the pair query computes both per participant
    # (x = any event of the metric's name in the same window, 0 without), so the check "assigned
    # participants without outcome" costs no second scan of the events.
    reached = EventMetric(metric.event_name, "binary", metric.window_seconds)
    pairs = store.arm_cuped_stats(experiment_id, metric, covariate=reached)
    values: dict[str, ArmStats] = {
        a: MeanStats(p.n, p.sum_y, max(p.sum_y_sq, 0.0)) for a, p in pairs.items()
    }
    return EventMetricStats(
        values,
        {a: p.n for a, p in pairs.items()},
        {a: round(p.sum_x) for a, p in pairs.items()},
    )


# Event metrics, per participant (regression) ---------------------------------------------------


class StratumCodes:
    """Small integers for strata (the stored JSON text, None without strata), in order of first
    sight: the stratum index a regression's fixed effects take."""

    def __init__(self) -> None:
        self.codes: dict[str | None, int] = {}

    def __call__(self, stratum: str | None) -> int:
        return self.codes.setdefault(stratum, len(self.codes))


def strata_of(
    session: Session, experiment_id: str, participant_ids: Sequence[str]
) -> dict[str, str | None]:
    """``{participant_id: stratum JSON text or None}`` from the app database's assignments."""
    table = Assignment.__table__.c
    strata: dict[str, str | None] = {}
    for chunk in _chunks(participant_ids, LOOKUP_CHUNK):
        rows = session.execute(
            sa.select(table.participant_id, table.strata).where(
                table.experiment_id == experiment_id, table.participant_id.in_(list(chunk))
            )
        )
        strata.update((str(p), s) for p, s in rows)
    return strata


@dataclass(frozen=True)
class EventRegression:
    """An event metric's regression and the raw per-arm statistics of the rows it used."""

    result: RegressionResult
    arm_stats: dict[str, MeanStats]


def event_metric_regression(
    store: EventStore,
    session: Session,
    *,
    experiment_id: str,
    arm_ids: Sequence[str],
    metric: EventMetric,
    cuped: bool,
    stratified: bool,
    alpha: float,
    chunk_size: int = REGRESSION_CHUNK,
) -> EventRegression:
    """OLS of an event metric on arms (HC1), streaming per-participant rows from the store.

    Parameters
    ----------
    store : EventStore
        Holds the events and the assignment mirror.
    session : Session
        The app database, where each chunk's strata are looked up (``stratified``).
    experiment_id : str
        The experiment.
    arm_ids : sequence of str
        The arms in order; the first is the baseline. Rows of other arms are ignored.
    metric : EventMetric
        The outcome per participant; participants without a value (mean) are left out.
    cuped : bool
        Add the metric's own pre-period value as a covariate (read in the same query).
    stratified : bool
        Add strata fixed effects (the stratum stored with each assignment).
    alpha : float
        Two-sided level in (0, 1).
    chunk_size : int
        Rows per chunk; memory holds one chunk. With a covariate the rows are read twice.

    Returns
    -------
    EventRegression
    """
    covariate = metric.as_pre_period() if cuped else None
    arm_index = {arm: i for i, arm in enumerate(arm_ids)}
    codes = StratumCodes()
    sums = np.zeros((len(arm_index), 3))
    passes = [0]

    def chunks() -> Iterator[ParticipantRows]:
        passes[0] += 1
        for rows in store.participant_metric_rows(
            experiment_id, metric, chunk_size=chunk_size, covariate=covariate
        ):
            rows = [r for r in rows if r.arm_id in arm_index]
            if not rows:
                continue
            ids = [r.participant_id for r in rows]
            strata = strata_of(session, experiment_id, ids) if stratified else {}
            y = np.array([r.value for r in rows])
            arms = np.array([arm_index[r.arm_id] for r in rows], dtype=np.intp)
            if passes[0] == 1:
                for column, weights in enumerate((None, y, y * y)):
                    sums[:, column] += np.bincount(arms, weights=weights, minlength=len(arm_index))
            yield ParticipantRows(
                outcome=y,
                arm=arms,
                stratum=np.array([codes(strata.get(i)) for i in ids], dtype=np.intp),
                covariates=None
                if covariate is None
                else np.array([r.covariate or 0.0 for r in rows]),
            )

    result = arm_regression(chunks, n_arms=len(arm_index), baseline=0, alpha=alpha)
    arm_stats = {
        arm: MeanStats(int(sums[i, 0]), float(sums[i, 1]), float(sums[i, 2]))
        for arm, i in arm_index.items()
        if sums[i, 0]
    }
    return EventRegression(result, arm_stats)
