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


@pytest.mark.postgres
def test_postgres_enum_and_uuid_columns_are_listed_as_text(postgres_url):
    import sqlalchemy as sa

    from xngin.dwh import engines

    engine = engines.get_engine(name="pg-enum", url=postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('sad', 'ok')")
            conn.exec_driver_sql("CREATE TABLE people (m mood, u uuid, active boolean)")
            conn.exec_driver_sql(
                "INSERT INTO people VALUES ('ok', '00000000-0000-0000-0000-00000000000a', true),"
                " ('ok', '00000000-0000-0000-0000-00000000000a', NULL), (NULL, NULL, false)"
            )
        table = sa.table("people", sa.column("m"), sa.column("u"), sa.column("active"))
        fields = [
            ColumnInfo("m", DataType.STRING),
            ColumnInfo("u", DataType.UUID),
            ColumnInfo("active", DataType.BOOLEAN),
        ]

        got = field_values(engine, table, fields)
    finally:
        engines.forget_engine(name="pg-enum")

    assert got["m"].distinct == (ValueCount("ok", 2), ValueCount(None, 1))
    assert got["u"].distinct == (
        ValueCount("00000000-0000-0000-0000-00000000000a", 2),
        ValueCount(None, 1),
    )
    assert got["active"].distinct == (
        ValueCount(False, 1),
        ValueCount(True, 1),
        ValueCount(None, 1),
    )


@pytest.mark.clickhouse
def test_clickhouse_low_cardinality_and_uuid_columns(clickhouse_database):
    import uuid

    import sqlalchemy as sa
    from clickhouse_driver import Client

    from xngin.dwh import engines
    from xngin.testing import servers

    client = Client(host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT)
    client.execute(
        f"CREATE TABLE {clickhouse_database}.people (lc LowCardinality(String), u UUID, "
        "d Decimal(10, 2)) ENGINE = MergeTree ORDER BY u",
        settings={"allow_experimental_low_cardinality_type": 1},
    )
    client.execute(
        f"INSERT INTO {clickhouse_database}.people VALUES",
        [("a", uuid.UUID(int=1), 1), ("a", uuid.UUID(int=2), 2), ("b", uuid.UUID(int=2), 3)],
    )
    client.disconnect()
    engine = engines.get_engine(
        name="ch-lc",
        url=f"clickhouse+native://{servers.CLICKHOUSE_HOST}:{servers.CLICKHOUSE_PORT}/"
        f"{clickhouse_database}",
    )
    table = sa.table("people", sa.column("lc"), sa.column("u"), sa.column("d"))
    fields = [
        ColumnInfo("lc", DataType.STRING),
        ColumnInfo("u", DataType.UUID),
        ColumnInfo("d", DataType.DECIMAL),
    ]
    try:
        got = field_values(engine, table, fields)
    finally:
        engines.forget_engine(name="ch-lc")

    assert got["lc"].distinct == (ValueCount("a", 2), ValueCount("b", 1))
    assert got["u"].distinct == (
        ValueCount(str(uuid.UUID(int=2)), 2),
        ValueCount(str(uuid.UUID(int=1)), 1),
    )
    assert (got["d"].min, got["d"].max, got["d"].null_count) == (1, 3, 0)
