"""Metric definitions and the sufficient-statistics values."""

from __future__ import annotations

import math

import pytest

from xngin.errors import InvalidInput
from xngin.events import ArmParticipation, ArmSums, EventMetric, PairSums


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"event_name": ""}, "metric.event_name"),
        ({"event_name": "buy", "aggregation": "median"}, "metric.aggregation"),
        ({"event_name": "buy", "window_seconds": 0}, "metric.window_seconds"),
        ({"event_name": "buy", "window_seconds": -5}, "metric.window_seconds"),
        ({"event_name": "buy", "window_seconds": math.inf}, "metric.window_seconds"),
    ],
)
def test_event_metric_refuses_bad_definitions(fields: dict[str, object], bad_field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        EventMetric(**fields)  # type: ignore[arg-type]
    assert caught.value.field == bad_field


def test_window_is_converted_to_whole_microseconds() -> None:
    assert EventMetric("buy", window_seconds=1.5).window_us == 1_500_000
    assert EventMetric("buy", window_seconds=86_400 * 7).window_us == 604_800_000_000
    assert EventMetric("buy").window_us is None


def test_pre_period_version_keeps_everything_but_the_direction() -> None:
    metric = EventMetric("buy", "mean", window_seconds=60)

    assert metric.as_pre_period() == EventMetric("buy", "mean", window_seconds=60, pre_period=True)


def test_sums_add_up_across_strata() -> None:
    assert ArmSums(2, 3.0, 5.0) + ArmSums(1, 4.0, 16.0) == ArmSums(3, 7.0, 21.0)
    assert PairSums(1, 1, 1, 2, 4, 2) + PairSums(1, 3, 9, 1, 1, 3) == PairSums(2, 4, 10, 3, 5, 5)


def test_participants_without_outcome_are_the_rest_of_the_assigned() -> None:
    assert ArmParticipation(assigned=10, exposed=7, with_outcome=4).without_outcome == 6
