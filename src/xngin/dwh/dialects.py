"""Where warehouses differ: the few SQL constructs xngin compiles per dialect.

Everything else in ``dwh`` is dialect-neutral SQLAlchemy Core. The differences handled here:

- the seeded, reproducible order of participants (:class:`SeededHash`): an MD5 of
  ``"<seed>:<id as text>"`` as 32 lowercase hex digits. MD5 is the one hash every supported
  warehouse has built in (SQLite gets a deterministic user function from :func:`prepare_engine`),
  so the same seed orders the same IDs identically in every warehouse and in Python
  (``hashlib.md5(f"{seed}:{id}".encode()).hexdigest()``);
- ClickHouse 18.16 has no ``true``/``false`` literals or booleans (``UInt8``; see
  :class:`ParameterBoolean`), joins only on equality keys (:func:`cross_join`), cannot compare
  ``Decimal`` columns with parameters (:func:`comparable`), fails ``CAST`` of NULLs to
  non-Nullable types, and reports a refused connection only when a query runs
  (:func:`is_connection_failure`);
- PostgreSQL casts text parameters to ``VARCHAR`` (:class:`ParameterText`) and resolves UNION
  column types pairwise (:func:`typed_null`, :func:`union_text`);
- a column as text (:func:`as_text`) and as a double-precision number (:func:`as_double`).
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import elements
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = [
    "SQLITE_MD5_FUNCTION",
    "ParameterBoolean",
    "ParameterText",
    "SeededHash",
    "as_double",
    "as_text",
    "comparable",
    "cross_join",
    "is_connection_failure",
    "prepare_engine",
    "prepare_sqlite_connection",
    "seeded_hash_hex",
    "typed_null",
    "union_text",
]

SQLITE_MD5_FUNCTION = "xngin_md5"


def seeded_hash_hex(participant_id: object, seed: int) -> str:
    """The order key of a participant in Python, equal to what :class:`SeededHash` computes in SQL.

    Parameters
    ----------
    participant_id : object
        The ID as the warehouse renders it as text (integers in decimal, UUIDs lowercase).
    seed : int
        Any integer.

    Returns
    -------
    str
        32 lowercase hex digits of ``md5(f"{seed}:{participant_id}")``.
    """
    return hashlib.md5(f"{seed}:{participant_id}".encode()).hexdigest()


def _sqlite_md5(text: str | None) -> str | None:
    if text is None:
        return None
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def prepare_engine(engine: sa.Engine) -> None:
    """Install per-connection helpers a dialect lacks (SQLite: an MD5 function)."""
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _register_md5(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function(
                SQLITE_MD5_FUNCTION, 1, _sqlite_md5, deterministic=True
            )


def prepare_sqlite_connection(conn: sa.Connection) -> None:
    """Register the MD5 function on a SQLite connection not made by :func:`prepare_engine`."""
    conn.connection.driver_connection.create_function(  # type: ignore[union-attr]
        SQLITE_MD5_FUNCTION, 1, _sqlite_md5, deterministic=True
    )


def is_connection_failure(exc: BaseException) -> bool:
    """Whether a query failed because the server could not be reached or refused the login.

    The ClickHouse native driver connects lazily, so these surface at the first statement.
    """
    try:
        from clickhouse_driver import errors as ch_errors
    except ImportError:  # pragma: no cover - the driver is a core dependency
        return False
    orig = getattr(exc, "orig", None) or exc.__cause__
    if isinstance(orig, ch_errors.NetworkError | ch_errors.SocketTimeoutError):
        return True
    # 193 wrong password, 516 authentication failed, 192 unknown user, 81 unknown database
    return isinstance(orig, ch_errors.ServerException) and orig.code in (81, 192, 193, 516)


# ClickHouse 18.16 has no boolean literals; `WHERE 1` is its spelling of `WHERE true`.
@compiles(elements.True_, "clickhouse")
def _true_clickhouse(_element: elements.True_, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "1"


@compiles(elements.False_, "clickhouse")
def _false_clickhouse(_element: elements.False_, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "0"


class _CrossJoin(sa.sql.expression.Join):
    """A join on ``true``: rendered as such, except on ClickHouse (see :func:`cross_join`)."""

    inherit_cache = True


@compiles(_CrossJoin, "clickhouse")
def _cross_join_clickhouse(element: _CrossJoin, compiler: SQLCompiler, **kw: Any) -> str:
    kw["asfrom"] = True
    from_linter = kw.get("from_linter")
    if from_linter is not None:  # tell SQLAlchemy's cartesian-product check the tables are joined
        from_linter.edges.update(
            itertools.product(element.left._from_objects, element.right._from_objects)
        )
    left = compiler.process(element.left, **kw)
    right = compiler.process(element.right, **kw)
    return f"{left} CROSS JOIN {right}"


def cross_join(left: sa.FromClause, right: sa.FromClause) -> sa.sql.expression.Join:
    """``left`` joined with every row of ``right``.

    ClickHouse 18.16 joins only on equality keys (``ON 1`` is refused) but has ``CROSS JOIN``;
    the other warehouses get ``JOIN ... ON true``.
    """
    return _CrossJoin(left, right, sa.true())


class _AsDouble(sa.sql.expression.ColumnElement[float]):
    inherit_cache = True
    type = sa.Double()
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]

    def __init__(self, expr: sa.ColumnElement[Any]) -> None:
        self.expr = expr


@compiles(_AsDouble)
def _as_double_default(element: _AsDouble, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(sa.cast(element.expr, sa.Double()), **kw)


@compiles(_AsDouble, "clickhouse")
def _as_double_clickhouse(element: _AsDouble, compiler: SQLCompiler, **kw: Any) -> str:
    # CAST(x AS Float64) fails on NULLs of a Nullable column; toFloat64 keeps them NULL.
    return f"toFloat64({compiler.process(element.expr, **kw)})"


def as_double(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[float]:
    """``expr`` as a double-precision float (not ``FLOAT``, which is 4 bytes in DuckDB)."""
    return _AsDouble(expr)


class _AsText(sa.sql.expression.ColumnElement[str]):
    inherit_cache = True
    type = sa.String()
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]

    def __init__(self, expr: sa.ColumnElement[Any]) -> None:
        self.expr = expr


@compiles(_AsText)
def _as_text_default(element: _AsText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(sa.cast(element.expr, sa.String()), **kw)


@compiles(_AsText, "clickhouse")
def _as_text_clickhouse(element: _AsText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"toString({compiler.process(element.expr, **kw)})"


def as_text(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """``expr`` rendered as text the way the warehouse prints it (integers in decimal)."""
    return _AsText(expr)


class _Comparable(sa.sql.expression.ColumnElement[Any]):
    """A decimal column made comparable with Python ``Decimal`` parameters.

    PostgreSQL, DuckDB and SQLite compare ``NUMERIC`` columns with decimal parameters as they are.
    ClickHouse 18.16 refuses ``Decimal(P, S)`` against any parameter it receives (``Float64`` or a
    decimal of another scale) and rejects mixed decimal scales in ``IN``; there the column is
    compared as ``Float64``. Both sides then go through the same decimal-to-double rounding, so
    equality holds for the values a ``Decimal(P, S)`` column can hold up to 15 significant digits.
    """

    inherit_cache = True
    _traverse_internals = [
        ("expr", InternalTraversal.dp_clauseelement),
        ("type", InternalTraversal.dp_type),
    ]

    def __init__(self, expr: sa.ColumnElement[Any], type_: sa.types.TypeEngine[Any]) -> None:
        self.expr = expr
        self.type = type_


@compiles(_Comparable)
def _comparable_default(element: _Comparable, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.expr, **kw)


@compiles(_Comparable, "clickhouse")
def _comparable_clickhouse(element: _Comparable, compiler: SQLCompiler, **kw: Any) -> str:
    return f"toFloat64({compiler.process(element.expr, **kw)})"


def comparable(
    expr: sa.ColumnElement[Any], type_: sa.types.TypeEngine[Any]
) -> sa.ColumnElement[Any]:
    """A decimal column, typed ``type_`` for its parameters, comparable on every dialect."""
    return _Comparable(expr, type_)


class SeededHash(sa.sql.expression.ColumnElement[str]):
    """The participant order key: 32 hex digits of ``md5("<seed>:" || id as text)``.

    Ordering by it is reproducible (same seed and data, same order) and differs between seeds,
    without ``ORDER BY random()``. See :func:`seeded_hash_hex` for the Python equivalent.
    """

    inherit_cache = True
    type = sa.String()
    _traverse_internals = [
        ("participant_id", InternalTraversal.dp_clauseelement),
        ("prefix", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, participant_id: sa.ColumnElement[Any], *, seed: int) -> None:
        self.participant_id = participant_id
        self.prefix = sa.literal(f"{seed}:", sa.String())


@compiles(SeededHash)
def _seeded_hash_default(element: SeededHash, compiler: SQLCompiler, **kw: Any) -> str:
    # DuckDB, Snowflake and Redshift: md5() returns lowercase hex of a VARCHAR.
    text = compiler.process(sa.cast(element.participant_id, sa.String()), **kw)
    return f"md5({compiler.process(element.prefix, **kw)} || {text})"


@compiles(SeededHash, "postgresql")
def _seeded_hash_postgresql(element: SeededHash, compiler: SQLCompiler, **kw: Any) -> str:
    # Hex digits sort the same under any collation, but "C" also skips locale-aware comparison.
    return f'{_seeded_hash_default(element, compiler, **kw)} COLLATE "C"'


@compiles(SeededHash, "sqlite")
def _seeded_hash_sqlite(element: SeededHash, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(sa.cast(element.participant_id, sa.String()), **kw)
    return f"{SQLITE_MD5_FUNCTION}({compiler.process(element.prefix, **kw)} || {text})"


@compiles(SeededHash, "clickhouse")
def _seeded_hash_clickhouse(element: SeededHash, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = compiler.process(element.prefix, **kw)
    text = compiler.process(as_text(element.participant_id), **kw)
    return f"lower(hex(MD5(concat({prefix}, {text}))))"


@compiles(SeededHash, "bigquery")
def _seeded_hash_bigquery(element: SeededHash, compiler: SQLCompiler, **kw: Any) -> str:
    # BigQuery's MD5 returns BYTES; TO_HEX makes lowercase hex. Its dialect spells String STRING.
    text = compiler.process(sa.cast(element.participant_id, sa.String()), **kw)
    return f"TO_HEX(MD5(CONCAT({compiler.process(element.prefix, **kw)}, {text})))"


class ParameterText(sa.types.UserDefinedType[str]):
    """Text parameters sent without a type cast.

    SQLAlchemy's psycopg dialect renders string parameters as ``%(p)s::VARCHAR``, and PostgreSQL
    then refuses to compare them with ``uuid`` or enum columns. Untyped, the server infers the
    column's type; the other warehouses treat it as plain text.
    """

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "VARCHAR"


class _TypedNull(sa.sql.expression.ColumnElement[Any]):
    inherit_cache = True
    _traverse_internals = [("type", InternalTraversal.dp_type)]

    def __init__(self, type_: sa.types.TypeEngine[Any]) -> None:
        self.type = type_


@compiles(_TypedNull)
def _typed_null_default(_element: _TypedNull, _compiler: SQLCompiler, **_kw: Any) -> str:
    # DuckDB, SQLite, ClickHouse (whose CAST(NULL AS String) fails: String is not Nullable),
    # BigQuery and Snowflake give an untyped NULL the type of the other UNION branches.
    return "NULL"


@compiles(_TypedNull, "postgresql")
@compiles(_TypedNull, "redshift")
def _typed_null_postgresql(element: _TypedNull, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL resolves UNION column types pairwise: NULL with NULL becomes text, which then
    # clashes with a boolean or date branch.
    return compiler.process(sa.cast(sa.null(), element.type), **kw)


def typed_null(type_: sa.types.TypeEngine[Any]) -> sa.ColumnElement[Any]:
    """A NULL placeholder in a UNION branch, typed where the dialect needs it."""
    return _TypedNull(type_)


class ParameterBoolean(sa.types.TypeDecorator[bool]):
    """Boolean parameters; ClickHouse 18.16 stores booleans as ``UInt8`` and needs 0/1."""

    impl = sa.Boolean
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        # Boolean's own processor would turn the 0/1 back into True/False.
        if dialect.name == "clickhouse":
            return dialect.type_descriptor(sa.Integer())
        return dialect.type_descriptor(sa.Boolean())

    def process_bind_param(self, value: bool | None, dialect: sa.Dialect) -> Any:
        if value is not None and dialect.name == "clickhouse":
            return int(value)
        return value


class _UnionText(sa.sql.expression.ColumnElement[str]):
    inherit_cache = True
    type = sa.String()
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]

    def __init__(self, expr: sa.ColumnElement[Any]) -> None:
        self.expr = expr


@compiles(_UnionText)
def _union_text_default(element: _UnionText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.expr, **kw)


@compiles(_UnionText, "postgresql")
@compiles(_UnionText, "redshift")
def _union_text_postgresql(element: _UnionText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(sa.cast(element.expr, sa.String()), **kw)


@compiles(_UnionText, "clickhouse")
def _union_text_clickhouse(element: _UnionText, compiler: SQLCompiler, **kw: Any) -> str:
    # LowCardinality(String) cannot become Nullable, which a UNION with NULL placeholders needs.
    return f"CAST({compiler.process(element.expr, **kw)} AS Nullable(String))"


def union_text(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A text column as a UNION branch value.

    PostgreSQL (and Redshift) will not unite an enum, ``uuid`` or ``citext`` column with
    ``VARCHAR`` placeholders, and ClickHouse 18 cannot make ``LowCardinality(String)`` Nullable, so
    the column is cast there; elsewhere it is left alone, since even an identity cast costs a fifth
    of a ``GROUP BY`` in DuckDB.
    """
    return _UnionText(expr)


