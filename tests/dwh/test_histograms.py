"""Histograms of numeric, date and timestamp fields, counted in each warehouse.

The expectation is ``numpy.histogram`` over the same generated rows (``warehouse.rows``), with
the range from ``field_values`` and the same bin count: same edges, same counts, on DuckDB,
SQLite, PostgreSQL and ClickHouse.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.dwh.values import (
    Histogram,
    ValueRange,
    field_histograms,
    field_values,
    histogram_scale,
)
from xngin.errors import InvalidInput

BINNED = ("visits", "score", "amount", "joined_on", "last_seen", "balance", "household_id")


def scaled(rows: list[dict[str, Any]], name: str, data_type: DataType) -> np.ndarray:
    return np.array(
        [histogram_scale(r[name], data_type) for r in rows if r[name] is not None], dtype=float
    )


def numpy_histogram(values: np.ndarray, rng: ValueRange, data_type: DataType, bins: int) -> Any:
    lo, hi = histogram_scale(rng.min, data_type), histogram_scale(rng.max, data_type)
    return np.histogram(values, bins=bins, range=(lo, hi))


@pytest.mark.parametrize("bins", [20, 7])
def test_histograms_match_numpy_on_every_warehouse(warehouse: Any, bins: int) -> None:
    fields = [warehouse.field(n) for n in BINNED]
    ranges = field_values(warehouse.engine, warehouse.table, fields)
    got = field_histograms(warehouse.engine, warehouse.table, fields, ranges=ranges, bins=bins)
    assert list(got) == list(BINNED)
    for f in fields:
        rng = ranges[f.name]
        assert isinstance(rng, ValueRange)
        counts, edges = numpy_histogram(scaled(warehouse.rows, f.name, f.data_type), rng,
                                        f.data_type, bins)  # fmt: skip
        assert got[f.name].counts == tuple(int(c) for c in counts), f.name
        assert got[f.name].edges == tuple(float(e) for e in edges), f.name
        assert sum(got[f.name].counts) == warehouse.count(lambda r, n=f.name: r[n] is not None)


def test_values_on_inner_edges_fall_in_the_upper_bin_and_the_max_in_the_last(
    warehouse: Any,
) -> None:
    # visits are the integers 0..40: with 20 bins every even value sits exactly on an edge.
    f = warehouse.field("visits")
    ranges = {"visits": ValueRange(min=0, max=40, null_count=0)}
    got = field_histograms(warehouse.engine, warehouse.table, [f], ranges=ranges, bins=20)
    visits = [r["visits"] for r in warehouse.rows]
    expected = [sum(1 for v in visits if 2 * i <= v < 2 * i + 2) for i in range(20)]
    expected[-1] += visits.count(40)
    assert got["visits"].counts == tuple(expected)


def test_a_value_on_an_edge_goes_up_even_when_the_division_rounds_below_it(
    warehouse: Any,
) -> None:
    # Range 0..22 in 22 bins: (15 - 0) / 22 * 22 is 14.999999999999998 in doubles, so the
    # plain floor puts 15 in bin 14; numpy (and we) move it to bin 15, whose lower edge it is.
    f = warehouse.field("visits")
    ranges = {"visits": ValueRange(min=0, max=22, null_count=0)}
    got = field_histograms(warehouse.engine, warehouse.table, [f], ranges=ranges, bins=22)
    visits = np.array([r["visits"] for r in warehouse.rows], dtype=float)
    counts, _ = np.histogram(visits, bins=22, range=(0, 22))
    assert got["visits"].counts == tuple(int(c) for c in counts)
    assert got["visits"].counts[15] == warehouse.count(lambda r: r["visits"] == 15)


def test_histograms_count_only_the_audience(warehouse: Any) -> None:
    audience = compile_filters(
        warehouse.table,
        [AudienceFilter("category", Relation.INCLUDES, ["alpha"])],
        allowed={n: f.data_type for n, f in warehouse.fields.items()},
    )
    fields = [warehouse.field("score"), warehouse.field("last_seen")]
    ranges = field_values(warehouse.engine, warehouse.table, fields, filters=audience)
    got = field_histograms(
        warehouse.engine, warehouse.table, fields, ranges=ranges, bins=10, filters=audience
    )
    rows = [r for r in warehouse.rows if r["category"] == "alpha"]
    for f in fields:
        rng = ranges[f.name]
        assert isinstance(rng, ValueRange)
        counts, _ = numpy_histogram(scaled(rows, f.name, f.data_type), rng, f.data_type, 10)
        assert got[f.name].counts == tuple(int(c) for c in counts)


def test_a_constant_field_gets_one_bin_with_every_value(warehouse: Any) -> None:
    f = warehouse.field("visits")
    audience = sa.column("visits") == 7
    ranges = {"visits": ValueRange(min=7, max=7, null_count=0)}
    got = field_histograms(warehouse.engine, warehouse.table, [f], ranges=ranges, filters=audience)
    assert got["visits"] == Histogram(edges=(7.0, 7.0), counts=(warehouse.count(
        lambda r: r["visits"] == 7),))  # fmt: skip


def test_values_outside_the_given_range_are_not_counted(warehouse: Any) -> None:
    f = warehouse.field("visits")
    ranges = {"visits": ValueRange(min=10, max=20, null_count=0)}
    got = field_histograms(warehouse.engine, warehouse.table, [f], ranges=ranges, bins=5)
    visits = np.array([r["visits"] for r in warehouse.rows], dtype=float)
    counts, _ = np.histogram(visits, bins=5, range=(10, 20))
    assert got["visits"].counts == tuple(int(c) for c in counts)


def test_categorical_all_null_and_unranged_fields_are_left_out(warehouse: Any) -> None:
    fields = [warehouse.field("category"), warehouse.field("score"), warehouse.field("visits")]
    ranges = {
        "category": ValueRange(min=None, max=None, null_count=0),
        "score": ValueRange(min=None, max=None, null_count=200),
    }
    assert field_histograms(warehouse.engine, warehouse.table, fields, ranges=ranges) == {}


def test_dates_bin_by_days_and_timestamps_by_seconds_since_1970() -> None:
    assert histogram_scale(dt.date(1970, 1, 11), DataType.DATE) == 10.0
    assert histogram_scale(dt.datetime(1970, 1, 1, 0, 1, 30), DataType.TIMESTAMP) == 90.0


@pytest.mark.parametrize("bins", [0, 1001, 2.5, True])
def test_bins_out_of_bounds_are_refused(bins: Any) -> None:
    engine = sa.create_engine("sqlite://")
    f = ColumnInfo("visits", DataType.INTEGER)
    with pytest.raises(InvalidInput) as caught:
        field_histograms(
            engine,
            sa.table("participants"),
            [f],
            ranges={"visits": ValueRange(0, 1, 0)},
            bins=bins,
        )
    assert caught.value.field == "bins"
    assert repr(bins) in caught.value.message
