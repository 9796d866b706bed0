"""Strata coding: categorical levels, quantile bins with ties and missing values, combinations.

References are independent of our code: pandas ``groupby(...).ngroups`` for the number of distinct
combinations, plain Python for group membership, and the definition of equal-frequency bins
(sizes within one of ``m / bins`` when all values are distinct).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xngin.stats.binning import CodedField, code_strata, factorize, infer_kind
from xngin.stats.errors import StatsInputError


def test_categorical_missing_values_form_one_last_level() -> None:
    values = np.array(["b", "a", None, float("nan"), "a", pd.NA, "c"], dtype=object)

    codes, levels = factorize(values, field="region")

    assert levels == ("a", "b", "c", None)
    assert codes.tolist() == [1, 0, 3, 3, 0, 3, 2]


def test_categorical_levels_of_booleans_and_integers_are_sorted_values() -> None:
    codes, levels = factorize([True, False, True], field="f")
    assert levels == (False, True) and codes.tolist() == [1, 0, 1]
    codes, levels = factorize(np.array([30, 10, 30, 20]), field="f")
    assert levels == (10, 20, 30) and codes.tolist() == [2, 0, 2, 1]


def test_object_columns_of_numbers_and_dates_are_numeric_and_strings_categorical() -> None:
    assert infer_kind(np.array([None, 3, 4.5], dtype=object)) == "numeric"
    assert infer_kind(np.array([None, dt.date(2024, 1, 1)], dtype=object)) == "numeric"
    assert infer_kind(np.array([None, "x"], dtype=object)) == "categorical"
    assert infer_kind(np.array([True, False])) == "categorical"
    assert infer_kind(np.arange(3)) == "numeric"


def test_continuous_values_fall_into_equal_quartiles() -> None:
    values = np.random.default_rng(1).normal(size=1001)

    coding = code_strata({"score": values})

    sizes = np.bincount(coding.codes)
    assert sizes.shape == (4,) and np.all(np.abs(sizes - 1001 / 4) < 1)
    # Bins are ordered intervals: every value of bin k is below every value of bin k + 1.
    for k in range(3):
        assert values[coding.codes == k].max() < values[coding.codes == k + 1].min()
    assert coding.fields[0].kind == "numeric" and len(coding.fields[0].cuts) == 3


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-3, 12), min_size=1, max_size=80),
    st.integers(1, 6),
    st.lists(st.booleans(), min_size=80, max_size=80),
)
def test_equal_values_share_a_bin_and_bins_follow_value_order(
    raw: list[int], bins: int, missing_mask: list[bool]
) -> None:
    values = np.array(raw, dtype=np.float64)
    values[np.array(missing_mask[: len(raw)])] = np.nan

    coding = code_strata({"x": values}, numeric_bins=bins)

    codes = coding.codes
    present = ~np.isnan(values)
    distinct = np.unique(values[present])
    levels = coding.fields[0].levels
    n_bins = len(levels) - (1 if (~present).any() else 0)
    assert n_bins == min(bins, len(distinct)) or (n_bins < bins < len(distinct))
    assert 1 <= n_bins <= bins or distinct.size == 0
    for v in distinct:  # ties never straddle a bin edge
        assert len(set(codes[values == v].tolist())) == 1
    order = np.argsort(values[present], kind="stable")
    assert np.all(np.diff(codes[present][order]) >= 0)
    if (~present).any():  # missing values: their own level, described as None
        assert levels[-1] is None and set(codes[~present].tolist()) == {len(levels) - 1}
    if len(distinct) <= bins:  # few distinct values: one level per value, named by the value
        assert [lv for lv in levels if lv is not None] == distinct.astype(int).tolist()


def test_heavy_tie_gets_its_own_bin_and_the_rest_is_still_split() -> None:
    values = np.concatenate([np.zeros(900), np.arange(1, 101)])

    coding = code_strata({"purchases": values})

    assert coding.fields[0].levels == (0, "[1, 34)", "[34, 67)", "[67, 100]")
    assert np.bincount(coding.codes).tolist() == [900, 33, 33, 34]


def test_integer_bins_are_labelled_by_their_interval_and_missing_by_none() -> None:
    values = pd.array([1, 2, 3, 4, 5, 6, 7, 8, None, 9, 10], dtype="Int64")

    coding = code_strata({"age": np.asarray(values, dtype=object)})

    assert coding.descriptions() == [
        {"age": "[1, 3)"},
        {"age": "[3, 6)"},
        {"age": "[6, 8)"},
        {"age": "[8, 10]"},
        {"age": None},
    ]
    assert coding.codes.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 4, 3, 3]


def test_all_missing_numeric_field_is_one_missing_stratum() -> None:
    coding = code_strata({"x": [np.nan, np.nan]})
    assert coding.codes.tolist() == [0, 0] and coding.descriptions() == [{"x": None}]


def test_dates_are_binned_with_date_labels() -> None:
    days = [dt.date(2024, 1, d) for d in range(1, 9)] + [None]

    coding = code_strata({"signup": np.array(days, dtype=object)}, numeric_bins=2)

    assert coding.descriptions() == [
        {"signup": "[2024-01-01, 2024-01-05)"},
        {"signup": "[2024-01-05, 2024-01-08]"},
        {"signup": None},
    ]


def test_datetime64_values_are_binned_as_times() -> None:
    stamps = np.array(["2024-01-01T10:00", "NaT", "2024-03-01", "2024-05-05"], "datetime64[s]")

    coding = code_strata({"seen": stamps})

    assert coding.descriptions() == [
        {"seen": "2024-01-01T10:00:00"},
        {"seen": "2024-03-01"},
        {"seen": "2024-05-05"},
        {"seen": None},
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["north", "south", "east", None]),
            st.sampled_from([True, False]),
            st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
        ),
        min_size=1,
        max_size=120,
    )
)
def test_strata_are_the_distinct_combinations_of_field_levels(
    rows: list[tuple[str | None, bool, float | None]],
) -> None:
    region = np.array([r[0] for r in rows], dtype=object)
    member = np.array([r[1] for r in rows])
    income = np.array([np.nan if r[2] is None else r[2] for r in rows])

    coding = code_strata({"region": region, "member": member, "income": income})

    income_level = coding.fields[2]
    frame = pd.DataFrame(
        {"region": region, "member": member, "income_bin": coding.level_indices[coding.codes, 2]}
    )
    assert (
        coding.n_strata == frame.groupby(["region", "member", "income_bin"], dropna=False).ngroups
    )
    assert coding.sizes.sum() == len(rows) and np.all(coding.sizes > 0)
    for i, (r, m, _) in enumerate(rows):
        described = coding.describe(int(coding.codes[i]))
        assert described["region"] == r and described["member"] == m
        if np.isnan(income[i]):
            assert described["income"] is None
        else:
            assert described["income"] in income_level.levels and described["income"] is not None
    # Strata are numbered in the lexicographic order of their level indices.
    keys = [tuple(row) for row in coding.level_indices.tolist()]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_kinds_override_treats_integer_codes_as_categories() -> None:
    coding = code_strata({"region_id": [7, 3, 7, 9, 11, 3]}, kinds={"region_id": "categorical"})
    assert coding.fields[0].levels == (3, 7, 9, 11)
    assert coding.codes.tolist() == [1, 0, 1, 2, 3, 0]


def test_coded_field_is_taken_as_given_with_its_level_names() -> None:
    coding = code_strata(
        {"region": CodedField(np.array([2, 0, 2]), ["east", "north", "south"]), "x": [1, 1, 2]}
    )
    assert coding.descriptions() == [
        {"region": "east", "x": 1},
        {"region": "south", "x": 1},
        {"region": "south", "x": 2},
    ]
    assert coding.codes.tolist() == [1, 0, 2]


def test_many_fields_with_a_large_key_space_still_combine() -> None:
    rng = np.random.default_rng(5)
    fields = {f"f{i}": rng.integers(0, 1000, 500) for i in range(4)}
    kinds = {name: "categorical" for name in fields}

    coding = code_strata(fields, kinds=kinds)  # type: ignore[arg-type]

    assert coding.n_strata == pd.DataFrame(fields).drop_duplicates().shape[0]
    for i in (0, 250, 499):
        described = coding.describe(int(coding.codes[i]))
        assert described == {name: int(values[i]) for name, values in fields.items()}


def test_no_strata_fields_put_everyone_in_one_stratum() -> None:
    coding = code_strata({}, n_participants=4)
    assert coding.codes.tolist() == [0, 0, 0, 0] and coding.descriptions() == [{}]
    with pytest.raises(StatsInputError) as error:
        code_strata({})
    assert error.value.field == "n_participants"


@pytest.mark.parametrize(
    ("fields", "options", "field"),
    [
        ({"a": [1, 2], "b": [1, 2, 3]}, {}, "b"),
        ({"a": [[1, 2]]}, {}, "a"),
        ({"a": [1, 2]}, {"numeric_bins": 0}, "numeric_bins"),
        ({"a": [1, 2]}, {"numeric_bins": 2.5}, "numeric_bins"),
        ({"a": [1, 2]}, {"kinds": {"b": "numeric"}}, "kinds"),
        ({"a": [1, 2]}, {"kinds": {"a": "ordinal"}}, "a"),
        ({"a": ["x", "y"]}, {"kinds": {"a": "numeric"}}, "a"),
        ({"a": CodedField([0, 3], ["x", "y"])}, {}, "a"),
    ],
)
def test_unusable_strata_input_names_the_field(
    fields: dict[str, object], options: dict[str, object], field: str
) -> None:
    with pytest.raises(StatsInputError) as error:
        code_strata(fields, **options)  # type: ignore[arg-type]
    assert error.value.field == field
