"""Audience filters: the user's ``{"field_name", "relation", "value"}`` list as one SQL condition.

Values arrive as JSON and leave as bound parameters, never as SQL text: whatever a value holds,
the compiled statement has the same shape. Every problem is an :class:`xngin.errors.InvalidInput`
whose ``field`` points into the request, e.g. ``filters[2].value``.

NULL semantics (SQL's three-valued logic made explicit):

============================  =====================================================
``includes [a, b]``           rows equal to a or b
``includes [a, null]``        rows equal to a, and rows where the field is NULL
``excludes [a]``              rows not equal to a, *including* rows where it is NULL
``excludes [a, null]``        rows not equal to a and not NULL
``between [lo, hi]``          ``lo <= field <= hi`` (NULL rows never match)
``between [lo, null]``        ``field >= lo``; ``between [null, hi]``: ``field <= hi``
============================  =====================================================
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from xngin.dwh import dialects
from xngin.dwh.columns import column_of
from xngin.dwh.schema import DataType
from xngin.errors import InvalidInput

__all__ = ["MAX_FILTER_VALUES", "AudienceFilter", "Relation", "compile_filters", "parameter_type"]

MAX_FILTER_VALUES = 10_000
_INT64 = (-(2**63), 2**63 - 1)


class Relation(enum.StrEnum):
    INCLUDES = "includes"
    EXCLUDES = "excludes"
    BETWEEN = "between"


@dataclass(frozen=True, slots=True)
class AudienceFilter:
    """One condition on the participant table.

    Parameters
    ----------
    field_name : str
        A field marked ``is_filter`` in the participant type's sheet.
    relation : Relation
        ``includes``, ``excludes`` or ``between``.
    value : list
        JSON values: strings, numbers, booleans, ISO dates/timestamps as strings, and ``None``
        (JSON null) for NULL. ``between`` takes ``[lower, upper]`` with at most one null.
    """

    field_name: str
    relation: Relation
    value: list[Any]


def parameter_type(data_type: DataType) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type that parameters compared with a column of ``data_type`` are bound as."""
    if data_type in (DataType.STRING, DataType.UUID):
        return dialects.ParameterText()
    types: dict[DataType, sa.types.TypeEngine[Any]] = {
        DataType.INTEGER: sa.BigInteger(),
        DataType.FLOAT: sa.Double(),
        DataType.DECIMAL: sa.Numeric(asdecimal=True),
        DataType.BOOLEAN: dialects.ParameterBoolean(),
        DataType.DATE: sa.Date(),
        DataType.TIMESTAMP: sa.DateTime(),
    }
    return types[data_type]


class _BadValue(ValueError):
    """A value that does not fit the field's type; the message says what would."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:45]}...({len(text)} chars)"


def _coerce(value: Any, data_type: DataType) -> Any:
    """The Python value to bind for one JSON ``value`` of a field of ``data_type``."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if data_type is DataType.STRING:
        if not isinstance(value, str):
            raise _BadValue("a string (quote numbers for text fields)")
        if "\x00" in value:
            raise _BadValue("a string without NUL characters")
        return value
    if data_type is DataType.UUID:
        if not isinstance(value, str):
            raise _BadValue("a UUID string such as '123e4567-e89b-12d3-a456-426614174000'")
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise _BadValue(
                "a UUID string such as '123e4567-e89b-12d3-a456-426614174000'"
            ) from None
    if data_type is DataType.BOOLEAN:
        if not isinstance(value, bool):
            raise _BadValue("true or false")
        return value
    if data_type is DataType.INTEGER:
        if isinstance(value, float) and is_number and value.is_integer():
            value = int(value)
        if not is_number or not isinstance(value, int):
            raise _BadValue("an integer (a JSON number without fraction)")
        if not _INT64[0] <= value <= _INT64[1]:
            raise _BadValue("an integer within the 64-bit range")
        return value
    if data_type in (DataType.FLOAT, DataType.DECIMAL):
        if not is_number or (isinstance(value, float) and not math.isfinite(value)):
            raise _BadValue("a finite JSON number")
        if data_type is DataType.FLOAT:
            return float(value)
        return decimal.Decimal(str(value))
    if data_type is DataType.DATE:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                if len(value) <= 10:
                    return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise _BadValue("an ISO date string such as '2024-01-31'")
    if data_type is DataType.TIMESTAMP:
        parsed: dt.datetime | None = value if isinstance(value, dt.datetime) else None
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                parsed = None
        if parsed is None:
            raise _BadValue("an ISO timestamp string such as '2024-01-31T12:00:00Z'")
        if parsed.tzinfo is not None:
            # Warehouse timestamps are compared as UTC wall-clock times.
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return parsed
    raise _BadValue(f"a value of a supported type, not {data_type}")  # pragma: no cover


