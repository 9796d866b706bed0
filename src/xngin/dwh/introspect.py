"""What a warehouse table looks like in xngin's terms: columns, types, likely unique IDs.

Each dialect reports column types in its own words (``Nullable(String)``, ``DECIMAL(10,2)``,
``TIMESTAMP WITH TIME ZONE``, ``NUMBER(38,0)``); :func:`map_native_type` reduces them to
:class:`~xngin.dwh.schema.DataType`. Columns of other types (JSON, arrays, blobs, intervals, times
of day) are left out of the :class:`~xngin.dwh.schema.TableSchema`: xngin cannot filter, stratify
or measure on them.

DuckDB and SQLite are read from their catalogs (``information_schema.columns``,
``pragma_table_info``) because their SQLAlchemy reflection loses the declared type names; other
warehouses go through SQLAlchemy's inspector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from xngin.dwh.engines import connect, datasource_name, datasource_schema
from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.errors import NotFound

__all__ = [
    "distinct_counts",
    "list_tables",
    "map_native_type",
    "table_schema",
    "unique_id_candidates",
]

_PARAMS = r"(\s*\(.*\))?"  # optional "(10, 2)", "('UTC')", "(3)"
_NATIVE_RULES: list[tuple[re.Pattern[str], DataType]] = [
    (re.compile(r"BOOL(EAN)?"), DataType.BOOLEAN),
    (re.compile(r"UUID|UNIQUEIDENTIFIER"), DataType.UUID),
    (
        re.compile(
            r"(U?INT(2|4|8|16|32|64|128|256)?|U?TINYINT|U?SMALLINT|MEDIUMINT|U?INTEGER|U?BIGINT"
            r"|U?HUGEINT|BYTEINT|(SMALL|BIG)?SERIAL)" + _PARAMS + r"(\s+UNSIGNED)?"
        ),
        DataType.INTEGER,
    ),
    (
        re.compile(
            r"(FLOAT(4|8|32|64)?|DOUBLE(\s+PRECISION)?|REAL|BINARY_(FLOAT|DOUBLE))" + _PARAMS
        ),
        DataType.FLOAT,
    ),
    (
        re.compile(r"(NUMERIC|DECIMAL(32|64|128|256)?|NUMBER|BIGNUMERIC|BIGDECIMAL|DEC)" + _PARAMS),
        DataType.DECIMAL,
    ),
    (re.compile(r"DATE(32)?"), DataType.DATE),
    (
        re.compile(
            r"(TIMESTAMP(TZ|_NTZ|_LTZ|_TZ|_S|_MS|_NS)?|DATETIME(64|2)?|SMALLDATETIME)"
            + _PARAMS
            + r"(\s+WITH(OUT)?\s+TIME\s+ZONE)?"
        ),
        DataType.TIMESTAMP,
    ),
    (
        re.compile(
            r"(VARCHAR|CHAR|CHARACTER(\s+VARYING)?|NVARCHAR|NCHAR|TEXT|STRING|CLOB|CITEXT|BPCHAR"
            r"|NAME|FIXEDSTRING|ENUM(8|16)?)" + _PARAMS
        ),
        DataType.STRING,
    ),
]
_WRAPPER = re.compile(r"(NULLABLE|LOWCARDINALITY)\s*\((.*)\)")
_SCALE = re.compile(r"\(\s*\d+\s*,\s*(\d+)\s*\)$|^DECIMAL(?:32|64|128|256)\s*\(\s*(\d+)\s*\)$")

# Generic SQLAlchemy types, for type names the rules above do not know (e.g. PostgreSQL enums).
_SA_FALLBACK: list[tuple[type[sa.types.TypeEngine[Any]], DataType]] = [
    (sa.Boolean, DataType.BOOLEAN),
    (sa.Uuid, DataType.UUID),
    (sa.Integer, DataType.INTEGER),
    (sa.Float, DataType.FLOAT),
    (sa.Numeric, DataType.DECIMAL),
    (sa.DateTime, DataType.TIMESTAMP),
    (sa.Date, DataType.DATE),
    (sa.Enum, DataType.STRING),
    (sa.String, DataType.STRING),
]


def _unwrap(native: str) -> tuple[str, bool]:
    """Strip ClickHouse's ``Nullable(...)``/``LowCardinality(...)``; report whether Nullable."""
    text = native.strip()
    nullable = False
    while match := _WRAPPER.fullmatch(text.upper()):
        nullable = nullable or match.group(1) == "NULLABLE"
        text = text[len(match.group(1)) :].strip()[1:-1].strip()
    return text, nullable


