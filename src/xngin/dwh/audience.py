"""The audience itself: how many participants match, and their rows in a seeded random order.

:func:`audience_rows` orders participants by :class:`~xngin.dwh.dialects.SeededHash` of their
ID, so taking the first ``desired_n`` rows is a simple random sample that the same seed
reproduces on the same data, computed where the data is (no ``ORDER BY random()``, no loading the
whole table to sample it). Rows stream back in chunks so a large audience never sits whole in the
API process unless the caller collects it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from xngin.dwh import dialects
from xngin.dwh.columns import column_of, python_value
from xngin.dwh.engines import connect
from xngin.dwh.filters import parameter_type
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.errors import InvalidInput

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "UNLISTED_LEVEL",
    "audience_rows",
    "audience_statement",
    "count_audience",
    "level_code",
    "values_by_id",
]

#: Code of a value that is not among the levels given to :func:`level_code`.
UNLISTED_LEVEL = -1

DEFAULT_CHUNK_SIZE = 50_000


def count_audience(
    engine: sa.Engine, table: sa.TableClause, filters: sa.ColumnElement[bool] | None = None
) -> int:
    """Number of participants matching ``filters`` (from ``compile_filters`` on ``table``).

    Raises
    ------
    xngin.errors.Unavailable
        When the warehouse cannot be reached.
    """
    stmt = sa.select(sa.func.count()).select_from(table)
    if filters is not None:
        stmt = stmt.where(filters)
    with connect(engine) as conn:
        return int(conn.execute(stmt).scalar_one())


def _check_int(value: Any, *, field: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{field} must be an integer >= {minimum}, got {value!r}", field=field)


def level_code(
    table: sa.TableClause, column: ColumnInfo, levels: Sequence[Any]
) -> sa.ColumnElement[int]:
    """The position of each row's value in ``levels`` (None for NULL may be among them).

    A categorical stratum then travels as a small integer instead of its text, and the
    participant's stratum is known without hashing strings in Python. A value missing from
    ``levels`` (added to the table since they were listed) gets :data:`UNLISTED_LEVEL`. Values
    are bound parameters; the statement's shape depends only on how many levels there are.
    """

    typed = sa.type_coerce(column_of(table, column.name), parameter_type(column.data_type))

    # The codes are our own integers, written into the SQL as Int64 literals so that every
    # branch has one type (ClickHouse refuses a CASE whose branches it types differently).
    def code(number: int) -> sa.ColumnElement[int]:
        return sa.cast(sa.literal_column(str(int(number))), sa.BigInteger())

    whens: list[tuple[sa.ColumnElement[bool], sa.ColumnElement[int]]] = []
    for position, value in enumerate(levels):
        whens.append((typed.is_(None) if value is None else typed == value, code(position)))
    if not whens:
        return code(UNLISTED_LEVEL)
    return sa.case(*whens, else_=code(UNLISTED_LEVEL))


def audience_statement(
    table: sa.TableClause,
    *,
    id_field: ColumnInfo,
    columns: Sequence[ColumnInfo],
    filters: sa.ColumnElement[bool] | None,
    seed: int,
    limit: int | None = None,
    coded: Mapping[str, Sequence[Any]] | None = None,
) -> sa.Select[Any]:
    """The SELECT behind :func:`audience_rows` (exposed for SQL compilation checks).

    Rows are ordered by the seeded hash of the ID, then by the ID itself so that even a hash
    collision leaves the order total.
    """
    _check_int(seed, field="seed", minimum=-(2**63))
    if limit is not None:
        _check_int(limit, field="desired_n", minimum=0)
    participant_id = column_of(table, id_field.name)
    by_name = {c.name: c for c in columns}
    wanted = [c for c in by_name if c != id_field.name]
    coded = coded or {}
    # Labelled apart from the column: ClickHouse lets a SELECT alias shadow the column of the
    # same name in WHERE, where the filters expect the values, not their codes.
    selected = [
        level_code(table, by_name[name], coded[name]).label(f"{name}__level")
        if name in coded
        else column_of(table, name)
        for name in wanted
    ]
    stmt = (
        sa.select(participant_id, *selected)
        .select_from(table)
        .order_by(dialects.SeededHash(participant_id, seed=seed), participant_id)
    )
    if filters is not None:
        stmt = stmt.where(filters)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def audience_rows(
    engine: sa.Engine,
    table: sa.TableClause,
    *,
    id_field: ColumnInfo,
    columns: Sequence[ColumnInfo],
    filters: sa.ColumnElement[bool] | None,
    seed: int,
    limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    coded: Mapping[str, Sequence[Any]] | None = None,
) -> Iterator[pd.DataFrame]:
    """The audience's IDs and chosen columns in seeded random order, as a stream of DataFrames.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource.
    table : sqlalchemy.TableClause
        The participant table.
    id_field : ColumnInfo
        The unique-ID column (integer, string or UUID).
    columns : sequence of ColumnInfo
        Further columns to return (strata, covariates); duplicates and the ID are dropped.
    filters : sqlalchemy.ColumnElement[bool] or None
        The audience from :func:`xngin.dwh.filters.compile_filters` on the same ``table``.
    seed : int
        Any 64-bit integer. The same seed and data give the same order on every supported
        warehouse; another seed gives another order.
    limit : int, optional
        Return only the first ``limit`` participants in that order (``desired_n``; >= 0).
    chunk_size : int, default 50,000
        Rows per DataFrame (>= 1).
    coded : mapping of str to sequence, optional
        Categorical columns to return as integer level codes (:func:`level_code`) rather than
        values: column name to its levels.

    Yields
    ------
    pandas.DataFrame
        Columns ``[id_field.name, *columns]`` of dtype ``object`` holding Python values as
        :func:`xngin.dwh.columns.python_value` gives them, ``None`` for NULL (pandas' own
        inference would turn NULL integers into NaN floats, and differently per chunk). Chunks
        continue the order; no chunk is empty. The warehouse connection stays open until the
        iterator is exhausted or closed, so consume it promptly (or ``close()`` it).

    Raises
    ------
    xngin.errors.InvalidInput
        ``field`` ``seed``, ``desired_n`` or ``chunk_size`` for out-of-range arguments.
    xngin.errors.Unavailable
        When the warehouse cannot be reached.
    """
    _check_int(chunk_size, field="chunk_size", minimum=1)
    stmt = audience_statement(
        table,
        id_field=id_field,
        columns=columns,
        filters=filters,
        seed=seed,
        limit=limit,
        coded=coded,
    )
    wanted = [id_field] + [
        ColumnInfo(c.name, DataType.INTEGER) if coded and c.name in coded else c
        for c in {c.name: c for c in columns}.values()
        if c.name != id_field.name
    ]
    names = [c.name for c in wanted]
    return _stream(engine, stmt, wanted, names, chunk_size)


def _stream(
    engine: sa.Engine,
    stmt: sa.Select[Any],
    wanted: list[ColumnInfo],
    names: list[str],
    chunk_size: int,
) -> Iterator[pd.DataFrame]:
    with connect(engine) as conn:
        if conn.dialect.name == "sqlite":
            dialects.prepare_sqlite_connection(conn)
        result = conn.execution_options(stream_results=True, max_row_buffer=chunk_size).execute(
            stmt
        )
        for rows in result.partitions(chunk_size):
            data = {
                name: [python_value(row[i], info.data_type) for row in rows]
                for i, (name, info) in enumerate(zip(names, wanted, strict=True))
            }
            yield pd.DataFrame({n: pd.Series(v, dtype=object) for n, v in data.items()})


def values_by_id(
    conn: sa.Connection,
    table: sa.TableClause,
    *,
    id_field: ColumnInfo,
    fields: Sequence[ColumnInfo],
    ids: Sequence[str],
) -> dict[str, tuple[Any, ...]]:
    """Some fields of the participants with the given IDs (one ``IN`` query, bound values).

    Parameters
    ----------
    conn : sqlalchemy.Connection
        An open warehouse connection (from :func:`xngin.dwh.engines.connect`), reused across
        calls when a caller walks an experiment's participants chunk by chunk.
    table : sqlalchemy.TableClause
        The participant table.
    id_field : ColumnInfo
        Its unique-ID column; IDs arrive as text (as the app database stores them) and are
        compared as the column's type (integer IDs that are not numbers match nothing).
    fields : sequence of ColumnInfo
        The columns to read.
    ids : sequence of str
        At most a few thousand per call (the ``IN`` list is sent as parameters).

    Returns
    -------
    dict
        ID text to the fields' values (Python values, None for NULL), for IDs found.
    """
    if id_field.data_type is DataType.INTEGER:
        keys: list[Any] = [int(p) for p in ids if p.lstrip("-").isdigit()]
    else:
        keys = list(ids)
    if not keys:
        return {}
    participant_id = sa.type_coerce(
        column_of(table, id_field.name), parameter_type(id_field.data_type)
    )
    stmt = (
        sa.select(column_of(table, id_field.name), *(column_of(table, f.name) for f in fields))
        .select_from(table)
        .where(participant_id.in_(keys))
    )
    found: dict[str, tuple[Any, ...]] = {}
    for row in conn.execute(stmt):
        key = str(python_value(row[0], id_field.data_type))
        found.setdefault(
            key,
            tuple(python_value(v, f.data_type) for v, f in zip(row[1:], fields, strict=True)),
        )
    return found
