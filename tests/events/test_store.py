"""Ingest and assignments, the same assertions on every backend."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from xngin.errors import InvalidInput
from xngin.events import (
    MAX_BATCH_SIZE,
    ArmParticipation,
    Event,
    EventMetric,
    EventStore,
    IngestResult,
    InvalidEvents,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def outcome(event_id: str, participant_id: str, **fields: Any) -> Event:
    fields.setdefault("timestamp", T0 + timedelta(hours=1))
    fields.setdefault("name", "purchase")
    return Event(event_id=event_id, type="outcome", participant_id=participant_id, **fields)


def exposure(event_id: str, participant_id: str, **fields: Any) -> Event:
    fields.setdefault("timestamp", T0)
    fields.setdefault("experiment_id", "exp")
    return Event(event_id=event_id, type="exposure", participant_id=participant_id, **fields)


def test_ingest_counts_accepted_events(store: EventStore) -> None:
    batch = [exposure("x1", "p1"), outcome("o1", "p1", value=2.5), outcome("o2", "p2")]

    assert store.ingest(batch) == IngestResult(accepted=3, duplicates=0)
    assert store.count_events() == 3


def test_empty_batch_is_accepted_and_stores_nothing(store: EventStore) -> None:
    assert store.ingest([]) == IngestResult(accepted=0, duplicates=0)
    assert store.count_events() == 0


def test_repeated_batch_adds_nothing_and_counts_duplicates(store: EventStore) -> None:
    batch = [exposure("x1", "p1"), outcome("o1", "p1", value=1.0)]
    store.ingest(batch)

    assert store.ingest(batch) == IngestResult(accepted=0, duplicates=2)
    assert store.count_events() == 2


def test_partly_known_batch_stores_only_new_events(store: EventStore) -> None:
    store.ingest([outcome("o1", "p1")])

    result = store.ingest([outcome("o1", "p1"), outcome("o2", "p1"), outcome("o3", "p2")])

    assert result == IngestResult(accepted=2, duplicates=1)
    assert store.count_events() == 3


def test_repeated_id_inside_a_batch_keeps_the_first_occurrence(store: EventStore) -> None:
    store.record_assignments("exp", [("p1", "arm", T0)])

    result = store.ingest([outcome("o1", "p1", value=1.0), outcome("o1", "p1", value=100.0)])

    assert result == IngestResult(accepted=1, duplicates=1)
    assert store.arm_metric_stats("exp", EventMetric("purchase", "sum"))["arm"].sum == 1.0


def test_batch_with_a_bad_event_stores_nothing_and_names_every_bad_event(
    store: EventStore,
) -> None:
    batch = [
        outcome("o0", "p1"),
        outcome("o1", "p1", value=math.nan),
        exposure("x2", "p1", experiment_id=None),
        outcome("o3", "p1", name=None),
        outcome("o4", "p1", timestamp=datetime(2024, 3, 1, 12, 0)),
    ]

    with pytest.raises(InvalidEvents) as caught:
        store.ingest(batch)

    fields = [field for field, _ in caught.value.problems]
    assert fields == [
        "events[1].value",
        "events[2].experiment_id",
        "events[3].name",
        "events[4].timestamp",
    ]
    assert caught.value.field == "events[1].value"
    assert caught.value.status == 422
    assert "nan" in caught.value.message
    assert store.count_events() == 0


def test_batch_over_the_limit_is_refused_whole(store: EventStore) -> None:
    batch = [outcome(f"o{i}", "p1") for i in range(MAX_BATCH_SIZE + 1)]

    with pytest.raises(InvalidEvents) as caught:
        store.ingest(batch)

    assert caught.value.field == "events"
    assert str(MAX_BATCH_SIZE) in caught.value.message
    assert store.count_events() == 0


def test_full_batch_of_ten_thousand_is_stored(store: EventStore) -> None:
    batch = [outcome(f"o{i}", f"p{i % 97}", value=float(i)) for i in range(MAX_BATCH_SIZE)]

    assert store.ingest(batch) == IngestResult(accepted=MAX_BATCH_SIZE, duplicates=0)
    assert store.ingest(batch[:10]) == IngestResult(accepted=0, duplicates=10)
    assert store.count_events() == MAX_BATCH_SIZE


def test_timestamps_with_any_offset_are_stored_as_the_same_instant(store: EventStore) -> None:
    store.record_assignments("exp", [("p1", "arm", T0)])
    store.ingest([exposure("x1", "p1", timestamp=T0)])
    # 12:00:01 UTC written as 17:30:01+05:30: one second after the exposure, inside a 2 s window.
    plus_0530 = timezone(timedelta(hours=5, minutes=30))
    store.ingest([outcome("o1", "p1", timestamp=datetime(2024, 3, 1, 17, 30, 1, tzinfo=plus_0530))])

    stats = store.arm_metric_stats("exp", EventMetric("purchase", "binary", window_seconds=2))

    assert stats["arm"].sum == 1


def test_timestamps_keep_microseconds(store: EventStore) -> None:
    store.record_assignments("exp", [("p1", "arm", T0)])
    store.ingest(
        [
            exposure("x1", "p1", timestamp=T0),
            outcome("in", "p1", timestamp=T0 + timedelta(seconds=1, microseconds=-1)),
            outcome("out", "p1", timestamp=T0 + timedelta(seconds=1)),
        ]
    )

    stats = store.arm_metric_stats("exp", EventMetric("purchase", "count", window_seconds=1))

    assert stats["arm"].sum == 1


def test_stored_events_survive_closing_the_store(store: EventStore) -> None:
    store.ingest([outcome("o1", "p1"), outcome("o2", "p2")])
    store.close()

    assert store.count_events() == 2
    assert store.ingest([outcome("o1", "p1")]) == IngestResult(accepted=0, duplicates=1)


def test_record_assignments_replaces_the_experiments_previous_rows(store: EventStore) -> None:
    store.record_assignments("exp", [("p1", "a", T0), ("p2", "a", T0), ("p3", "b", T0)])

    recorded = store.record_assignments("exp", [("p3", "a", T0), ("p4", "b", T0)])

    assert recorded == 2
    assert store.arm_participation("exp") == {
        "a": ArmParticipation(assigned=1, exposed=0, with_outcome=0),
        "b": ArmParticipation(assigned=1, exposed=0, with_outcome=0),
    }


def test_record_assignments_leaves_other_experiments_alone(store: EventStore) -> None:
    store.record_assignments("other", [("p1", "a", T0), ("p2", "b", T0)])

    store.record_assignments("exp", [("p1", "b", T0)])

    assert {arm: p.assigned for arm, p in store.arm_participation("other").items()} == {
        "a": 1,
        "b": 1,
    }


def test_record_assignments_accepts_a_generator_of_many_rows(store: EventStore) -> None:
    # One row more than an insert chunk, so the rows arrive in two inserts.
    rows = ((f"p{i}", "ab"[i % 2], T0) for i in range(100_001))

    assert store.record_assignments("exp", rows) == 100_001
    assert store.arm_exposure_counts("exp") == {"a": 0, "b": 0}
    participation = store.arm_participation("exp")
    assert participation["a"].assigned == 50_001
    assert participation["b"].assigned == 50_000


def test_repeated_participant_is_refused_and_previous_assignments_stay(
    store: EventStore,
) -> None:
    store.record_assignments("exp", [("p1", "a", T0)])

    with pytest.raises(InvalidInput) as caught:
        store.record_assignments("exp", [("p2", "a", T0), ("p3", "b", T0), ("p2", "b", T0)])

    assert caught.value.field == "assignments[2].participant_id"
    assert {arm: p.assigned for arm, p in store.arm_participation("exp").items()} == {"a": 1}


def test_add_assignment_adds_a_participant_and_replaces_an_earlier_arm(
    store: EventStore,
) -> None:
    store.add_assignment(experiment_id="exp", participant_id="p1", arm_id="a", assigned_at=T0)
    store.add_assignment(experiment_id="exp", participant_id="p2", arm_id="a", assigned_at=T0)
    store.add_assignment(experiment_id="exp", participant_id="p1", arm_id="b", assigned_at=T0)

    assert {arm: p.assigned for arm, p in store.arm_participation("exp").items()} == {
        "a": 1,
        "b": 1,
    }


def test_add_assignment_after_a_bulk_record_extends_it(store: EventStore) -> None:
    store.record_assignments("exp", [("p1", "a", T0)])

    store.add_assignment(experiment_id="exp", participant_id="p2", arm_id="b", assigned_at=T0)

    assert {arm: p.assigned for arm, p in store.arm_participation("exp").items()} == {
        "a": 1,
        "b": 1,
    }


def test_naive_assignment_times_are_taken_as_utc(store: EventStore) -> None:
    store.record_assignments("exp", [("p1", "a", T0.replace(tzinfo=None))])
    store.ingest([outcome("o1", "p1", timestamp=T0)])  # at the anchor: inside the window

    stats = store.arm_metric_stats("exp", EventMetric("purchase", "binary", window_seconds=1))

    assert stats["a"].sum == 1


def test_same_batch_from_concurrent_threads_is_stored_once(store: EventStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batch = [outcome(f"o{i}", f"p{i % 13}", value=float(i)) for i in range(500)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(store.ingest, [batch] * 4))

    assert sum(r.accepted for r in results) == 500
    assert all(r.accepted + r.duplicates == 500 for r in results)
    assert store.count_events() == 500