class _EpochNumber(sa.sql.expression.ColumnElement[float]):
    """A date as days, or a timestamp as seconds, since 1970-01-01 (as a double)."""

    inherit_cache = True
    type = sa.Double()
    _traverse_internals = [
        ("expr", InternalTraversal.dp_clauseelement),
        ("unit", InternalTraversal.dp_string),
    ]

    def __init__(self, expr: sa.ColumnElement[Any], unit: str) -> None:
        self.expr = expr
        self.unit = unit


@compiles(_EpochNumber)
def _epoch_default(element: _EpochNumber, compiler: SQLCompiler, **kw: Any) -> str:
    # DuckDB: date - date is BIGINT days; epoch(timestamp) is seconds with the fraction. A sheet
    # may call a timestamp column a date: the cast drops the time of day, as python_value does.
    expr = compiler.process(element.expr, **kw)
    if element.unit == "days":
        return f"CAST((CAST({expr} AS DATE) - DATE '1970-01-01') AS DOUBLE)"
    return f"epoch({expr})"


@compiles(_EpochNumber, "postgresql")
@compiles(_EpochNumber, "redshift")
def _epoch_postgresql(element: _EpochNumber, compiler: SQLCompiler, **kw: Any) -> str:
    expr = compiler.process(element.expr, **kw)
    if element.unit == "days":
        return f"CAST((CAST({expr} AS DATE) - DATE '1970-01-01') AS DOUBLE PRECISION)"
    # EXTRACT gives numeric (exact) on PostgreSQL 14+; a timestamp without zone counts as UTC.
    return f"CAST(EXTRACT(EPOCH FROM {expr}) AS DOUBLE PRECISION)"


