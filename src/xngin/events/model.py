"""Values that go into and come out of the event store.

Inputs are :class:`Event` (what happened to a participant) and :class:`EventMetric` (how to turn a
participant's events into one number). Outputs are per-arm sufficient statistics: sums from which
means, variances and covariances follow, so that only a handful of numbers per arm leave the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, get_args

from xngin.errors import InvalidInput

EventType = Literal["exposure", "outcome"]
Aggregation = Literal["sum", "count", "mean", "binary"]

EVENT_TYPES: tuple[str, ...] = get_args(EventType)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


@dataclass(frozen=True)
class Event:
    """One thing that happened to a participant.

    Attributes
    ----------
    event_id
        The sender's unique id for this event; sending the same id again adds nothing.
    type
        ``"exposure"``: the participant saw their arm of ``experiment_id`` (required then).
        ``"outcome"``: the participant did ``name`` (required then), optionally worth ``value``.
    participant_id
        The participant's unique id, as in the experiment's assignments.
    timestamp
        When it happened; must carry a time zone (stored as UTC, microsecond precision).
    experiment_id
        The experiment the event belongs to. Outcomes without one count for every experiment the
        participant is in; outcomes with one count only for that experiment.
    name
        The outcome's name, e.g. ``"purchase"``; metrics select events by it.
    value
        A finite number the outcome is worth (e.g. revenue), or None.
    arm_id
        The arm the sender believes it showed; stored for audits, analysis uses the assignment.
    properties
        Free-form JSON-serializable details, stored as a JSON string.
    """

    event_id: str
    type: EventType
    participant_id: str
    timestamp: datetime
    experiment_id: str | None = None
    name: str | None = None
    value: float | None = None
    arm_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """What a batch did: ``accepted`` events were stored, ``duplicates`` were already known
    (stored earlier, or repeated inside the batch)."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class EventMetric:
    """How to turn a participant's outcome events into one number.

    The events considered are outcomes named ``event_name`` that carry no experiment id or this
    experiment's id, inside the participant's window. The window is anchored at the participant's
    first exposure to the experiment, or at their assignment time when no exposure was recorded.

    Attributes
    ----------
    event_name
        The outcome name to aggregate.
    aggregation
        ``"sum"``: sum of values (events without a value add 0); ``"count"``: number of events;
        ``"binary"``: 1 if there is any event, else 0; ``"mean"``: mean of the non-null values.
        Assigned participants without events count as 0 for sum, count and binary. For mean they
        have no value and are left out of ``n`` (a mean over nothing is undefined, and 0 would
        pull the arm's mean towards zero by how many participants did nothing).
    window_seconds
        Length of the window in seconds (> 0), or None for no limit.
    pre_period
        False: the window runs forward from the anchor, ``anchor <= t < anchor + window``.
        True: it runs backwards, ``anchor - window <= t < anchor``; the pre-period value is a
        covariate unaffected by treatment (CUPED).
    """

    event_name: str
    aggregation: Aggregation = "sum"
    window_seconds: float | None = None
    pre_period: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.event_name, str) or not self.event_name:
            raise InvalidInput(
                f"metric event_name {self.event_name!r} is not acceptable; "
                "give the non-empty name of an outcome event",
                field="metric.event_name",
            )
        if self.aggregation not in AGGREGATIONS:
            raise InvalidInput(
                f"metric aggregation {self.aggregation!r} is not one of {', '.join(AGGREGATIONS)}",
                field="metric.aggregation",
            )
        if self.window_seconds is not None and not (
            isinstance(self.window_seconds, int | float)
            and math.isfinite(self.window_seconds)
            and self.window_seconds > 0
        ):
            raise InvalidInput(
                f"metric window_seconds {self.window_seconds!r} is not acceptable; "
                "give a positive number of seconds, or null for no limit",
                field="metric.window_seconds",
            )

    @property
    def window_us(self) -> int | None:
        """The window in whole microseconds (the store's time resolution), or None."""
        if self.window_seconds is None:
            return None
        return round(self.window_seconds * 1_000_000)

    def as_pre_period(self) -> EventMetric:
        """The same metric over the pre-period: the natural CUPED covariate."""
        return EventMetric(
            event_name=self.event_name,
            aggregation=self.aggregation,
            window_seconds=self.window_seconds,
            pre_period=True,
        )


@dataclass(frozen=True)
class ArmSums:
    """Sufficient statistics of one metric in one arm: ``n`` participants with a value, the
    ``sum`` of their values and the ``sum_sq`` of squared values."""

    n: int
    sum: float
    sum_sq: float

    def __add__(self, other: ArmSums) -> ArmSums:
        return ArmSums(self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)


@dataclass(frozen=True)
class PairSums:
    """Sufficient statistics of two per-participant values ``x`` and ``y`` in one arm.

    For a ratio metric ``x`` is the numerator and ``y`` the denominator (delta method); for CUPED
    ``y`` is the outcome and ``x`` the pre-period covariate. ``n`` counts participants with both.
    """

    n: int
    sum_x: float
    sum_x_sq: float
    sum_y: float
    sum_y_sq: float
    sum_xy: float

    def __add__(self, other: PairSums) -> PairSums:
        return PairSums(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_x_sq + other.sum_x_sq,
            self.sum_y + other.sum_y,
            self.sum_y_sq + other.sum_y_sq,
            self.sum_xy + other.sum_xy,
        )


@dataclass(frozen=True)
class ArmParticipation:
    """Participants of one arm: ``assigned``, of whom ``exposed`` have an exposure and
    ``with_outcome`` have an outcome event at or after their anchor."""

    assigned: int
    exposed: int
    with_outcome: int

    @property
    def without_outcome(self) -> int:
        return self.assigned - self.with_outcome


class ParticipantMetricRow(NamedTuple):
    """One participant's metric value (and covariate when one was asked for, else None)."""

    participant_id: str
    arm_id: str
    value: float
    covariate: float | None = None
