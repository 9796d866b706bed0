from __future__ import annotations

import pytest
import sqlalchemy as sa

from xngin.dwh import engines, introspect
from xngin.dwh.schema import DataType
from xngin.errors import NotFound
from xngin.testing import servers


def test_table_schema_maps_every_column_type_and_nullability(warehouse):
    schema = introspect.table_schema(warehouse.engine, warehouse.table_name)

    assert schema.table_name == warehouse.table_name
    got = {c.name: (c.data_type, c.nullable) for c in schema.columns}
    assert got == warehouse.expected_types
    # Column order is the table's, and native types are reported as the warehouse names them.
    assert [c.name for c in schema.columns] == list(warehouse.fields)
    assert all(c.native_type for c in schema.columns)


def test_table_schema_reads_views(warehouse):
    schema = introspect.table_schema(warehouse.engine, warehouse.view_name)

    assert [c.name for c in schema.columns] == ["id", "category"]
    assert schema.column("category").data_type is DataType.STRING


def test_unknown_table_is_not_found_naming_it(warehouse):
    with pytest.raises(NotFound) as info:
        introspect.table_schema(warehouse.engine, "no_such_table")

    assert "no_such_table" in info.value.message
    assert info.value.field == "table_name"


def test_list_tables_includes_tables_and_views(warehouse):
    names = introspect.list_tables(warehouse.engine)

    assert warehouse.table_name in names
    assert warehouse.view_name in names


def test_unique_id_candidates_are_verified_unique_and_non_null(warehouse):
    schema = introspect.table_schema(warehouse.engine, warehouse.table_name)

    candidates = introspect.unique_id_candidates(warehouse.engine, schema)

    # household_id is named like an ID but repeats; category is not ID-named.
    assert len({r["household_id"] for r in warehouse.rows}) < len(warehouse.rows)
    assert candidates == ["id", "external_id"]


def test_distinct_counts_match_python(warehouse):
    schema = introspect.table_schema(warehouse.engine, warehouse.table_name)

    counts = introspect.distinct_counts(warehouse.engine, schema)

    expected = {
        c.name: len({r[c.name] for r in warehouse.rows if r[c.name] is not None})
        for c in schema.columns
    }
    assert counts == expected


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        # ClickHouse
        ("Nullable(String)", DataType.STRING),
        ("LowCardinality(String)", DataType.STRING),
        ("LowCardinality(Nullable(String))", DataType.STRING),
        ("FixedString(16)", DataType.STRING),
        ("Int64", DataType.INTEGER),
        ("UInt8", DataType.INTEGER),
        ("Nullable(UInt32)", DataType.INTEGER),
        ("Float64", DataType.FLOAT),
        ("Float32", DataType.FLOAT),
        ("Decimal(10, 2)", DataType.DECIMAL),
        ("Decimal(10,0)", DataType.INTEGER),
        ("Decimal64(4)", DataType.DECIMAL),
        ("Date", DataType.DATE),
        ("DateTime", DataType.TIMESTAMP),
        ("DateTime('UTC')", DataType.TIMESTAMP),
        ("DateTime64(3)", DataType.TIMESTAMP),
        ("UUID", DataType.UUID),
        ("Enum8('a' = 1, 'b' = 2)", DataType.STRING),
        # PostgreSQL / DuckDB / SQLite
        ("CHARACTER VARYING(20)", DataType.STRING),
        ("TEXT", DataType.STRING),
        ("VARCHAR", DataType.STRING),
        ("BIGINT", DataType.INTEGER),
        ("HUGEINT", DataType.INTEGER),
        ("DOUBLE PRECISION", DataType.FLOAT),
        ("REAL", DataType.FLOAT),
        ("NUMERIC", DataType.DECIMAL),
        ("NUMERIC(38, 0)", DataType.INTEGER),
        ("BOOLEAN", DataType.BOOLEAN),
        ("TIMESTAMP WITHOUT TIME ZONE", DataType.TIMESTAMP),
        ("TIMESTAMP WITH TIME ZONE", DataType.TIMESTAMP),
        ("timestamptz", DataType.TIMESTAMP),
        ("uuid", DataType.UUID),
        # BigQuery / Snowflake / Redshift
        ("INT64", DataType.INTEGER),
        ("FLOAT64", DataType.FLOAT),
        ("STRING", DataType.STRING),
        ("BIGNUMERIC", DataType.DECIMAL),
        ("BOOL", DataType.BOOLEAN),
        ("DATETIME", DataType.TIMESTAMP),
        ("NUMBER(38,0)", DataType.INTEGER),
        ("NUMBER(12,4)", DataType.DECIMAL),
        ("TIMESTAMP_NTZ(9)", DataType.TIMESTAMP),
        ("VARCHAR(16777216)", DataType.STRING),
        # Not usable
        ("INTEGER[]", None),
        ("Array(String)", None),
        ("JSON", None),
        ("JSONB", None),
        ("BLOB", None),
        ("BYTEA", None),
        ("INTERVAL", None),
        ("TIME", None),
        ("Map(String, UInt64)", None),
        ("", None),
    ],
)
def test_native_type_names_map_to_data_types(native, expected):
    assert introspect.map_native_type(native) is expected


