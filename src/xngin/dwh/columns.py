"""A participant table's columns going into queries and their values coming back out.

Query functions take the table as a ``sqlalchemy.TableClause`` whose columns may be untyped
(``sa.table(name, sa.column("age"), ...)``); the :class:`~xngin.dwh.schema.ColumnInfo` or
:class:`~xngin.dwh.schema.DataType` passed alongside says what a column holds. Drivers return
the same value in different Python types (SQLite: booleans as 0/1 and dates as text; PostgreSQL
and DuckDB: ``uuid.UUID``; ClickHouse: booleans as ``UInt8``), so results pass through
:func:`python_value` to look the same whatever the warehouse.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import sqlalchemy as sa

from xngin.dwh.schema import DataType

__all__ = ["column_of", "python_value"]


def column_of(table: sa.TableClause, name: str) -> sa.ColumnElement[Any]:
    """Column ``name`` of ``table``; an unqualified column when the clause does not declare it.

    An unqualified column still resolves against the single table each xngin query reads.
    """
    if name in table.c:
        return table.c[name]
    return sa.column(name)


def python_value(value: Any, data_type: DataType) -> Any:
    """One result value as xngin's Python type for ``data_type``.

    Parameters
    ----------
    value : Any
        As the driver returned it; None stays None.
    data_type : DataType
        What the column holds.

    Returns
    -------
    Any
        ``str`` for strings and UUIDs (canonical lowercase text), ``int``, ``float``,
        ``decimal.Decimal``, ``bool``, ``datetime.date`` or naive ``datetime.datetime``.
    """
    if value is None:
        return None
    if data_type is DataType.STRING:
        return value if isinstance(value, str) else str(value)
    if data_type is DataType.UUID:
        return str(value).lower()
    if data_type is DataType.BOOLEAN:
        return bool(value)
    if data_type is DataType.INTEGER:
        return int(value)
    if data_type is DataType.FLOAT:
        return float(value)
    if data_type is DataType.DECIMAL:
        if isinstance(value, decimal.Decimal):
            return value
        # SQLite stores NUMERIC as REAL; its shortest repr is the decimal that was written.
        return decimal.Decimal(repr(value) if isinstance(value, float) else str(value))
    if data_type is DataType.DATE:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str):
            return dt.date.fromisoformat(value[:10])
        return value
    if data_type is DataType.TIMESTAMP:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    return value  # pragma: no cover
