"""Per-arm statistics computed in the store equal the same numbers computed in plain Python.

One set of generated events (exposures, outcomes with and without values, events before the
anchor, after the window and exactly on its edges, other experiments' events, unassigned
participants) is ingested once per backend; every metric variant is then checked against a
straightforward Python reading of the rules documented on ``EventMetric``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta

import pytest

from xngin.errors import InvalidInput
from xngin.events import (
    Aggregation,
    ArmParticipation,
    ArmSums,
    Event,
    EventMetric,
    EventStore,
    PairSums,
    ParticipantMetricRow,
)

EXPERIMENT = "exp-1"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
WINDOW = timedelta(days=3)


@dataclass(frozen=True)
class World:
    events: list[Event]
    assignments: dict[str, tuple[str, datetime]]  # participant -> (arm, assigned_at)


def generate_world(seed: int = 20240501) -> World:
    rng = random.Random(seed)
    assignments: dict[str, tuple[str, datetime]] = {}
    events: list[Event] = []

    def exposure(participant: str, at: datetime, experiment_id: str) -> None:
        events.append(
            Event(f"e{len(events)}", "exposure", participant, at, experiment_id=experiment_id)
        )

    def outcome(
        participant: str,
        at: datetime,
        name: str,
        value: float | None = None,
        experiment_id: str | None = None,
    ) -> None:
        events.append(
            Event(
                f"e{len(events)}",
                "outcome",
                participant,
                at,
                name=name,
                value=value,
                experiment_id=experiment_id,
            )
        )

    for i in range(150):
        participant = f"p{i:03d}"
        assigned_at = T0 + timedelta(seconds=rng.randrange(0, 86_400))
        assignments[participant] = (rng.choice(["control", "treat-a", "treat-b"]), assigned_at)
        anchor = assigned_at
        if rng.random() < 0.7:  # exposed, possibly several times
            first = assigned_at + timedelta(seconds=rng.randrange(0, 7_200))
            anchor = first
            exposure(participant, first, EXPERIMENT)
            for _ in range(rng.randrange(3)):
                later = first + timedelta(seconds=rng.randrange(1, 86_400))
                exposure(participant, later, EXPERIMENT)
        if rng.random() < 0.1:  # exposed to another experiment only: not an anchor here
            exposure(participant, T0 - timedelta(days=1), "exp-2")
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            offset = timedelta(seconds=rng.randrange(-6 * 86_400, 6 * 86_400))
            experiment = rng.choice([None, None, None, EXPERIMENT, "exp-2"])
            value = None if rng.random() < 0.2 else round(rng.uniform(0, 50), 2)
            outcome(participant, anchor + offset, "purchase", value, experiment)
        for _ in range(rng.choice([0, 1, 4])):
            offset = timedelta(seconds=rng.randrange(-4 * 86_400, 4 * 86_400))
            outcome(participant, anchor + offset, "visit")
        if i % 25 == 0:  # the edges: start and end of the window, start of the pre-period
            outcome(participant, anchor, "purchase", 1.0)
            outcome(participant, anchor + WINDOW, "purchase", 2.0)
            outcome(participant, anchor - WINDOW, "purchase", 4.0)
            outcome(participant, anchor - timedelta(microseconds=1), "purchase", 8.0)
    for i in range(20):  # events of participants outside the experiment count nowhere
        outcome(f"stranger{i}", T0 + timedelta(hours=i), "purchase", 99.0)
        exposure(f"stranger{i}", T0, EXPERIMENT)
    return World(events=events, assignments=assignments)


WORLD = generate_world()

# -- the reference: the documented rules, read literally -----------------------------------------


def anchor_of(world: World, participant: str) -> datetime:
    exposures = [
        e.timestamp
        for e in world.events
        if e.type == "exposure"
        and e.experiment_id == EXPERIMENT
        and e.participant_id == participant
    ]
    return min(exposures) if exposures else world.assignments[participant][1]


def reference_value(world: World, participant: str, metric: EventMetric) -> float | None:
    anchor = anchor_of(world, participant)
    window = None if metric.window_seconds is None else timedelta(seconds=metric.window_seconds)

    def in_window(at: datetime) -> bool:
        if metric.pre_period:
            return at < anchor and (window is None or at >= anchor - window)
        return at >= anchor and (window is None or at < anchor + window)

    chosen = [
        e
        for e in world.events
        if e.type == "outcome"
        and e.participant_id == participant
        and e.name == metric.event_name
        and e.experiment_id in (None, EXPERIMENT)
        and in_window(e.timestamp)
    ]
    values = [e.value for e in chosen if e.value is not None]
    if metric.aggregation == "sum":
        return float(sum(values))
    if metric.aggregation == "count":
        return float(len(chosen))
    if metric.aggregation == "binary":
        return 1.0 if chosen else 0.0
    return sum(values) / len(values) if values else None


def reference_arm_sums(world: World, metric: EventMetric) -> dict[str, tuple[int, float, float]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for participant, (arm, _) in world.assignments.items():
        value = reference_value(world, participant, metric)
        sums[arm]  # every arm with participants appears, even with n = 0
        if value is not None:
            sums[arm][0] += 1
            sums[arm][1] += value
            sums[arm][2] += value * value
    return {arm: (int(n), s, ss) for arm, (n, s, ss) in sums.items()}


def reference_pair_sums(
    world: World, x_metric: EventMetric, y_metric: EventMetric, *, x_missing_is_zero: bool
) -> dict[str, tuple[float, ...]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0] * 6)
    for participant, (arm, _) in world.assignments.items():
        x = reference_value(world, participant, x_metric)
        y = reference_value(world, participant, y_metric)
        if x is None and x_missing_is_zero:
            x = 0.0
        row = sums[arm]
        if x is None or y is None:
            continue
        for k, term in enumerate((1.0, x, x * x, y, y * y, x * y)):
            row[k] += term
    return {arm: tuple(row) for arm, row in sums.items()}


def assert_sums_match(
    actual: Mapping[str, ArmSums | PairSums], expected: Mapping[str, tuple[float, ...]]
) -> None:
    """Same arms, same participant counts, sums equal up to floating-point summation order."""
    assert sorted(actual) == sorted(expected)
    for arm, sums in actual.items():
        n, *rest = astuple(sums)
        assert n == expected[arm][0], arm
        assert rest == pytest.approx(list(expected[arm][1:]), rel=1e-12, abs=1e-9), arm


# -- the store, filled once per backend -----------------------------------------------------------


@pytest.fixture(scope="module")
def filled(module_store: EventStore) -> Iterator[EventStore]:
    module_store.record_assignments(
        EXPERIMENT, [(p, arm, at) for p, (arm, at) in WORLD.assignments.items()]
    )
    module_store.record_assignments("exp-2", [("p000", "control", T0), ("p001", "treat", T0)])
    for start in range(0, len(WORLD.events), 1000):
        module_store.ingest(WORLD.events[start : start + 1000])
    yield module_store


def test_generated_world_covers_the_cases_that_matter() -> None:
    # Guards the generator: without these cases the comparisons below would prove little.
    plain_sum = EventMetric("purchase", "sum", window_seconds=WINDOW.total_seconds())
    values = [reference_value(WORLD, p, plain_sum) for p in WORLD.assignments]
    assert values.count(0.0) > 10  # assigned participants without events in the window
    means = [reference_value(WORLD, p, EventMetric("purchase", "mean")) for p in WORLD.assignments]
    assert means.count(None) > 10
    outcome_experiments = {e.experiment_id for e in WORLD.events if e.type == "outcome"}
    assert outcome_experiments == {None, EXPERIMENT, "exp-2"}
    assert any(e.value is None for e in WORLD.events if e.name == "purchase")
    assert sum(1 for p in WORLD.assignments if anchor_of(WORLD, p) == WORLD.assignments[p][1]) > 20


@pytest.mark.parametrize("pre_period", [False, True], ids=["after", "pre-period"])
@pytest.mark.parametrize("window_days", [None, 3], ids=["unlimited", "3-day-window"])
@pytest.mark.parametrize("aggregation", ["sum", "count", "mean", "binary"])
def test_arm_metric_stats_match_python(
    filled: EventStore, aggregation: Aggregation, window_days: int | None, pre_period: bool
) -> None:
    metric = EventMetric(
        "purchase",
        aggregation,
        window_seconds=None if window_days is None else window_days * 86_400,
        pre_period=pre_period,
    )

    assert_sums_match(
        filled.arm_metric_stats(EXPERIMENT, metric), reference_arm_sums(WORLD, metric)
    )


def test_arm_metric_stats_of_an_unknown_experiment_is_empty(filled: EventStore) -> None:
    assert filled.arm_metric_stats("no-such-experiment", EventMetric("purchase")) == {}


def test_arm_ratio_stats_match_python(filled: EventStore) -> None:
    numerator = EventMetric("purchase", "sum", window_seconds=WINDOW.total_seconds())
    denominator = EventMetric("visit", "count", window_seconds=WINDOW.total_seconds())

    stats = filled.arm_ratio_stats(EXPERIMENT, numerator=numerator, denominator=denominator)

    expected = reference_pair_sums(WORLD, numerator, denominator, x_missing_is_zero=False)
    assert_sums_match(stats, expected)


def test_arm_ratio_stats_leave_out_participants_missing_either_value(filled: EventStore) -> None:
    numerator = EventMetric("purchase", "mean")
    denominator = EventMetric("visit", "binary")

    stats = filled.arm_ratio_stats(EXPERIMENT, numerator=numerator, denominator=denominator)

    expected = reference_pair_sums(WORLD, numerator, denominator, x_missing_is_zero=False)
    assert_sums_match(stats, expected)
    assert sum(s.n for s in stats.values()) < len(WORLD.assignments)


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_arm_cuped_stats_use_the_pre_period_as_covariate(
    filled: EventStore, aggregation: Aggregation
) -> None:
    metric = EventMetric("purchase", aggregation, window_seconds=WINDOW.total_seconds())

    stats = filled.arm_cuped_stats(EXPERIMENT, metric)

    expected = reference_pair_sums(WORLD, metric.as_pre_period(), metric, x_missing_is_zero=True)
    assert_sums_match(stats, expected)
    assert any(s.sum_xy != 0 for s in stats.values())


def test_arm_cuped_stats_accept_another_covariate(filled: EventStore) -> None:
    metric = EventMetric("purchase", "sum")
    covariate = EventMetric("visit", "count", pre_period=True)

    stats = filled.arm_cuped_stats(EXPERIMENT, metric, covariate=covariate)

    expected = reference_pair_sums(WORLD, covariate, metric, x_missing_is_zero=True)
    assert_sums_match(stats, expected)


def test_arm_cuped_stats_refuse_a_pre_period_outcome(filled: EventStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        filled.arm_cuped_stats(EXPERIMENT, EventMetric("purchase", pre_period=True))
    assert caught.value.field == "metric.pre_period"


def test_participant_metric_rows_come_in_chunks_ordered_by_participant(
    filled: EventStore,
) -> None:
    metric = EventMetric("purchase", "mean", window_seconds=WINDOW.total_seconds())
    covariate = metric.as_pre_period()

    chunks = list(
        filled.participant_metric_rows(EXPERIMENT, metric, chunk_size=7, covariate=covariate)
    )

    expected = []
    for participant in sorted(WORLD.assignments):
        value = reference_value(WORLD, participant, metric)
        if value is not None:
            x = reference_value(WORLD, participant, covariate)
            arm = WORLD.assignments[participant][0]
            expected.append(ParticipantMetricRow(participant, arm, value, x or 0.0))
    assert [len(c) for c in chunks[:-1]] == [7] * (len(chunks) - 1)
    assert 1 <= len(chunks[-1]) <= 7
    rows = [row for chunk in chunks for row in chunk]
    assert [(r.participant_id, r.arm_id) for r in rows] == [
        (r.participant_id, r.arm_id) for r in expected
    ]
    assert [r.value for r in rows] == pytest.approx([r.value for r in expected], rel=1e-12)
    assert [r.covariate for r in rows] == pytest.approx([r.covariate for r in expected], rel=1e-12)


def test_participant_metric_rows_without_covariate_have_none(filled: EventStore) -> None:
    metric = EventMetric("visit", "count")

    rows = [row for chunk in filled.participant_metric_rows(EXPERIMENT, metric) for row in chunk]

    assert len(rows) == len(WORLD.assignments)
    assert all(row.covariate is None for row in rows)
    assert {row.participant_id: row.value for row in rows} == {
        p: reference_value(WORLD, p, metric) for p in WORLD.assignments
    }


def test_participant_metric_rows_refuse_a_bad_chunk_size(filled: EventStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        filled.participant_metric_rows(EXPERIMENT, EventMetric("visit"), chunk_size=0)
    assert caught.value.field == "chunk_size"


@pytest.mark.parametrize("event_name", [None, "visit"], ids=["any-outcome", "visit"])
def test_arm_participation_matches_python(filled: EventStore, event_name: str | None) -> None:
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for participant, (arm, _) in WORLD.assignments.items():
        anchor = anchor_of(WORLD, participant)
        mine = [e for e in WORLD.events if e.participant_id == participant]
        exposed = any(e.type == "exposure" and e.experiment_id == EXPERIMENT for e in mine)
        has_outcome = any(
            e.type == "outcome"
            and e.experiment_id in (None, EXPERIMENT)
            and (event_name is None or e.name == event_name)
            and e.timestamp >= anchor
            for e in mine
        )
        counts = expected[arm]
        counts[0] += 1
        counts[1] += exposed
        counts[2] += has_outcome

    participation = filled.arm_participation(EXPERIMENT, event_name=event_name)

    assert participation == {arm: ArmParticipation(*counts) for arm, counts in expected.items()}
    assert filled.arm_exposure_counts(EXPERIMENT) == {arm: c[1] for arm, c in expected.items()}
    assert filled.arm_counts_without_outcome(EXPERIMENT, event_name=event_name) == {
        arm: c[0] - c[2] for arm, c in expected.items()
    }


def test_assignments_of_another_experiment_do_not_leak(filled: EventStore) -> None:
    participation = filled.arm_participation("exp-2")

    assert {arm: p.assigned for arm, p in participation.items()} == {"control": 1, "treat": 1}
    # p000 and p001 have no exposure to exp-2 in the generated world unless generated so.
    exposed_to_exp2 = {
        e.participant_id
        for e in WORLD.events
        if e.type == "exposure" and e.experiment_id == "exp-2"
    }
    assert sum(p.exposed for p in participation.values()) == len(exposed_to_exp2 & {"p000", "p001"})
