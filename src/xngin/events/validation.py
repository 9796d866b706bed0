"""Checks on everything the event store is asked to write, before anything is written.

A batch is all-or-nothing, so every event is checked first and all problems are reported at once,
each named by its place in the batch (``events[3].value``), so a sender can fix them in one go.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from xngin.errors import InvalidInput
from xngin.events.model import EVENT_TYPES, Event
from xngin.timestamps import as_utc

MAX_BATCH_SIZE = 10_000
MAX_ID_LENGTH = 256
# Earlier timestamps are almost always a zero or unit mistake (seconds read as milliseconds).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
# Senders' clocks drift; a day ahead is tolerated, more is a broken clock or a unit mistake.
MAX_CLOCK_SKEW = timedelta(days=1)
# Listing thousands of problems helps nobody; the first ones show the pattern.
MAX_PROBLEMS_LISTED = 20


class InvalidEvents(InvalidInput):
    """Some events of a batch are not acceptable; ``problems`` holds ``(field, message)`` pairs
    for every one of them, ``field`` names the first."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        listed = "; ".join(f"{where}: {what}" for where, what in problems[:MAX_PROBLEMS_LISTED])
        more = len(problems) - MAX_PROBLEMS_LISTED
        suffix = f"; and {more} more" if more > 0 else ""
        super().__init__(
            f"nothing was stored because {len(problems)} problem(s) were found: {listed}{suffix}",
            field=problems[0][0],
        )
        self.problems = problems


def _id_problem(value: object, *, required: bool) -> str | None:
    if value is None:
        return "is required" if required else None
    if not isinstance(value, str) or not value:
        return f"{value!r} is not acceptable; give a non-empty string"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long; at most {MAX_ID_LENGTH} are accepted"
    return None


def _timestamp_problem(value: object, *, received_at: datetime) -> str | None:
    if not isinstance(value, datetime):
        return f"{value!r} is not a date-time"
    if value.tzinfo is None or value.utcoffset() is None:
        return f"{value.isoformat()} has no time zone; add a UTC offset, e.g. 2024-05-01T12:00:00Z"
    latest = received_at + MAX_CLOCK_SKEW
    if not EARLIEST_TIMESTAMP <= value <= latest:
        return (
            f"{value.isoformat()} is outside the accepted range "
            f"{EARLIEST_TIMESTAMP.isoformat()} to {latest.isoformat()}"
        )
    return None


def _event_problems(event: object, *, received_at: datetime) -> Iterator[tuple[str, str]]:
    if not isinstance(event, Event):
        yield "", f"{type(event).__name__} is not an Event"
        return
    if event.type not in EVENT_TYPES:
        yield "type", f"{event.type!r} is not one of {', '.join(EVENT_TYPES)}"
    for name, required in (
        ("event_id", True),
        ("participant_id", True),
        ("experiment_id", event.type == "exposure"),
        ("name", event.type == "outcome"),
        ("arm_id", False),
    ):
        problem = _id_problem(getattr(event, name), required=required)
        if problem is not None:
            yield name, f"{problem} (for an event of type {event.type!r})"
    value = event.value
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        yield "value", f"{value!r} is not a finite number; give a number or null"
    problem = _timestamp_problem(event.timestamp, received_at=received_at)
    if problem is not None:
        yield "timestamp", problem
    try:
        if event.properties:  # most events carry none: skip the encoding
            json.dumps(dict(event.properties), allow_nan=False)
    except (TypeError, ValueError) as exc:
        yield "properties", f"cannot be stored as JSON ({exc}); give an object of JSON values"


def validate_events(events: Sequence[Event], *, received_at: datetime) -> None:
    """Check a batch before anything is written.

    Parameters
    ----------
    events
        The batch, at most :data:`MAX_BATCH_SIZE` events.
    received_at
        The store's clock (UTC); timestamps more than a day ahead of it are refused.

    Raises
    ------
    InvalidEvents
        Listing every bad event by index and field, e.g. ``events[3].value``.
    """
    if len(events) > MAX_BATCH_SIZE:
        raise InvalidEvents(
            [
                (
                    "events",
                    f"a batch of {len(events)} events is too large; send at most {MAX_BATCH_SIZE}",
                )
            ]
        )
    problems = [
        (f"events[{index}].{where}" if where else f"events[{index}]", what)
        for index, event in enumerate(events)
        for where, what in _event_problems(event, received_at=received_at)
    ]
    if problems:
        raise InvalidEvents(problems)


def checked_assignment_rows(
    experiment_id: str, rows: Iterable[tuple[str, str, datetime]]
) -> Iterator[tuple[str, str, datetime]]:
    """Yield assignment rows with ``assigned_at`` in UTC, refusing bad or repeated participants.

    Naive ``assigned_at`` values are taken as UTC: they come from our own app database, which
    stores UTC without an offset.
    """
    problem = _id_problem(experiment_id, required=True)
    if problem is not None:
        raise InvalidInput(f"experiment_id {problem}", field="experiment_id")
    seen: set[str] = set()
    for index, (participant_id, arm_id, assigned_at) in enumerate(rows):
        for name, value in (("participant_id", participant_id), ("arm_id", arm_id)):
            problem = _id_problem(value, required=True)
            if problem is not None:
                raise InvalidInput(f"{name} {problem}", field=f"assignments[{index}].{name}")
        if not isinstance(assigned_at, datetime):
            raise InvalidInput(
                f"assigned_at {assigned_at!r} is not a date-time",
                field=f"assignments[{index}].assigned_at",
            )
        if participant_id in seen:
            raise InvalidInput(
                f"participant {participant_id!r} appears twice; a participant has one arm",
                field=f"assignments[{index}].participant_id",
            )
        seen.add(participant_id)
        yield participant_id, arm_id, as_utc(assigned_at)


def properties_json(properties: Mapping[str, Any]) -> str:
    """The stored form of an event's properties: compact JSON with sorted keys."""
    if not properties:
        return "{}"
    return json.dumps(dict(properties), allow_nan=False, sort_keys=True, separators=(",", ":"))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC, exactly (no float rounding)."""
    return (as_utc(moment) - _EPOCH) // timedelta(microseconds=1)
