"""SQL as each warehouse receives it, including those whose dialect packages are not installed.

BigQuery, Snowflake and Redshift dialects are optional extras. Their compiled forms are checked
with a stand-in dialect of the same name (our constructs dispatch on the dialect name); checks
that need the real package skip with the reason when it is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect

from xngin.dwh import dialects
from xngin.dwh.audience import audience_statement
from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.schema import ColumnInfo, DataType

INSTALLED = {
    "postgresql": "postgresql+psycopg://",
    "sqlite": "sqlite://",
    "duckdb": "duckdb:///:memory:",
    "clickhouse": "clickhouse+native://localhost/default",
}


def stand_in(name: str) -> sa.Dialect:
    """The real dialect when installed, else a generic one carrying the warehouse's name."""
    if name in INSTALLED:
        return sa.make_url(INSTALLED[name]).get_dialect()()
    dialect = DefaultDialect(paramstyle="named")
    dialect.name = name
    return dialect


def compiled(stmt, dialect) -> str:
    """The SQL text, with every driver's parameter marker spelled ``:p``."""
    text = " ".join(str(stmt.compile(dialect=dialect)).split())
    return re.sub(r"%\(\w+\)s|\$\d+|\?|(?<!:):\w+", ":p", text)


PID = ColumnInfo("pid", DataType.INTEGER)


def order_key_sql(dialect) -> str:
    table = sa.table("people", sa.column("pid"))
    stmt = audience_statement(table, id_field=PID, columns=[], filters=None, seed=7, limit=10)
    return compiled(stmt, dialect)


@pytest.mark.parametrize(
    ("dialect_name", "expected"),
    [
        ("bigquery", "ORDER BY TO_HEX(MD5(CONCAT(:p, CAST(people.pid AS VARCHAR)))), people.pid"),
        ("snowflake", "ORDER BY md5(:p || CAST(people.pid AS VARCHAR)), people.pid"),
        ("redshift", "ORDER BY md5(:p || CAST(people.pid AS VARCHAR)), people.pid"),
        ("duckdb", "ORDER BY md5(:p || CAST(people.pid AS VARCHAR)), people.pid"),
        (
            "postgresql",
            'ORDER BY md5(:p::VARCHAR || CAST(people.pid AS VARCHAR)) COLLATE "C", people.pid',
        ),
        ("sqlite", "ORDER BY xngin_md5(:p || CAST(people.pid AS VARCHAR)), people.pid"),
        ("clickhouse", "ORDER BY lower(hex(MD5(concat(:p, toString(people.pid))))), people.pid"),
    ],
)
def test_seeded_order_compiles_to_each_warehouses_md5(dialect_name, expected):
    sql = order_key_sql(stand_in(dialect_name))

    assert expected in sql
    assert "LIMIT :p" in sql
    assert "random" not in sql.lower()


def test_seed_is_a_parameter_not_sql_text():
    table = sa.table("people", sa.column("pid"))
    stmt = audience_statement(table, id_field=PID, columns=[], filters=None, seed=123456789)
    compiled_stmt = stmt.compile(dialect=stand_in("bigquery"))

    assert "123456789" not in str(compiled_stmt)
    assert "123456789:" in compiled_stmt.params.values()


@pytest.mark.parametrize(
    ("package", "url"),
    [
        ("sqlalchemy_bigquery", "bigquery://project/dataset"),
        ("snowflake.sqlalchemy", "snowflake://user@account/db/schema"),
        ("sqlalchemy_redshift", "redshift+psycopg2://user@host:5439/db"),
    ],
)
def test_seeded_order_with_the_real_optional_dialect(package, url):
    root = package.split(".")[0]
    if importlib.util.find_spec(root) is None:
        pytest.skip(f"{package} is not installed (optional extra); stand-in dialect tested instead")
    dialect = sa.make_url(url).get_dialect()()  # pragma: no cover - only with the extra installed
    sql = order_key_sql(dialect)  # pragma: no cover
    assert "md5" in sql.lower()  # pragma: no cover


def test_python_equivalent_of_the_order_key():
    assert dialects.seeded_hash_hex(42, 7) == hashlib.md5(b"7:42").hexdigest()
    assert dialects.seeded_hash_hex("abc", -1) == hashlib.md5(b"-1:abc").hexdigest()


