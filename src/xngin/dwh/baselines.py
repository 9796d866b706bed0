r"""Baseline mean and spread of metrics over an audience, for power analysis.

One statement returns, per metric, the row count, the non-NULL count and the sums of the
deviations from a shift ``K`` and of their squares, all in double precision, where ``K`` is the
metric's mean over the same audience, computed by a subquery cross-joined once into the scan:

.. math::

    \bar x = K + \frac{S_1}{n}, \qquad
    s^2 = \frac{S_2 - S_1^2 / n}{n - 1}, \qquad
    S_1 = \sum (x_i - K), \quad S_2 = \sum (x_i - K)^2.

With ``K`` the mean this is the two-pass algorithm, with ``S_1`` as its correction term ("corrected
two-pass algorithm", Chan, Golub & LeVeque 1983, "Algorithms for computing the sample variance:
analysis and recommendations", The American Statistician 37(3)). The one-pass textbook
formula ``(sum(x^2) - sum(x)^2/n) / (n-1)`` loses all precision when the mean is large against the
spread (amounts around 1e9 varying by cents): both sums agree in almost every digit and their
difference is rounding noise, possibly negative. Here the sums are of the order of the spread.
Rounding can still leave a tiny negative variance for constant data; it is reported as 0.

The price is a second scan of the audience (the mean), in the same round trip. It is portable SQL:
SQLite has no ``stddev`` aggregate. Booleans count as 0/1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from xngin.dwh import dialects
from xngin.dwh.columns import column_of
from xngin.dwh.engines import connect
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.errors import InvalidInput

__all__ = ["MetricBaseline", "metric_baselines"]


@dataclass(frozen=True, slots=True)
class MetricBaseline:
    """A metric's distribution over the audience.

    Attributes
    ----------
    field_name : str
        The metric.
    available_n : int
        Participants in the audience (rows matching the filters).
    available_nonnull_n : int
        Of those, participants with a non-NULL value.
    mean : float or None
        Mean of the non-NULL values (share of true for booleans); None when there are none.
    stddev : float or None
        Sample standard deviation (divisor n - 1) of the non-NULL values; None below 2 values.
    """

    field_name: str
    available_n: int
    available_nonnull_n: int
    mean: float | None
    stddev: float | None


def _as_number(col: sa.ColumnElement[Any], data_type: DataType) -> sa.ColumnElement[float]:
    if data_type is DataType.BOOLEAN:
        flag = sa.type_coerce(col, sa.Boolean())
        return sa.case((col.is_(None), sa.null()), (flag, 1.0), else_=0.0)
    return dialects.as_double(col)


def metric_baselines(
    engine: sa.Engine,
    table: sa.TableClause,
    metrics: Sequence[ColumnInfo],
    *,
    filters: sa.ColumnElement[bool] | None = None,
) -> dict[str, MetricBaseline]:
    """Mean, sample standard deviation and counts of every metric over the audience, in one query.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The datasource.
    table : sqlalchemy.TableClause
        The participant table.
    metrics : sequence of ColumnInfo
        Numeric or boolean fields.
    filters : sqlalchemy.ColumnElement[bool], optional
        The audience from :func:`xngin.dwh.filters.compile_filters` on the same ``table``.

    Returns
    -------
    dict
        Metric name to :class:`MetricBaseline`, in the order given.

    Raises
    ------
    xngin.errors.InvalidInput
        ``field="metrics"`` when a metric is not numeric or boolean.
    xngin.errors.Unavailable
        When the warehouse cannot be reached.
    """
    unique = list({m.name: m for m in metrics}.values())
    for m in unique:
        if not m.data_type.can_be_metric:
            raise InvalidInput(
                f"metric {m.name!r} is of type {m.data_type.value}; metrics must be numeric "
                "(integer, float, decimal) or boolean",
                field="metrics",
            )
    if not unique:
        return {}

    def audience(stmt: sa.Select[Any]) -> sa.Select[Any]:
        return stmt if filters is None else stmt.where(filters)

    values = [_as_number(column_of(table, m.name), m.data_type) for m in unique]
    shifts = audience(
        sa.select(*(sa.func.avg(x).label(f"k{j}") for j, x in enumerate(values))).select_from(table)
    ).subquery("shifts")
    selects: list[sa.ColumnElement[Any]] = [sa.func.count().label("n")]
    for j, x in enumerate(values):
        shift = shifts.c[f"k{j}"]
        d = x - shift
        selects += [
            sa.func.count(x).label(f"nn{j}"),
            # one value per statement; max() only satisfies the no-GROUP-BY aggregate rule.
            # (Labels differ from the subquery's column names: ClickHouse aliases are global.)
            sa.func.max(shift).label(f"shift{j}"),
            sa.func.sum(d).label(f"s1_{j}"),
            sa.func.sum(d * d).label(f"s2_{j}"),
        ]
    stmt = audience(sa.select(*selects).select_from(dialects.cross_join(table, shifts)))
    with connect(engine) as conn:
        row = conn.execute(stmt).one()

    total = int(row[0])
    result = {}
    for j, m in enumerate(unique):
        nonnull, shift_value, s1, s2 = row[1 + 4 * j : 5 + 4 * j]
        n = int(nonnull or 0)
        mean: float | None = None
        stddev: float | None = None
        if n > 0:
            s1f = float(s1 or 0.0)
            mean = float(shift_value or 0.0) + s1f / n
            if n > 1:
                variance = (float(s2 or 0.0) - s1f * s1f / n) / (n - 1)
                stddev = math.sqrt(max(variance, 0.0))
        result[m.name] = MetricBaseline(
            field_name=m.name,
            available_n=total,
            available_nonnull_n=n,
            mean=mean,
            stddev=stddev,
        )
    return result