def map_native_type(
    native: str, sa_type: sa.types.TypeEngine[Any] | None = None
) -> DataType | None:
    """The :class:`DataType` of a warehouse column type, or None when xngin cannot use it.

    Parameters
    ----------
    native : str
        The type as the warehouse names it, e.g. ``"Nullable(Decimal(10, 2))"``, ``"INT64"``,
        ``"TIMESTAMP WITH TIME ZONE"``, ``"NUMBER(38,0)"``.
    sa_type : sqlalchemy type, optional
        The reflected SQLAlchemy type, consulted when the name is not recognised (enums).

    Returns
    -------
    DataType or None
        Decimals with scale 0 are integers (Snowflake's integers are ``NUMBER(38,0)``); ClickHouse
        ``UInt8`` is an integer, as ClickHouse 18 has no boolean type. Arrays, maps, JSON, binary,
        time-of-day and interval types give None.
    """
    text, _ = _unwrap(native)
    upper = " ".join(text.upper().split())
    if "[" in upper or upper.startswith(("ARRAY", "MAP", "TUPLE", "STRUCT", "NESTED")):
        return None
    for pattern, data_type in _NATIVE_RULES:
        if pattern.fullmatch(upper):
            if data_type is DataType.DECIMAL:
                scale = _SCALE.search(upper)
                if scale and int(scale.group(1) or scale.group(2)) == 0:
                    return DataType.INTEGER
            return data_type
    if sa_type is not None:
        for cls, data_type in _SA_FALLBACK:
            if isinstance(sa_type, cls):
                return data_type
    return None


class _RawColumn(NamedTuple):
    name: str
    native_type: str
    nullable: bool
    sa_type: sa.types.TypeEngine[Any] | None


def _raw_columns(conn: sa.Connection, table_name: str, schema: str | None) -> list[_RawColumn]:
    dialect = conn.dialect.name
    if dialect == "duckdb":
        rows = conn.execute(
            sa.text(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = :table AND table_schema = coalesce(:schema, current_schema()) "
                "ORDER BY ordinal_position"
            ),
            {"table": table_name, "schema": schema},
        ).all()
        return [_RawColumn(r[0], r[1], r[2] == "YES", None) for r in rows]
    if dialect == "sqlite":
        rows = conn.execute(
            sa.text('SELECT name, type, "notnull" FROM pragma_table_info(:table, :schema)'),
            {"table": table_name, "schema": schema or "main"},
        ).all()
        return [_RawColumn(r[0], r[1] or "", not r[2], None) for r in rows]
    inspector = sa.inspect(conn)
    try:
        reflected = inspector.get_columns(table_name, schema=schema)
    except sa.exc.NoSuchTableError:
        return []
    except Exception as exc:
        # ClickHouse reports an unknown table as server error 60 instead of NoSuchTableError.
        if getattr(getattr(exc, "orig", None), "code", None) == 60:
            return []
        raise
    columns = []
    for col in reflected:
        sa_type = col["type"]
        try:
            native = sa_type.compile(dialect=conn.dialect)
        except sa.exc.CompileError:
            native = type(sa_type).__name__
        _, wrapped_nullable = _unwrap(native)
        nullable = bool(col.get("nullable", True)) or wrapped_nullable
        columns.append(_RawColumn(col["name"], native, nullable, sa_type))
    return columns


