"""Check a sheet against the participant table it describes, reporting every problem at once.

Errors make the sheet unusable (a column the table lacks, a wrong type, a text metric, no or two
unique IDs, a column described twice, a unique ID used as metric or stratum). Warnings flag what
works but is probably unintended:

- a nullable unique-ID column: many warehouses (views, ClickHouse, BigQuery ``NULLABLE``, DuckDB
  without constraints) report every column as nullable, so refusing it would refuse most sheets;
  participants whose ID is NULL can be neither assigned nor looked up;
- a stratum on a float/decimal column (continuous values must be binned before stratifying);
- a stratum with more distinct values than ``strata_max_distinct`` (strata become tiny).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xngin.dwh.schema import DataType, TableSchema, declared_type_fits
from xngin.sheets.bootstrap import guess_unique_id
from xngin.sheets.model import STRATA_MAX_DISTINCT, ParticipantSheet, SheetRow
from xngin.sheets.problems import Severity, SheetInvalid, SheetProblem

_CONTINUOUS = (DataType.FLOAT, DataType.DECIMAL)
_METRIC_TYPES = ", ".join(t.value for t in DataType if t.can_be_metric)


def validate_sheet(
    sheet: ParticipantSheet,
    schema: TableSchema,
    *,
    distinct_counts: Mapping[str, int] | None = None,
    strata_max_distinct: int = STRATA_MAX_DISTINCT,
) -> list[SheetProblem]:
    """List every error and warning of ``sheet`` against the table ``schema``.

    Parameters
    ----------
    sheet
        The sheet to check. Row numbers in the problems are positions in ``sheet.fields``,
        counting from 1.
    schema
        The participant table as introspected now.
    distinct_counts
        Optional number of distinct values per column name (from the warehouse); enables the
        high-cardinality check on strata. Columns missing from the mapping are not checked.
    strata_max_distinct
        Strata with more distinct values than this (>= 1) are flagged with a warning.

    Returns
    -------
    list of SheetProblem
        Row problems in row order, then problems of the whole sheet; empty when all is well.
    """
    numbered = list(enumerate(sheet.fields, start=1))
    return validate_numbered_rows(
        numbered,
        schema,
        distinct_counts=distinct_counts,
        strata_max_distinct=strata_max_distinct,
    )


def check_sheet(
    sheet: ParticipantSheet,
    schema: TableSchema,
    *,
    distinct_counts: Mapping[str, int] | None = None,
    strata_max_distinct: int = STRATA_MAX_DISTINCT,
    source: str = "",
) -> list[SheetProblem]:
    """Validate ``sheet`` and raise if it has any error; return its warnings otherwise.

    Parameters are those of :func:`validate_sheet`; ``source`` (a file path or URL, may be empty)
    is named in the error message.

    Returns
    -------
    list of SheetProblem
        The warnings, for the caller to show; empty when the sheet is clean.

    Raises
    ------
    SheetInvalid
        When at least one error is found; its ``problems`` hold all errors and warnings.
    """
    problems = validate_sheet(
        sheet,
        schema,
        distinct_counts=distinct_counts,
        strata_max_distinct=strata_max_distinct,
    )
    raise_for_errors(problems, source=source)
    return problems


def raise_for_errors(problems: Sequence[SheetProblem], *, source: str = "") -> None:
    """Raise :class:`SheetInvalid` with all ``problems`` when at least one is an error."""
    if any(p.severity is Severity.ERROR for p in problems):
        raise SheetInvalid(problems, source=source)


def validate_numbered_rows(
    rows: Sequence[tuple[int, SheetRow]],
    schema: TableSchema,
    *,
    distinct_counts: Mapping[str, int] | None = None,
    strata_max_distinct: int = STRATA_MAX_DISTINCT,
    complete: bool = True,
) -> list[SheetProblem]:
    """Validate rows that carry their own row numbers (e.g. CSV rows, where blank rows count).

    ``complete=False`` says some rows of the sheet could not be read at all; the whole-sheet check
    for a missing unique ID is then skipped, since the unreadable row may have been the one.
    Otherwise as :func:`validate_sheet`.
    """
    if strata_max_distinct < 1:
        raise ValueError(f"strata_max_distinct must be >= 1, got {strata_max_distinct}")
    counts = distinct_counts or {}
    problems: list[SheetProblem] = []
    first_row_of: dict[str, int] = {}
    unique_id_rows: list[tuple[int, SheetRow]] = []

    for number, row in rows:
        name = row.field_name
        if name in first_row_of:
            problems.append(
                _error(
                    number,
                    name,
                    f"'{name}' is already described on row {first_row_of[name]}; "
                    "keep one row per column",
                    "duplicate_field",
                )
            )
        else:
            first_row_of[name] = number
        problems.extend(_column_problems(number, row, schema))
        column = schema.column(name)
        # Judge uses by the table's type when the column exists: a wrong data_type cell is already
        # reported above and should not also produce a misleading metric or strata message.
        data_type = column.data_type if column is not None else row.data_type
        if row.is_metric and not data_type.can_be_metric:
            problems.append(
                _error(
                    number,
                    name,
                    f"is_metric is set on a {data_type.value} column; metrics must be one of "
                    f"{_METRIC_TYPES}; clear is_metric or choose another column",
                    "metric_not_numeric",
                )
            )
        if row.is_unique_id:
            unique_id_rows.append((number, row))
            problems.extend(_unique_id_problems(number, row, data_type, schema))
        elif row.is_strata:
            problems.extend(
                _strata_problems(number, row, data_type, counts.get(name), strata_max_distinct)
            )

    for number, row in unique_id_rows[1:]:
        first_number, first = unique_id_rows[0]
        problems.append(
            _error(
                number,
                row.field_name,
                f"is_unique_id is also set on row {first_number} ('{first.field_name}'); "
                "mark exactly one column as the unique ID",
                "multiple_unique_ids",
            )
        )
    problems.sort(key=lambda p: (p.row is None, p.row or 0))
    if not unique_id_rows and complete:
        hint = _unique_id_hint(schema)
        problems.append(
            _error(
                None,
                None,
                "no row sets is_unique_id; mark the one column that identifies a participant"
                + hint,
                "no_unique_id",
            )
        )
    return problems


def _column_problems(number: int, row: SheetRow, schema: TableSchema) -> list[SheetProblem]:
    name = row.field_name
    column = schema.column(name)
    if column is None:
        return [
            _error(
                number,
                name,
                f"'{name}' is not a column of table '{schema.table_name}'; "
                + _spelling_hint(name, schema),
                "unknown_column",
            )
        ]
    if not declared_type_fits(row.data_type, column.data_type):
        return [
            _error(
                number,
                name,
                f"data_type is '{row.data_type.value}' but the table's column is "
                f"'{column.data_type.value}'; write '{column.data_type.value}'",
                "type_mismatch",
            )
        ]
    return []


def _unique_id_problems(
    number: int, row: SheetRow, data_type: DataType, schema: TableSchema
) -> list[SheetProblem]:
    name = row.field_name
    problems = []
    if row.is_metric:
        problems.append(
            _error(
                number,
                name,
                "the unique ID cannot also be a metric; clear is_metric",
                "unique_id_metric",
            )
        )
    if row.is_strata:
        problems.append(
            _error(
                number,
                name,
                "the unique ID cannot be a stratum (every participant would be a stratum of "
                "one); clear is_strata",
                "unique_id_strata",
            )
        )
    if data_type is DataType.BOOLEAN:
        problems.append(
            _error(
                number,
                name,
                "a boolean column cannot identify participants; choose a string, integer or "
                "uuid column",
                "unique_id_type",
            )
        )
    column = schema.column(name)
    if column is not None and column.nullable:
        problems.append(
            _warning(
                number,
                name,
                "the unique-ID column is nullable; participants whose ID is NULL cannot be "
                "assigned or looked up (declare it NOT NULL if the warehouse allows)",
                "unique_id_nullable",
            )
        )
    return problems


def _strata_problems(
    number: int,
    row: SheetRow,
    data_type: DataType,
    distinct: int | None,
    strata_max_distinct: int,
) -> list[SheetProblem]:
    name = row.field_name
    if data_type in _CONTINUOUS:
        return [
            _warning(
                number,
                name,
                f"is_strata is set on a {data_type.value} column; continuous values must be "
                "binned before they can form strata; prefer a column of categories",
                "strata_continuous",
            )
        ]
    if distinct is not None and distinct > strata_max_distinct:
        return [
            _warning(
                number,
                name,
                f"is_strata is set on a column with {distinct} distinct values (more than "
                f"{strata_max_distinct}); strata this many are tiny and make balance worse",
                "strata_high_cardinality",
            )
        ]
    return []


def _spelling_hint(name: str, schema: TableSchema) -> str:
    folded = name.casefold()
    for column in schema.columns:
        if column.name.casefold() == folded:
            return f"did you mean '{column.name}'?"
    names = [c.name for c in schema.columns]
    shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    return f"the table's columns are: {shown}"


def _unique_id_hint(schema: TableSchema) -> str:
    guess = guess_unique_id(schema)
    return f" (perhaps '{guess}')" if guess is not None else ""


def _error(row: int | None, field: str | None, message: str, code: str) -> SheetProblem:
    return SheetProblem(row, field, message, severity=Severity.ERROR, code=code)


def _warning(row: int | None, field: str | None, message: str, code: str) -> SheetProblem:
    return SheetProblem(row, field, message, severity=Severity.WARNING, code=code)
