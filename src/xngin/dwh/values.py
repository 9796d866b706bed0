"""What values the fields of an audience take: distinct values with counts, min/max/NULLs, bins.

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

:func:`field_histograms` then counts the numeric, date and timestamp fields in equal-width bins
between the min and max found above, also in one statement (a ``GROUP BY`` per field on its bin
number, united with ``UNION ALL``), so only ``bins`` rows per field travel.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from xngin.dwh import dialects
from xngin.dwh.columns import column_of, python_value
from xngin.dwh.engines import connect
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.errors import InvalidInput

__all__ = [
    "DistinctValues",
    "FieldValues",
    "Histogram",
    "ValueCount",
    "ValueRange",
    "field_histograms",
    "field_values",
    "histogram_scale",
]


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


# --- histograms ---------------------------------------------------------------------------------

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1)
_NUMERIC = (DataType.INTEGER, DataType.FLOAT, DataType.DECIMAL)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Participants per equal-width bin of a numeric, date or timestamp field (NULLs left out).

    ``edges`` has one more entry than ``counts``: bin ``i`` holds the values ``v`` with
    ``edges[i] <= v < edges[i + 1]``, the last bin also its upper edge (``numpy.histogram``'s
    convention). Dates are on the scale of days since 1970-01-01 and timestamps of seconds since
    1970-01-01 00:00 (naive timestamps read as UTC); see :func:`histogram_scale`.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]


def histogram_scale(value: Any, data_type: DataType) -> float:
    """A field value as the number its histogram bins it by.

    Parameters
    ----------
    value : int, float, decimal.Decimal, datetime.date or datetime.datetime
        A value as :func:`field_values` returns it (not None).
    data_type : DataType
        The field's type: a number, date or timestamp.

    Returns
    -------
    float
        Numbers as floats, dates as days since 1970-01-01, timestamps as seconds since
        1970-01-01 00:00 (naive, read as UTC).
    """
    if data_type is DataType.TIMESTAMP:
        return float((value - _EPOCH).total_seconds())
    if data_type is DataType.DATE:
        return float((value - _EPOCH_DATE).days)
    return float(value)


def _binned_number(col: sa.ColumnElement[Any], data_type: DataType) -> sa.ColumnElement[float]:
    if data_type is DataType.DATE:
        return dialects.epoch_number(col, "days")
    if data_type is DataType.TIMESTAMP:
        return dialects.epoch_number(col, "seconds")
    return dialects.as_double(col)


def _double(value: float) -> sa.ColumnElement[float]:
    return sa.literal(value, sa.Double())


def _edges(lo: float, hi: float, bins: int) -> tuple[float, ...]:
    # The arithmetic of numpy.linspace (start + i * step, the last edge set to stop), so the
    # edges the SQL compares with are bit for bit the ones numpy.histogram uses.
    step = (hi - lo) / bins
    return (*(lo + i * step for i in range(bins)), hi)


def _check_bins(bins: object) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1000:
        raise InvalidInput(f"bins must be an integer from 1 to 1000, got {bins!r}", field="bins")
    return bins


def field_histograms(
    engine: sa.Engine,
    table: sa.TableClause,
    fields: Sequence[ColumnInfo],
    *,
    ranges: Mapping[str, ValueRange],
    bins: int = 20,
    filters: sa.ColumnElement[bool] | None = None,
) -> dict[str, Histogram]:
    """Equal-width histograms of numeric, date and timestamp ``fields``, counted in one query.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource.
    table : sqlalchemy.TableClause
        The participant table (columns may be untyped; ``fields`` gives the types).
    fields : sequence of ColumnInfo
        Fields to bin; categorical fields (strings, booleans, UUIDs) are skipped.
    ranges : mapping of str to ValueRange
        Each field's min and max over the same audience, from :func:`field_values`. Fields
        missing here, or whose values are all NULL, are left out of the result.
    bins : int, default 20
        Number of bins (1 to 1000). A field whose min equals its max gets one bin
        ``[min, max]`` holding every non-NULL value.
    filters : sqlalchemy.ColumnElement[bool], optional
        The audience, as for :func:`field_values`; None means every row.

    Returns
    -------
    dict of str to Histogram
        In the order of ``fields``. Bin ``i`` of ``bins`` covers ``[edges[i], edges[i + 1])``
        and the last bin includes the max, with ``edges`` as ``numpy.linspace(min, max,
        bins + 1)``: the counts equal ``numpy.histogram(values, bins, range=(min, max))``.
        NULLs are not counted, nor values outside ``[min, max]`` (possible only when
        ``ranges`` came from another audience or the table changed since).

    Raises
    ------
    xngin.errors.InvalidInput
        ``field="bins"`` when ``bins`` is not an integer from 1 to 1000.
    xngin.errors.Unavailable
        When the warehouse cannot be reached.

    Notes
    -----
    The bin of ``v`` is first estimated as ``floor((v - min) / (max - min) * bins)`` and then
    moved by one where a rounding error put it past an edge, the same two steps as numpy's
    ``histogram``; every warehouse computes in IEEE doubles, so they agree with numpy exactly.
    """
    bins = _check_bins(bins)
    unique = list({f.name: f for f in fields}.values())
    plans: list[tuple[ColumnInfo, tuple[float, ...]]] = []
    for f in unique:
        rng = ranges.get(f.name)
        if f.data_type not in (*_NUMERIC, DataType.DATE, DataType.TIMESTAMP):
            continue
        if rng is None or rng.min is None or rng.max is None:
            continue
        lo, hi = histogram_scale(rng.min, f.data_type), histogram_scale(rng.max, f.data_type)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            continue
        plans.append((f, _edges(lo, hi, bins) if hi > lo else (lo, hi)))
    if not plans:
        return {}

    branches: list[sa.Select[Any]] = []
    for k, (f, edges) in enumerate(plans):
        n = len(edges) - 1
        lo, hi = edges[0], edges[-1]
        x = _binned_number(column_of(table, f.name), f.data_type).label("x")
        if n == 1:
            guess: sa.ColumnElement[Any] = _double(0.0)
        else:
            span = _double(hi - lo)
            raw = sa.func.floor((x - _double(lo)) / span * float(n))
            # Only the max itself lands on n; clamp it into the last, closed bin.
            guess = sa.case((raw >= n, float(n - 1)), else_=raw)
        inner = sa.select(x, guess.label("guess")).select_from(table)
        inner = inner.where(x >= _double(lo), x <= _double(hi))
        if filters is not None:
            inner = inner.where(filters)
        sub = inner.subquery(f"binned{k}")
        if n == 1:
            bin_no: sa.ColumnElement[Any] = sub.c.guess
        else:
            step = _double((hi - lo) / n)
            start = _double(lo)
            bin_no = sa.case(
                (sa.and_(sub.c.guess > 0, sub.c.x < start + sub.c.guess * step), sub.c.guess - 1),
                (
                    sa.and_(sub.c.guess < n - 1, sub.c.x >= start + (sub.c.guess + 1) * step),
                    sub.c.guess + 1,
                ),
                else_=sub.c.guess,
            )
        branches.append(
            sa.select(
                sa.literal(k).label("k"), bin_no.label("b"), sa.func.count().label("n")
            ).group_by(bin_no)
        )
    stmt: sa.Select[Any] | sa.CompoundSelect[Any] = (
        branches[0] if len(branches) == 1 else sa.union_all(*branches)
    )
    with connect(engine) as conn:
        rows = conn.execute(stmt).all()

    counts = [[0] * (len(edges) - 1) for _, edges in plans]
    for k, b, count in rows:
        counts[int(k)][int(b)] += int(count)
    return {
        f.name: Histogram(edges=edges, counts=tuple(counts[k]))
        for k, (f, edges) in enumerate(plans)
    }