def table_schema(engine: sa.Engine, table_name: str) -> TableSchema:
    """The columns of a table or view that xngin can use, in the table's order.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource; its ``schema`` option, if any, is where the table is looked up.
    table_name : str
        The table's or view's name, as stored (case matters where the warehouse says so).

    Returns
    -------
    TableSchema
        One :class:`ColumnInfo` per usable column, with nullability and the native type name.

    Raises
    ------
    xngin.errors.NotFound
        ``field="table_name"`` when the datasource has no such table or view.
    xngin.errors.Unavailable
        When the warehouse cannot be reached.
    """
    schema = datasource_schema(engine)
    with connect(engine) as conn:
        raw = _raw_columns(conn, table_name, schema)
    if not raw:
        where = f" in schema {schema!r}" if schema else ""
        raise NotFound(
            f"table {table_name!r} does not exist{where} in datasource {datasource_name(engine)!r}"
            "; list the tables to see what is there",
            field="table_name",
        )
    columns = []
    for col in raw:
        data_type = map_native_type(col.native_type, col.sa_type)
        if data_type is not None:
            columns.append(
                ColumnInfo(
                    name=col.name,
                    data_type=data_type,
                    nullable=col.nullable,
                    native_type=col.native_type,
                )
            )
    return TableSchema(table_name=table_name, columns=tuple(columns))


def list_tables(engine: sa.Engine) -> list[str]:
    """Names of the tables and views in the datasource's schema, sorted."""
    schema = datasource_schema(engine)
    with connect(engine) as conn:
        inspector = sa.inspect(conn)
        names = set(inspector.get_table_names(schema=schema))
        names.update(inspector.get_view_names(schema=schema))
    return sorted(names)


_ID_NAME = re.compile(r"(?i)(id|uuid|.*_id)")
_ID_TYPES = (DataType.INTEGER, DataType.STRING, DataType.UUID)


def _table_clause(schema: TableSchema, names: Sequence[str]) -> sa.TableClause:
    # Unqualified: the datasource's schema option is the connection's default schema.
    return sa.table(schema.table_name, *(sa.column(n) for n in names))


def unique_id_candidates(engine: sa.Engine, schema: TableSchema) -> list[str]:
    """Columns that can serve as the participant ID, best first.

    A candidate is named ``id``, ``uuid`` or ``*_id`` (any case), is an integer, string or UUID
    column, and holds no NULL and no repeated value, verified with one query comparing
    ``COUNT(*)``, ``COUNT(col)`` and ``COUNT(DISTINCT col)``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource.
    schema : TableSchema
        The table, as returned by :func:`table_schema`.

    Returns
    -------
    list of str
        Verified column names: ``id`` first, then ``uuid``, then ``*_id`` in table order.
    """
    named = [
        c.name for c in schema.columns if _ID_NAME.fullmatch(c.name) and c.data_type in _ID_TYPES
    ]
    if not named:
        return []
    table = _table_clause(schema, named)
    selects: list[sa.ColumnElement[Any]] = [sa.func.count().label("n")]
    for i, name in enumerate(named):
        col = table.c[name]
        selects.append(sa.func.count(col).label(f"nn{i}"))
        selects.append(sa.func.count(sa.distinct(col)).label(f"nd{i}"))
    with connect(engine) as conn:
        row = conn.execute(sa.select(*selects).select_from(table)).one()
    total = row[0]
    unique = [
        name for i, name in enumerate(named) if row[1 + 2 * i] == total and row[2 + 2 * i] == total
    ]

    def rank(name: str) -> int:
        lowered = name.lower()
        return 0 if lowered == "id" else 1 if lowered == "uuid" else 2

    return sorted(unique, key=rank)


def distinct_counts(engine: sa.Engine, schema: TableSchema) -> dict[str, int]:
    """Number of distinct non-NULL values of every column, in one query.

    Used when proposing a config sheet: few distinct values suggest a filter or stratum. Exact
    ``COUNT(DISTINCT ...)`` scans the whole table; on very large tables this is the slowest step
    of bootstrapping a sheet, but it runs once per participant type.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource.
    schema : TableSchema
        The table, as returned by :func:`table_schema`.

    Returns
    -------
    dict
        Column name to count of distinct non-NULL values.
    """
    names = [c.name for c in schema.columns]
    if not names:
        return {}
    table = _table_clause(schema, names)
    stmt = sa.select(
        *(sa.func.count(sa.distinct(table.c[n])).label(f"d{i}") for i, n in enumerate(names))
    ).select_from(table)
    with connect(engine) as conn:
        row = conn.execute(stmt).one()
    return {name: int(row[i]) for i, name in enumerate(names)}
