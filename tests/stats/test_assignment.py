"""Stratified assignment: bounds, reproducibility, unbiasedness, re-randomization.

The reference for every bound is the definition: target ``n_s * w_a / sum(w)`` per stratum and arm,
``N * w_a / sum(w)`` per arm, computed here in plain numpy from the inputs. Counts are recounted
from the per-participant arms with ``numpy.add.at``, never read from our own summary alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xngin.stats.assignment import (
    arm_targets,
    assign_arms,
    assign_with_rerandomization,
    derived_seed,
)
from xngin.stats.balance import check_balance, prepare_covariates
from xngin.stats.binning import code_strata
from xngin.stats.errors import StatsInputError

# "Less than one" strictly: a count one seat off a whole target (distance exactly 1.0, or 1 minus
# float noise) must fail.
BOUND = 1 - 1e-12


def recount(codes: np.ndarray, arms: np.ndarray, n_strata: int, n_arms: int) -> np.ndarray:
    counts = np.zeros((n_strata, n_arms), dtype=np.int64)
    np.add.at(counts, (codes, arms), 1)
    return counts


def assert_within_one_of_targets(
    codes: np.ndarray, arms: np.ndarray, weights: list[float], n_strata: int
) -> None:
    shares = np.asarray(weights) / np.sum(weights)
    counts = recount(codes, arms, n_strata, len(weights))
    sizes = np.bincount(codes, minlength=n_strata)
    assert np.all(np.abs(counts - sizes[:, None] * shares) < BOUND)
    assert np.all(np.abs(counts.sum(axis=0) - len(codes) * shares) < BOUND)


weights_strategy = st.lists(st.floats(0.1, 10.0), min_size=2, max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    weights=weights_strategy,
    seed=st.integers(0, 2**32),
    shuffled_input=st.booleans(),
)
def test_every_stratum_and_arm_total_is_within_one_of_its_target(
    sizes: list[int], weights: list[float], seed: int, shuffled_input: bool
) -> None:
    codes = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))

    result = assign_arms(
        codes, weights=weights, seed=seed, n_strata=len(sizes), shuffled_input=shuffled_input
    )

    assert result.arms.shape == codes.shape  # every participant assigned exactly once
    assert set(result.arms.tolist()) <= set(range(len(weights)))
    assert_within_one_of_targets(codes, result.arms, weights, len(sizes))
    assert np.array_equal(
        result.stratum_arm_counts, recount(codes, result.arms, len(sizes), len(weights))
    )


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", None]),
            st.one_of(st.none(), st.floats(-50, 50, allow_nan=False)),
        ),
        min_size=0,
        max_size=250,
    ),
    weights=weights_strategy,
    seed=st.integers(0, 2**32),
)
def test_assignment_of_coded_strata_with_nulls_and_a_numeric_field_keeps_the_bounds(
    rows: list[tuple[str | None, float | None]], weights: list[float], seed: int
) -> None:
    region = np.array([r[0] for r in rows], dtype=object)
    score = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    coding = code_strata({"region": region, "score": score}, n_participants=len(rows))

    result = assign_arms(coding.codes, weights=weights, seed=seed)

    assert result.arms.shape == (len(rows),)
    assert_within_one_of_targets(coding.codes, result.arms, weights, coding.n_strata)


def test_whole_targets_are_met_exactly() -> None:
    codes = np.repeat([0, 1, 2], [6, 12, 60])

    result = assign_arms(codes, weights=[1, 2, 3], seed=3)

    assert recount(codes, result.arms, 3, 3).tolist() == [[1, 2, 3], [2, 4, 6], [10, 20, 30]]


def test_arm_totals_stay_within_one_across_many_tiny_strata() -> None:
    # 3,000 singleton strata with three equal arms: each stratum gets one arm, and the totals must
    # still be 1000 each, which independent rounding per stratum would miss by about +-25.
    codes = np.arange(3000)

    result = assign_arms(codes, weights=[1, 1, 1], seed=11)

    assert result.arm_sizes == (1000, 1000, 1000)


def test_same_seed_and_order_reproduce_the_assignment_and_other_seeds_differ() -> None:
    codes = np.random.default_rng(0).integers(0, 7, 500)

    first = assign_arms(codes, weights=[1, 2.5], seed=42)
    again = assign_arms(codes, weights=[1, 2.5], seed=42)
    other = assign_arms(codes, weights=[1, 2.5], seed=43)

    assert np.array_equal(first.arms, again.arms)
    assert np.array_equal(first.stratum_arm_counts, again.stratum_arm_counts)
    assert not np.array_equal(first.arms, other.arms)


def test_each_participant_gets_each_arm_with_its_weight_share() -> None:
    # Strata of sizes 1, 2, 3, 5 and 7 with shares 1/6.5, 2/6.5, 3.5/6.5: over 3,000 seeds the
    # frequency of each participant's arm must match the share (binomial standard error ~0.009).
    codes = np.repeat(np.arange(5), [1, 2, 3, 5, 7])
    weights = [1.0, 2.0, 3.5]
    runs = 3000
    hits = np.zeros((codes.shape[0], 3))
    for seed in range(runs):
        arms = assign_arms(codes, weights=weights, seed=seed).arms
        hits[np.arange(codes.shape[0]), arms] += 1
    shares = np.asarray(weights) / sum(weights)
    standard_error = np.sqrt(shares * (1 - shares) / runs)
    assert np.all(np.abs(hits / runs - shares) < 4.5 * standard_error)


def test_assignment_within_a_stratum_does_not_follow_input_order() -> None:
    # The first participants of a stratum must not systematically get the first arm.
    codes = np.zeros(20, dtype=np.intp)
    first_arm = [assign_arms(codes, weights=[1, 1], seed=s).arms[0] for s in range(400)]
    assert 0.4 < np.mean(first_arm) < 0.6


def test_thousands_of_strata_with_distinct_sizes_keep_the_bounds() -> None:
    sizes = np.arange(1, 1501)
    codes = np.repeat(np.arange(sizes.shape[0]), sizes)
    weights = [1.0, 2.0, 3.3, 0.7, 1.1]

    result = assign_arms(codes, weights=weights, seed=5)

    assert_within_one_of_targets(codes, result.arms, weights, sizes.shape[0])


def test_arm_targets_are_weight_shares_of_the_audience() -> None:
    assert arm_targets(10, [1, 4]).tolist() == [2.0, 8.0]


def test_empty_audience_gets_an_empty_assignment() -> None:
    result = assign_arms(np.zeros(0, dtype=np.intp), weights=[1, 1], seed=0)
    assert result.arms.shape == (0,) and result.arm_sizes == (0, 0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"weights": []}, "weights"),
        ({"weights": [1, 0]}, "weights[1]"),
        ({"weights": [1, float("nan")]}, "weights[1]"),
        ({"weights": [True, 1]}, "weights[0]"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"codes": [0, -1]}, "stratum_codes"),
        ({"codes": [0.5, 1]}, "stratum_codes"),
        ({"n_strata": 1}, "n_strata"),
    ],
)
def test_unusable_assignment_input_names_the_field(options: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"weights": [1, 1], "seed": 1}
    codes = options.pop("codes", [0, 1, 1])
    arguments.update(options)
    with pytest.raises(StatsInputError) as error:
        assign_arms(codes, **arguments)  # type: ignore[arg-type]
    assert error.value.field == field


def test_derived_seeds_are_deterministic_distinct_and_json_safe() -> None:
    seeds = [derived_seed(123, attempt) for attempt in range(1, 50)]
    assert seeds[0] == 123
    assert seeds == [derived_seed(123, attempt) for attempt in range(1, 50)]
    assert len(set(seeds)) == len(seeds) and max(seeds) < 2**53


def covariates_for(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    fields = {
        "age": rng.normal(40, 12, n),
        "visits": rng.poisson(3, n).astype(float),
        "region": rng.choice(["a", "b", "c"], n).astype(object),
    }
    return rng.integers(0, 4, n), fields


def test_rerandomization_returns_the_first_draw_that_passes_and_reports_tries() -> None:
    codes, fields = covariates_for(300, 1)
    covariates = prepare_covariates(fields)

    result = assign_with_rerandomization(
        codes, weights=[1, 1, 1], seed=9, covariates=covariates, max_tries=50, p_threshold=0.9
    )

    balance = result.balance
    assert balance.balance_ok and balance.p_value is not None and balance.p_value >= 0.9
    assert 1 <= balance.tries <= 50
    # Earlier attempts all failed; the accepted one is reproducible from its reported seed.
    for attempt in range(1, balance.tries):
        earlier = assign_arms(codes, weights=[1, 1, 1], seed=derived_seed(9, attempt))
        check = check_balance(covariates, earlier.arms, n_arms=3, p_threshold=0.9)
        assert not check.balance_ok
    assert result.assignment.seed == derived_seed(9, balance.tries)
    replay = assign_arms(codes, weights=[1, 1, 1], seed=result.assignment.seed)
    assert np.array_equal(replay.arms, result.assignment.arms)
    assert_within_one_of_targets(codes, result.assignment.arms, [1, 1, 1], 4)


def test_rerandomization_is_deterministic_given_the_seed() -> None:
    codes, fields = covariates_for(200, 2)
    covariates = prepare_covariates(fields)
    runs = [
        assign_with_rerandomization(
            codes, weights=[2, 1], seed=4, covariates=covariates, p_threshold=0.7
        )
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].assignment.arms, runs[1].assignment.arms)
    assert runs[0].balance == runs[1].balance


def test_rerandomization_without_a_passing_draw_returns_the_best_one() -> None:
    codes, fields = covariates_for(150, 3)
    covariates = prepare_covariates(fields)

    result = assign_with_rerandomization(
        codes, weights=[1, 1], seed=5, covariates=covariates, max_tries=8, p_threshold=1.0
    )

    assert result.balance.tries == 8 and not result.balance.balance_ok
    p_values: list[float] = []
    for attempt in range(1, 9):
        arms = assign_arms(codes, weights=[1, 1], seed=derived_seed(5, attempt)).arms
        p_value = check_balance(covariates, arms, n_arms=2).p_value
        assert p_value is not None
        p_values.append(p_value)
    assert result.balance.p_value == max(p_values)


def test_rerandomization_rejects_a_bad_max_tries() -> None:
    codes, fields = covariates_for(20, 3)
    with pytest.raises(StatsInputError) as error:
        assign_with_rerandomization(
            codes, weights=[1, 1], seed=1, covariates=prepare_covariates(fields), max_tries=0
        )
    assert error.value.field == "max_tries"


def test_shuffled_input_deals_each_strata_blocks_in_input_order() -> None:
    """With an input order that is already random (the warehouse's seeded hash order), arms are
    dealt in that order: within a stratum, earlier participants take the earlier arms' seats."""
    codes = np.array([1, 0, 1, 0, 1, 0, 1, 0, 0])
    result = assign_arms(codes, weights=[1, 1], seed=4, shuffled_input=True)
    counts = result.stratum_arm_counts
    for stratum in (0, 1):
        arms_in_order = result.arms[codes == stratum]
        expected = np.repeat([0, 1], counts[stratum])
        assert arms_in_order.tolist() == expected.tolist()


def test_shuffled_input_gives_each_arm_its_share_over_random_orders() -> None:
    """Over random input orders (new seed each time), each participant's chance of each arm is
    its weight share, as with the internal shuffle."""
    weights = [1.0, 3.0]
    codes = np.repeat([0, 1, 2], [5, 7, 4])
    hits = np.zeros(len(codes))
    draws = 4000
    for seed in range(draws):
        order = np.random.default_rng(seed).permutation(len(codes))
        arms = assign_arms(codes[order], weights=weights, seed=seed, shuffled_input=True).arms
        hits[order] += arms == 1
    assert np.allclose(hits / draws, 0.75, atol=0.035)