@compiles(_EpochNumber, "sqlite")
def _epoch_sqlite(element: _EpochNumber, compiler: SQLCompiler, **kw: Any) -> str:
    expr = compiler.process(element.expr, **kw)
    # julianday() is kept in whole milliseconds; rounding to 3 decimals recovers them exactly.
    if element.unit == "days":
        return f"julianday(date({expr})) - 2440587.5"
    return f"round((julianday({expr}) - 2440587.5) * 86400.0, 3)"


@compiles(_EpochNumber, "clickhouse")
def _epoch_clickhouse(element: _EpochNumber, compiler: SQLCompiler, **kw: Any) -> str:
    # A Date is stored as UInt16 days and a DateTime as UInt32 Unix seconds; the naive values
    # xngin reads back are in the server's time zone, which is UTC for these to agree.
    expr = compiler.process(element.expr, **kw)
    if element.unit == "days":
        return f"toFloat64(toUInt16(toDate({expr})))"
    return f"toFloat64(toUInt32(toDateTime({expr})))"


def epoch_number(expr: sa.ColumnElement[Any], unit: str) -> sa.ColumnElement[float]:
    """A date as days (``unit="days"``) or a timestamp as seconds (``"seconds"``) since
    1970-01-01, as a double, on every supported warehouse."""
    return _EpochNumber(expr, unit)