@pytest.mark.parametrize("dialect_name", ["bigquery", "snowflake", "redshift"])
def test_filters_compile_with_bound_parameters_on_optional_warehouses(dialect_name):
    table = sa.table("people", sa.column("region"), sa.column("age"), sa.column("active"))
    allowed = {"region": DataType.STRING, "age": DataType.INTEGER, "active": DataType.BOOLEAN}
    where = compile_filters(
        table,
        [
            AudienceFilter("region", Relation.EXCLUDES, ["x' OR 1=1 --"]),
            AudienceFilter("age", Relation.BETWEEN, [18, None]),
            AudienceFilter("active", Relation.INCLUDES, [True, None]),
        ],
        allowed=allowed,
    )

    sql = compiled(
        sa.select(sa.func.count()).select_from(table).where(where), stand_in(dialect_name)
    )

    assert "OR 1=1" not in sql
    assert "people.region NOT IN" in sql and "people.region IS NULL" in sql
    assert "people.age >= :p" in sql
    assert "people.active IS NULL" in sql


def test_clickhouse_gets_its_spellings():
    ch = stand_in("clickhouse")
    table = sa.table("t", sa.column("a"), sa.column("d"))
    shifts = sa.select(sa.func.avg(table.c.a).label("k")).select_from(table).subquery("s")

    assert compiled(sa.select(table.c.a).where(sa.true()), ch).endswith("WHERE 1")
    assert "t CROSS JOIN (SELECT" in compiled(
        sa.select(sa.func.count()).select_from(dialects.cross_join(table, shifts)), ch
    )
    assert "JOIN (SELECT avg(t.a) AS k FROM t) AS s ON true" in compiled(
        sa.select(sa.func.count()).select_from(dialects.cross_join(table, shifts)),
        stand_in("postgresql"),
    )
    assert compiled(sa.select(dialects.as_double(table.c.a)), ch).startswith(
        "SELECT toFloat64(t.a)"
    )
    assert compiled(sa.select(dialects.as_text(table.c.a)), ch).startswith("SELECT toString(t.a)")
    assert "toFloat64(t.d) >=" in compiled(
        sa.select(table.c.a).where(dialects.comparable(table.c.d, sa.Numeric()) >= 1), ch
    )


def test_union_placeholders_are_typed_only_where_needed():
    stmt = sa.select(dialects.typed_null(sa.Boolean()))

    assert compiled(stmt, stand_in("postgresql")) == "SELECT CAST(NULL AS BOOLEAN) AS anon_1"
    assert compiled(stmt, stand_in("redshift")) == "SELECT CAST(NULL AS BOOLEAN) AS anon_1"
    assert compiled(stmt, stand_in("clickhouse")) == "SELECT NULL AS anon_1"
    assert compiled(stmt, stand_in("duckdb")) == "SELECT NULL AS anon_1"


def test_boolean_parameters_are_integers_on_clickhouse_only():
    process = dialects.ParameterBoolean().bind_processor(stand_in("clickhouse"))
    assert process is not None and process(True) == 1 and process(False) == 0
    other = dialects.ParameterBoolean().bind_processor(stand_in("postgresql"))
    assert other is None or other(True) is True


def test_custom_constructs_do_not_share_cached_sql():
    # Statements differing only inside our constructs must not reuse each other's SQL.
    table = sa.table("t", sa.column("a"), sa.column("b"))
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a INTEGER, b INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 20), (2, 10)")
        dialects.prepare_sqlite_connection(conn)
        for column, expected in ((table.c.a, "1"), (table.c.b, "10")):
            got = conn.execute(
                sa.select(dialects.as_text(column)).select_from(table).order_by(column.desc())
            ).all()
            assert got[-1][0] == expected
        by_a = (
            conn.execute(sa.select(table.c.a).order_by(dialects.SeededHash(table.c.a, seed=1)))
            .scalars()
            .all()
        )
        by_b = (
            conn.execute(sa.select(table.c.a).order_by(dialects.SeededHash(table.c.b, seed=1)))
            .scalars()
            .all()
        )
    expected_a = sorted([1, 2], key=lambda a: dialects.seeded_hash_hex(a, 1))
    expected_b = sorted([1, 2], key=lambda a: dialects.seeded_hash_hex({1: 20, 2: 10}[a], 1))
    assert (by_a, by_b) == (expected_a, expected_b)


def test_text_values_in_unions_are_cast_only_where_types_would_clash():
    table = sa.table("t", sa.column("s"))
    stmt = sa.select(dialects.union_text(table.c.s))

    assert compiled(stmt, stand_in("postgresql")).startswith("SELECT CAST(t.s AS VARCHAR)")
    assert compiled(stmt, stand_in("clickhouse")).startswith("SELECT CAST(t.s AS Nullable(String))")
    assert compiled(stmt, stand_in("duckdb")).startswith("SELECT t.s")
    assert compiled(stmt, stand_in("sqlite")).startswith("SELECT t.s")