def test_sqlalchemy_type_is_the_fallback_for_unknown_names():
    assert introspect.map_native_type("mood", sa.Enum("sad", "ok")) is DataType.STRING
    assert introspect.map_native_type("mystery", sa.types.NullType()) is None


@pytest.mark.clickhouse
def test_clickhouse_column_types_map_correctly(clickhouse_database):
    from clickhouse_driver import Client

    client = Client(host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT)
    client.execute(
        f"CREATE TABLE {clickhouse_database}.typed (s Nullable(String), lc LowCardinality(String),"
        " i Int64, f Float64, d Decimal(10,2), u8 UInt8, dt Date, ts DateTime, u UUID,"
        " a Array(Int32)) ENGINE = MergeTree ORDER BY i",
        settings={"allow_experimental_low_cardinality_type": 1},
    )
    client.disconnect()
    engine = engines.get_engine(
        name="ch-types",
        url=f"clickhouse+native://{servers.CLICKHOUSE_HOST}:{servers.CLICKHOUSE_PORT}/"
        f"{clickhouse_database}",
    )
    try:
        schema = introspect.table_schema(engine, "typed")
    finally:
        engines.forget_engine(name="ch-types")

    got = {c.name: (c.data_type, c.nullable, c.native_type) for c in schema.columns}
    assert got == {
        "s": (DataType.STRING, True, "Nullable(String)"),
        "lc": (DataType.STRING, False, "LowCardinality(String)"),
        "i": (DataType.INTEGER, False, "Int64"),
        "f": (DataType.FLOAT, False, "Float64"),
        "d": (DataType.DECIMAL, False, "Decimal(10, 2)"),
        "u8": (DataType.INTEGER, False, "UInt8"),
        "dt": (DataType.DATE, False, "Date"),
        "ts": (DataType.TIMESTAMP, False, "DateTime"),
        "u": (DataType.UUID, False, "UUID"),
    }


@pytest.mark.postgres
def test_postgres_native_uuid_enum_and_timestamptz(postgres_url):
    engine = engines.get_engine(name="pg-types", url=postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('sad', 'ok')")
            conn.exec_driver_sql(
                "CREATE TABLE typed (u uuid NOT NULL, m mood, tz timestamptz, j jsonb, n numeric)"
            )
        schema = introspect.table_schema(engine, "typed")
    finally:
        engines.forget_engine(name="pg-types")

    got = {c.name: (c.data_type, c.nullable) for c in schema.columns}
    assert got == {
        "u": (DataType.UUID, False),
        "m": (DataType.STRING, True),
        "tz": (DataType.TIMESTAMP, True),
        "n": (DataType.DECIMAL, True),
    }