def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _one_filter(
    table: sa.TableClause, item: Any, index: int, allowed: Mapping[str, DataType]
) -> sa.ColumnElement[bool]:
    path = f"filters[{index}]"
    name = _get(item, "field_name")
    if not isinstance(name, str) or name not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise InvalidInput(
            f"{path}.field_name {_show(name)} is not a filter field of this participant type; "
            f"filter fields: {listed}",
            field=f"{path}.field_name",
        )
    data_type = allowed[name]
    raw_relation = _get(item, "relation")
    try:
        relation = Relation(raw_relation)
    except ValueError:
        raise InvalidInput(
            f"{path}.relation {_show(raw_relation)} is not a relation; "
            f"use one of {', '.join(r.value for r in Relation)}",
            field=f"{path}.relation",
        ) from None
    values = _get(item, "value")
    field = f"{path}.value"
    if not isinstance(values, list | tuple):
        raise InvalidInput(
            f"{field} must be a list of values for field {name!r}, got {_show(values)}",
            field=field,
        )
    if not values:
        raise InvalidInput(
            f"{field} is empty; {relation.value} on field {name!r} needs at least one value",
            field=field,
        )
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidInput(
            f"{field} lists {len(values)} values for field {name!r}; "
            f"at most {MAX_FILTER_VALUES} are accepted",
            field=field,
        )
    if relation is Relation.BETWEEN:
        if data_type.is_categorical:
            raise InvalidInput(
                f"{path}.relation between does not apply to field {name!r} of type "
                f"{data_type.value}; use includes or excludes",
                field=f"{path}.relation",
            )
        if len(values) != 2:
            raise InvalidInput(
                f"{field} for between on field {name!r} must be [lower, upper] (use null for an "
                f"open end), got {len(values)} values",
                field=field,
            )
    coerced: list[Any] = []
    has_null = False
    for position, value in enumerate(values):
        if value is None:
            has_null = True
            coerced.append(None)
            continue
        try:
            coerced.append(_coerce(value, data_type))
        except _BadValue as exc:
            raise InvalidInput(
                f"{field}[{position}] {_show(value)} does not fit field {name!r} of type "
                f"{data_type.value}; expected {exc}",
                field=field,
            ) from None

    param_type = parameter_type(data_type)
    raw_column = column_of(table, name)
    column: sa.ColumnElement[Any] = (
        dialects.comparable(raw_column, param_type)
        if data_type is DataType.DECIMAL
        else sa.type_coerce(raw_column, param_type)
    )
    present = [v for v in coerced if v is not None]

    if relation is Relation.BETWEEN:
        lower, upper = coerced
        if lower is None and upper is None:
            raise InvalidInput(
                f"{field} for between on field {name!r} is [null, null]; give at least one bound",
                field=field,
            )
        if lower is not None and upper is not None:
            if lower > upper:
                raise InvalidInput(
                    f"{field} for between on field {name!r} has lower bound {_show(values[0])} "
                    f"above upper bound {_show(values[1])}",
                    field=field,
                )
            return column.between(lower, upper)
        bound: sa.ColumnElement[bool] = column >= lower if lower is not None else column <= upper
        return bound

    if relation is Relation.INCLUDES:
        if not present:
            return column.is_(None)
        if has_null:
            return sa.or_(column.in_(present), column.is_(None))
        return column.in_(present)

    # EXCLUDES: SQL's NOT IN is unknown for NULL rows, so NULL is kept or dropped explicitly.
    if not present:
        return column.is_not(None)
    if has_null:
        return sa.and_(column.not_in(present), column.is_not(None))
    return sa.or_(column.not_in(present), column.is_(None))


def compile_filters(
    table: sa.TableClause,
    filters: Sequence[AudienceFilter] | None,
    *,
    allowed: Mapping[str, DataType],
) -> sa.ColumnElement[bool]:
    """AND all audience filters into one WHERE condition on ``table``.

    Parameters
    ----------
    table : sqlalchemy.TableClause
        The participant table, the same object the query selects from.
    filters : sequence of AudienceFilter, optional
        The conditions, in request order (their index is used in error fields). Objects with
        ``field_name``, ``relation`` and ``value`` attributes, or mappings with those keys, are
        accepted too. None or empty means the whole table.
    allowed : mapping of str to DataType
        The fields that may be filtered on (the sheet's ``is_filter`` fields) and their types.

    Returns
    -------
    sqlalchemy.ColumnElement[bool]
        The condition (``true`` when there are no filters), with every value a bound parameter.

    Raises
    ------
    xngin.errors.InvalidInput
        With ``field`` ``filters[i].field_name``, ``filters[i].relation`` or ``filters[i].value``
        when a field is not a filter field, the relation is unknown or does not fit the field's
        type, or a value does not fit the field (see the module documentation for the rules).
    """
    clauses = [_one_filter(table, item, i, allowed) for i, item in enumerate(filters or ())]
    if not clauses:
        return sa.true()
    condition: sa.ColumnElement[bool] = sa.and_(*clauses)
    return condition
