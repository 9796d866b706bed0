"""Checks on events and assignment rows, before anything reaches a store."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from xngin.errors import InvalidInput
from xngin.events import Event, InvalidEvents
from xngin.events.validation import (
    MAX_ID_LENGTH,
    checked_assignment_rows,
    epoch_us,
    validate_events,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def problems_of(**fields: Any) -> list[tuple[str, str]]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "type": "outcome",
        "participant_id": "p1",
        "timestamp": NOW - timedelta(hours=1),
        "name": "purchase",
    }
    base.update(fields)
    try:
        validate_events([Event(**base)], received_at=NOW)
    except InvalidEvents as error:
        return error.problems
    return []


def test_a_well_formed_outcome_and_exposure_pass() -> None:
    assert problems_of(value=12.5, properties={"channel": "sms", "n": [1, 2]}) == []
    assert problems_of(type="exposure", name=None, experiment_id="exp", arm_id="a") == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "click"}, "events[0].type"),
        ({"event_id": ""}, "events[0].event_id"),
        ({"event_id": "x" * (MAX_ID_LENGTH + 1)}, "events[0].event_id"),
        ({"participant_id": None}, "events[0].participant_id"),
        ({"participant_id": 17}, "events[0].participant_id"),
        ({"name": None}, "events[0].name"),
        ({"type": "exposure", "experiment_id": None}, "events[0].experiment_id"),
        ({"experiment_id": ""}, "events[0].experiment_id"),
        ({"value": math.nan}, "events[0].value"),
        ({"value": -math.inf}, "events[0].value"),
        ({"value": "12"}, "events[0].value"),
        ({"value": True}, "events[0].value"),
        ({"timestamp": datetime(2026, 1, 15, 11, 0)}, "events[0].timestamp"),
        ({"timestamp": datetime(1999, 12, 31, tzinfo=UTC)}, "events[0].timestamp"),
        ({"timestamp": NOW + timedelta(days=2)}, "events[0].timestamp"),
        ({"timestamp": "2026-01-15T11:00:00Z"}, "events[0].timestamp"),
        ({"properties": {"x": math.nan}}, "events[0].properties"),
        ({"properties": {"when": datetime(2026, 1, 1)}}, "events[0].properties"),
    ],
)
def test_each_bad_field_is_named(fields: dict[str, Any], field: str) -> None:
    assert [where for where, _ in problems_of(**fields)] == [field]


def test_small_clock_skew_is_tolerated() -> None:
    assert problems_of(timestamp=NOW + timedelta(hours=23)) == []


def test_offsets_other_than_utc_are_accepted() -> None:
    assert (
        problems_of(timestamp=datetime(2026, 1, 15, 8, 0, tzinfo=timezone(-timedelta(hours=3))))
        == []
    )


def test_message_lists_problems_and_says_nothing_was_stored() -> None:
    events = [
        Event("e0", "outcome", "p1", NOW, name="a"),
        Event("e1", "outcome", "p1", NOW, name="a", value=math.inf),
        Event("e2", "outcome", "", NOW, name=None),
    ]

    with pytest.raises(InvalidEvents) as caught:
        validate_events(events, received_at=NOW)

    assert [f for f, _ in caught.value.problems] == [
        "events[1].value",
        "events[2].participant_id",
        "events[2].name",
    ]
    assert caught.value.message.startswith("nothing was stored because 3 problem(s)")
    assert "events[2].name: is required" in caught.value.message


def test_long_problem_lists_are_cut_in_the_message_but_kept_whole() -> None:
    events = [Event(f"e{i}", "outcome", "p1", NOW, name=None) for i in range(50)]

    with pytest.raises(InvalidEvents) as caught:
        validate_events(events, received_at=NOW)

    assert len(caught.value.problems) == 50
    assert "and 30 more" in caught.value.message


def test_something_other_than_an_event_is_named_by_index() -> None:
    with pytest.raises(InvalidEvents) as caught:
        validate_events([{"event_id": "e1"}], received_at=NOW)  # type: ignore[list-item]
    assert caught.value.field == "events[0]"


def test_assignment_rows_are_checked_and_made_utc() -> None:
    local = timezone(timedelta(hours=2))
    rows = list(
        checked_assignment_rows(
            "exp",
            [
                ("p1", "a", datetime(2026, 1, 1, 12, 0)),
                ("p2", "b", datetime(2026, 1, 1, 14, 0, tzinfo=local)),
            ],
        )
    )

    assert rows == [
        ("p1", "a", datetime(2026, 1, 1, 12, 0, tzinfo=UTC)),
        ("p2", "b", datetime(2026, 1, 1, 12, 0, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    ("experiment_id", "rows", "field"),
    [
        ("", [], "experiment_id"),
        ("exp", [("p1", "", NOW)], "assignments[0].arm_id"),
        ("exp", [("p1", "a", NOW), (None, "a", NOW)], "assignments[1].participant_id"),
        ("exp", [("p1", "a", "yesterday")], "assignments[0].assigned_at"),
        ("exp", [("p1", "a", NOW), ("p1", "b", NOW)], "assignments[1].participant_id"),
    ],
)
def test_bad_assignment_rows_are_named(experiment_id: str, rows: list[Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        list(checked_assignment_rows(experiment_id, rows))
    assert caught.value.field == field


def test_epoch_microseconds_are_exact() -> None:
    # 2024-01-01T00:00:00.000007Z; float seconds would round the last digit away.
    moment = datetime(2024, 1, 1, 0, 0, 0, 7, tzinfo=UTC)
    assert epoch_us(moment) == 1_704_067_200_000_007
    assert epoch_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0
