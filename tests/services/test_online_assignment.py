"""Online assignment by hashes: uniform buckets, weights, monotone allocation, filter semantics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from xngin.errors import InvalidInput
from xngin.services.online_assignment import (
    in_allocation,
    matches_filters,
    online_arm_index,
    unit_hash,
)

IDS = [f"user-{i}" for i in range(40_000)]
# Deterministic inputs, so each test either always passes or always fails; the thresholds are
# the usual 0.001 level of a test that would fail by chance once in a thousand seeds.
ALPHA = 0.001


def test_unit_hash_is_uniform_by_kolmogorov_smirnov() -> None:
    values = [unit_hash(seed=11, purpose="arm", participant_id=p) for p in IDS]
    assert min(values) >= 0.0 and max(values) < 1.0
    assert stats.kstest(values, "uniform").pvalue > ALPHA


def test_arm_shares_match_unequal_weights_by_chi_square() -> None:
    weights = [1.0, 2.0, 3.0, 4.0]
    arms = [online_arm_index(seed=5, participant_id=p, weights=weights) for p in IDS]
    observed = np.bincount(arms, minlength=4)
    expected = len(IDS) * np.array(weights) / sum(weights)
    assert stats.chisquare(observed, expected).pvalue > ALPHA


def test_inclusion_rate_matches_the_allocation_by_binomial_test() -> None:
    included = sum(in_allocation(seed=3, participant_id=p, allocation=30.0) for p in IDS)
    assert stats.binomtest(included, len(IDS), 0.30).pvalue > ALPHA


def test_arm_is_independent_of_inclusion_by_chi_square() -> None:
    table = np.zeros((2, 3), dtype=int)
    for p in IDS:
        included = in_allocation(seed=9, participant_id=p, allocation=50.0)
        table[int(included), online_arm_index(seed=9, participant_id=p, weights=[1, 1, 1])] += 1
    assert stats.chi2_contingency(table).pvalue > ALPHA


def test_different_seeds_give_unrelated_arms() -> None:
    a = np.array([online_arm_index(seed=1, participant_id=p, weights=[1, 1]) for p in IDS[:5000]])
    b = np.array([online_arm_index(seed=2, participant_id=p, weights=[1, 1]) for p in IDS[:5000]])
    # Unrelated halves agree half of the time.
    assert stats.binomtest(int((a == b).sum()), len(a), 0.5).pvalue > ALPHA


@given(
    participant_id=st.text(min_size=1, max_size=50),
    seed=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    low=st.floats(min_value=0, max_value=100),
    high=st.floats(min_value=0, max_value=100),
)
def test_inclusion_is_monotone_in_allocation(
    participant_id: str, seed: int, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    if in_allocation(seed=seed, participant_id=participant_id, allocation=low):
        assert in_allocation(seed=seed, participant_id=participant_id, allocation=high)


@given(participant_id=st.text(min_size=1, max_size=50), seed=st.integers(0, 2**53))
def test_no_one_at_zero_allocation_and_everyone_at_full(participant_id: str, seed: int) -> None:
    assert not in_allocation(seed=seed, participant_id=participant_id, allocation=0.0)
    assert in_allocation(seed=seed, participant_id=participant_id, allocation=100.0)


@given(
    participant_id=st.text(min_size=1, max_size=50),
    weights=st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=6),
)
def test_arm_index_is_within_the_arms(participant_id: str, weights: list[float]) -> None:
    index = online_arm_index(seed=1, participant_id=participant_id, weights=weights)
    assert 0 <= index < len(weights)


def f(field: str, relation: str, value: list[Any]) -> dict[str, Any]:
    return {"field_name": field, "relation": relation, "value": value}


@pytest.mark.parametrize(
    ("rule", "properties", "expected"),
    [
        (f("country", "includes", ["US", "CA"]), {"country": "US"}, True),
        (f("country", "includes", ["US", "CA"]), {"country": "FR"}, False),
        (f("country", "includes", ["US"]), {}, False),
        (f("country", "includes", ["US"]), {"country": None}, False),
        (f("country", "includes", ["US", None]), {}, True),
        (f("country", "includes", ["US", None]), {"country": None}, True),
        (f("country", "excludes", ["US"]), {"country": "FR"}, True),
        (f("country", "excludes", ["US"]), {"country": "US"}, False),
        (f("country", "excludes", ["US"]), {}, True),
        (f("country", "excludes", ["US", None]), {}, False),
        (f("country", "excludes", ["US", None]), {"country": "FR"}, True),
        (f("age", "between", [18, 65]), {"age": 18}, True),
        (f("age", "between", [18, 65]), {"age": 65}, True),
        (f("age", "between", [18, 65]), {"age": 65.5}, False),
        (f("age", "between", [18, 65]), {"age": 17}, False),
        (f("age", "between", [18, None]), {"age": 1000}, True),
        (f("age", "between", [None, 65]), {"age": -5}, True),
        (f("age", "between", [18, 65]), {}, False),
        (f("age", "between", [18, 65]), {"age": None}, False),
        (f("vip", "includes", [True]), {"vip": True}, True),
        (f("vip", "includes", [True]), {"vip": False}, False),
        (f("score", "includes", [1, 2]), {"score": 2.0}, True),
        (f("joined", "between", ["2024-01-01", "2024-12-31"]), {"joined": "2024-06-30"}, True),
        (f("joined", "between", ["2024-01-01", None]), {"joined": "2023-12-31"}, False),
        (
            f("seen", "between", ["2024-01-01T00:00:00Z", None]),
            {"seen": "2024-01-01T01:00:00+02:00"},
            False,
        ),
    ],
)
def test_filter_semantics_match_the_warehouse_null_rules(
    rule: dict[str, Any], properties: dict[str, Any], expected: bool
) -> None:
    assert matches_filters([rule], properties) is expected


def test_every_filter_must_match() -> None:
    rules = [f("country", "includes", ["US"]), f("age", "between", [18, None])]
    assert matches_filters(rules, {"country": "US", "age": 30})
    assert not matches_filters(rules, {"country": "US", "age": 3})
    assert matches_filters([], {})


@pytest.mark.parametrize(
    ("rule", "properties"),
    [
        (f("age", "between", [18, 65]), {"age": "30"}),
        (f("country", "includes", ["US"]), {"country": 1}),
        (f("vip", "includes", [True]), {"vip": 1}),
        (f("joined", "between", ["2024-01-01", None]), {"joined": 5}),
        (f("joined", "between", ["2024-01-01", None]), {"joined": "soon"}),
    ],
)
def test_a_property_of_the_wrong_type_is_invalid_input_naming_it(
    rule: dict[str, Any], properties: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        matches_filters([rule], properties)
    assert caught.value.field == f"properties.{rule['field_name']}"
    assert repr(next(iter(properties.values()))) in caught.value.message
