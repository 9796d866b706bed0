"""What values the fields of an audience take: distinct values with counts, or min/max/NULLs.

This is what ``GET /v1/filters|metrics|strata`` shows. All fields are answered by one SQL
statement, a ``UNION ALL`` of

- one branch with ``MIN``, ``MAX`` and ``COUNT(*) - COUNT(col)`` of every numeric, date and
  timestamp field (a single scan), and
- per categorical field (string, boolean, UUID), its ``GROUP BY`` counts ordered by count and
  cut at ``limit + 1`` rows inside the warehouse (the extra row tells whether the list is
  complete), so only the top values travel.

Each branch puts its values in its own columns and NULL in the others', so every column keeps
its field's native type; PostgreSQL, DuckDB, SQLite and ClickHouse 18 all accept this shape
(ClickHouse 18 has no ``GROUPING SETS``; the benchmark ``bench/field_values.py`` shows the union
as fast as a hand-written grouping-sets query on DuckDB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from xngin.dwh import dialects
from xngin.dwh.columns import column_of, python_value
from xngin.dwh.engines import connect
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.errors import InvalidInput

__all__ = ["DistinctValues", "FieldValues", "ValueCount", "ValueRange", "field_values"]


@dataclass(frozen=True, slots=True)
class ValueCount:
    """A value of a categorical field (None for NULL) and how many participants have it."""

    value: Any
    count: int


@dataclass(frozen=True, slots=True)
class DistinctValues:
    """The most frequent values of a categorical field, most frequent first (ties by value).

    ``complete`` says whether every distinct value (NULL included) is listed.
    """

    distinct: tuple[ValueCount, ...]
    complete: bool


@dataclass(frozen=True, slots=True)
class ValueRange:
    """Smallest and largest value of a numeric, date or timestamp field, and its NULL count.

    ``min`` and ``max`` are None when every value is NULL (or the audience is empty).
    """

    min: Any
    max: Any
    null_count: int


FieldValues = DistinctValues | ValueRange

_RANGE_BRANCH = -1


def _sql_type(data_type: DataType) -> sa.types.TypeEngine[Any]:
    if data_type in (DataType.STRING, DataType.UUID):
        return sa.String()
    types: dict[DataType, sa.types.TypeEngine[Any]] = {
        DataType.BOOLEAN: sa.Boolean(),
        DataType.INTEGER: sa.BigInteger(),
        DataType.FLOAT: sa.Double(),
        DataType.DECIMAL: sa.Numeric(),
        DataType.DATE: sa.Date(),
        DataType.TIMESTAMP: sa.DateTime(),
    }
    return types[data_type]


def _sort_key(item: ValueCount) -> tuple[int, bool, Any]:
    return (-item.count, item.value is None, item.value if item.value is not None else 0)


def field_values(
    engine: sa.Engine,
    table: sa.TableClause,
    fields: Sequence[ColumnInfo],
    *,
    filters: sa.ColumnElement[bool] | None = None,
    limit: int = 1000,
) -> dict[str, FieldValues]:
    """Values of ``fields`` among the participants matching ``filters``, in one query.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource.
    table : sqlalchemy.TableClause
        The participant table (columns may be untyped; ``fields`` gives the types).
    fields : sequence of ColumnInfo
        Fields to describe. Strings, booleans and UUIDs get :class:`DistinctValues`; numbers,
        dates and timestamps get :class:`ValueRange`.
    filters : sqlalchemy.ColumnElement[bool], optional
        The audience, from :func:`xngin.dwh.filters.compile_filters` on the same ``table``;
        None means every row.
    limit : int, default 1000
        At most this many distinct values per categorical field (>= 1).

    Returns
    -------
    dict
        Field name to :class:`DistinctValues` or :class:`ValueRange`, in the order of ``fields``.

    Raises
    ------
    xngin.errors.InvalidInput
        ``field="limit"`` when ``limit`` is not a positive integer.
    xngin.errors.Unavailable
        When the warehouse cannot be reached.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}", field="limit")
    unique = list({f.name: f for f in fields}.values())
    categorical = [f for f in unique if f.data_type.is_categorical]
    ranged = [f for f in unique if not f.data_type.is_categorical]
    if not unique:
        return {}

    def where(stmt: sa.Select[Any]) -> sa.Select[Any]:
        return stmt if filters is None else stmt.where(filters)

    width = len(categorical)
    value_nulls = [dialects.typed_null(_sql_type(f.data_type)) for f in categorical]
    range_nulls = [
        null
        for f in ranged
        for null in (
            dialects.typed_null(_sql_type(f.data_type)),
            dialects.typed_null(_sql_type(f.data_type)),
            dialects.typed_null(sa.BigInteger()),
        )
    ]
    branches: list[sa.Select[Any]] = []
    if ranged:
        aggregates: list[sa.ColumnElement[Any]] = []
        for j, f in enumerate(ranged):
            col = column_of(table, f.name)
            aggregates += [
                sa.func.min(col).label(f"lo{j}"),
                sa.func.max(col).label(f"hi{j}"),
                (sa.func.count() - sa.func.count(col)).label(f"nulls{j}"),
            ]
        branches.append(
            where(
                sa.select(
                    sa.literal(_RANGE_BRANCH).label("k"),
                    *(value_nulls[i].label(f"v{i}") for i in range(width)),
                    sa.func.count().label("n"),
                    *aggregates,
                ).select_from(table)
            )
        )
    for i, f in enumerate(categorical):
        col = column_of(table, f.name)
        if f.data_type is DataType.UUID:
            col = dialects.as_text(col)  # one spelling whether the column is uuid or text
        elif f.data_type is DataType.STRING:
            col = dialects.union_text(col)
        counts = (
            where(
                sa.select(col.label("v"), sa.func.count().label("n"))
                .select_from(table)
                .group_by(col)
            )
            .order_by(sa.desc("n"), sa.nulls_last(col.asc()))
            .limit(limit + 1)
            .subquery(f"values{i}")
        )
        branches.append(
            sa.select(
                sa.literal(i).label("k"),
                *(counts.c.v if m == i else value_nulls[m] for m in range(width)),
                counts.c.n,
                *range_nulls,
            )
        )
    stmt: sa.Select[Any] | sa.CompoundSelect[Any] = (
        branches[0] if len(branches) == 1 else sa.union_all(*branches)
    )
    with connect(engine) as conn:
        rows = conn.execute(stmt).all()

    listed: dict[int, list[ValueCount]] = {i: [] for i in range(width)}
    result: dict[str, FieldValues] = {}
    for row in rows:
        k = int(row[0])
        if k == _RANGE_BRANCH:
            base = width + 2
            for j, f in enumerate(ranged):
                lo, hi, nulls = row[base + 3 * j : base + 3 * j + 3]
                result[f.name] = ValueRange(
                    min=python_value(lo, f.data_type),
                    max=python_value(hi, f.data_type),
                    null_count=int(nulls or 0),
                )
        else:
            f = categorical[k]
            listed[k].append(ValueCount(python_value(row[1 + k], f.data_type), int(row[width + 1])))
    for i, f in enumerate(categorical):
        items = sorted(listed[i], key=_sort_key)
        result[f.name] = DistinctValues(distinct=tuple(items[:limit]), complete=len(items) <= limit)
    return {f.name: result[f.name] for f in unique}
