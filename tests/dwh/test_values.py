from __future__ import annotations

import collections
import datetime as dt

import pytest

from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.dwh.values import DistinctValues, ValueCount, ValueRange, field_values
from xngin.errors import InvalidInput

CATEGORICAL = ("category", "flag", "external_id")
RANGED = ("visits", "score", "amount", "joined_on", "last_seen", "id")


def expected_distinct(rows, name, limit):
    counts = collections.Counter(r[name] for r in rows)
    ordered = sorted(
        counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] if kv[0] is not None else 0)
    )
    return DistinctValues(
        distinct=tuple(ValueCount(v, n) for v, n in ordered[:limit]),
        complete=len(ordered) <= limit,
    )


def expected_range(rows, name):
    present = [r[name] for r in rows if r[name] is not None]
    return ValueRange(
        min=min(present) if present else None,
        max=max(present) if present else None,
        null_count=sum(1 for r in rows if r[name] is None),
    )


def test_field_values_match_python_for_every_type(warehouse):
    fields = [warehouse.field(n) for n in (*CATEGORICAL, *RANGED)]

    got = field_values(warehouse.engine, warehouse.table, fields, limit=1000)

    assert list(got) == [f.name for f in fields]
    for name in CATEGORICAL:
        assert got[name] == expected_distinct(warehouse.rows, name, 1000), name
    for name in RANGED:
        assert got[name] == expected_range(warehouse.rows, name), name


def test_field_values_report_null_as_a_value_with_its_count(warehouse):
    got = field_values(warehouse.engine, warehouse.table, [warehouse.field("flag")])["flag"]

    nulls = sum(1 for r in warehouse.rows if r["flag"] is None)
    assert nulls > 0
    assert ValueCount(None, nulls) in got.distinct
    assert {v.value for v in got.distinct} == {True, False, None}
    assert all(type(v.value) is bool for v in got.distinct if v.value is not None)


def test_field_values_limit_keeps_the_most_frequent_and_says_incomplete(warehouse):
    fields = [warehouse.field("category"), warehouse.field("external_id")]

    got = field_values(warehouse.engine, warehouse.table, fields, limit=2)

    assert got["category"] == expected_distinct(warehouse.rows, "category", 2)
    assert got["category"].complete is False
    assert len(got["external_id"].distinct) == 2
    assert got["external_id"].complete is False
    # 5 distinct values including NULL: a limit of 5 is complete, 4 is not.
    five = field_values(warehouse.engine, warehouse.table, fields[:1], limit=5)["category"]
    four = field_values(warehouse.engine, warehouse.table, fields[:1], limit=4)["category"]
    assert five.complete is True and len(five.distinct) == 5
    assert four.complete is False and len(four.distinct) == 4


def test_field_values_describe_only_the_filtered_audience(warehouse):
    allowed = {n: f.data_type for n, f in warehouse.fields.items()}
    where = compile_filters(
        warehouse.table,
        [
            AudienceFilter("category", Relation.INCLUDES, ["alpha", "beta"]),
            AudienceFilter("joined_on", Relation.BETWEEN, ["2023-03-01", None]),
        ],
        allowed=allowed,
    )
    audience = [
        r
        for r in warehouse.rows
        if r["category"] in ("alpha", "beta")
        and r["joined_on"] is not None
        and r["joined_on"] >= dt.date(2023, 3, 1)
    ]
    fields = [warehouse.field(n) for n in ("category", "flag", "score", "last_seen")]

    got = field_values(warehouse.engine, warehouse.table, fields, filters=where)

    assert got["category"] == expected_distinct(audience, "category", 1000)
    assert got["flag"] == expected_distinct(audience, "flag", 1000)
    assert got["score"] == expected_range(audience, "score")
    assert got["last_seen"] == expected_range(audience, "last_seen")


def test_field_values_of_an_empty_audience(warehouse):
    allowed = {"visits": DataType.INTEGER}
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("visits", Relation.BETWEEN, [1000, None])],
        allowed=allowed,
    )
    fields = [warehouse.field("category"), warehouse.field("score")]

    got = field_values(warehouse.engine, warehouse.table, fields, filters=where)

    assert got["category"] == DistinctValues(distinct=(), complete=True)
    assert got["score"] == ValueRange(min=None, max=None, null_count=0)


def test_field_values_with_only_one_kind_of_field(warehouse):
    only_ranges = field_values(warehouse.engine, warehouse.table, [warehouse.field("amount")])
    only_values = field_values(warehouse.engine, warehouse.table, [warehouse.field("category")])

    assert only_ranges["amount"] == expected_range(warehouse.rows, "amount")
    assert only_values["category"] == expected_distinct(warehouse.rows, "category", 1000)
    assert field_values(warehouse.engine, warehouse.table, []) == {}


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "10"])
def test_field_values_reject_a_limit_that_is_not_a_positive_integer(table, limit):
    with pytest.raises(InvalidInput) as info:
        field_values(None, table, [ColumnInfo("category", DataType.STRING)], limit=limit)
    assert info.value.field == "limit"
