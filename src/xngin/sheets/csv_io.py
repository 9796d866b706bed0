"""Write a sheet as CSV and read it back, forgiving the ways spreadsheets save CSV.

Writing is plain: UTF-8, comma-separated, a header of :data:`SHEET_COLUMNS`, flags as ``TRUE`` /
``FALSE`` (what Google Sheets and Excel show for booleans).

Reading accepts what people and spreadsheet programs produce:

- a UTF-8 byte-order mark, header names in any case with spaces or hyphens for underscores
  (``Field Name``), ``;`` or tab separators (Excel in many locales, pasted tables);
- flags written as TRUE/FALSE, true/false, T/F, yes/no, Y/N, 1/0, on/off, x or a check mark,
  with an empty cell meaning no;
- surrounding spaces in any cell (they are removed), blank rows (skipped but counted, so row
  numbers still match the spreadsheet), missing trailing cells (empty);
- ``data_type`` in any case, and the aliases int, bool, str, text, double and datetime;
- columns it does not know (ignored; ``description`` and ``extra`` may be absent).

Every unreadable cell is reported at once, with its row: row 1 is the first row under the header.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xngin.dwh.schema import DataType, TableSchema
from xngin.sheets.model import SHEET_COLUMNS, STRATA_MAX_DISTINCT, ParticipantSheet, SheetRow
from xngin.sheets.problems import Severity, SheetInvalid, SheetProblem
from xngin.sheets.validate import raise_for_errors, validate_numbered_rows

#: Header columns a sheet must have; description and extra may be missing.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    c for c in SHEET_COLUMNS if c not in {"description", "extra"}
)

_FLAG_COLUMNS = ("is_unique_id", "is_filter", "is_metric", "is_strata")
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on", "x", "\u2713", "\u2714"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off", ""})
_DATA_TYPE_ALIASES = {
    "int": DataType.INTEGER,
    "bool": DataType.BOOLEAN,
    "str": DataType.STRING,
    "text": DataType.STRING,
    "double": DataType.FLOAT,
    "datetime": DataType.TIMESTAMP,
}
_ACCEPTED_TYPES = ", ".join(t.value for t in DataType)


@dataclass(frozen=True, slots=True)
class ParsedSheet:
    """What could be read from a CSV sheet, before checking it against a table.

    Attributes
    ----------
    sheet
        The rows that were fully readable, in sheet order.
    row_numbers
        The data-row number (1 = first row under the header, blank rows counted) of each row of
        ``sheet.fields``.
    problems
        Every cell that could not be read; a row with such a cell is left out of ``sheet``.
    """

    sheet: ParticipantSheet
    row_numbers: tuple[int, ...]
    problems: tuple[SheetProblem, ...]


@dataclass(frozen=True, slots=True)
class CheckedSheet:
    """A sheet that was read and found free of errors, with the warnings to show its authors."""

    sheet: ParticipantSheet
    warnings: tuple[SheetProblem, ...]


def write_sheet_csv(sheet: ParticipantSheet) -> str:
    """Return ``sheet`` as CSV text (header included, ``\\r\\n`` line ends as in RFC 4180)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SHEET_COLUMNS)
    for row in sheet.fields:
        writer.writerow(
            [
                row.field_name,
                row.data_type.value,
                row.description,
                *("TRUE" if getattr(row, flag) else "FALSE" for flag in _FLAG_COLUMNS),
                row.extra,
            ]
        )
    return buffer.getvalue()


def write_sheet_file(sheet: ParticipantSheet, path: str | Path) -> None:
    """Write ``sheet`` to the CSV file ``path`` (UTF-8, replaced if it exists)."""
    Path(path).write_text(write_sheet_csv(sheet), encoding="utf-8", newline="")


def parse_sheet_csv(text: str, *, source: str = "") -> ParsedSheet:
    """Read every row of a CSV sheet that can be read, and list the cells that cannot.

    Parameters
    ----------
    text
        The CSV text, possibly starting with a byte-order mark.
    source
        Where the text came from (path or URL), named in a header error; may be empty.

    Returns
    -------
    ParsedSheet
        The readable rows with their row numbers, and one problem per unreadable cell.

    Raises
    ------
    SheetInvalid
        When the header itself is unusable (empty sheet, a required column missing or repeated),
        since no row can be read then.
    """
    text = text.removeprefix("\ufeff")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=_guess_delimiter(text)))
    header_index = next((i for i, r in enumerate(records) if not _is_blank(r)), None)
    if header_index is None:
        raise SheetInvalid(
            [
                SheetProblem(
                    None,
                    None,
                    "the sheet is empty; expected a header row: " + ", ".join(SHEET_COLUMNS),
                    code="empty_sheet",
                )
            ],
            source=source,
        )
    positions = _read_header(records[header_index], source=source)

    fields: list[SheetRow] = []
    numbers: list[int] = []
    problems: list[SheetProblem] = []
    for number, record in enumerate(records[header_index + 1 :], start=1):
        cells = {
            column: record[index].strip() if index < len(record) else ""
            for column, index in positions.items()
        }
        if not any(cells.values()):
            continue
        row, row_problems = _read_row(number, cells)
        problems.extend(row_problems)
        if row is not None:
            fields.append(row)
            numbers.append(number)
    return ParsedSheet(ParticipantSheet(fields=tuple(fields)), tuple(numbers), tuple(problems))


def read_sheet_csv(text: str, *, source: str = "") -> ParticipantSheet:
    """Read a CSV sheet without checking it against a table.

    Parameters
    ----------
    text
        The CSV text.
    source
        Where the text came from (path or URL), named in the error message; may be empty.

    Raises
    ------
    SheetInvalid
        With every unreadable cell, when there is at least one.
    """
    parsed = parse_sheet_csv(text, source=source)
    raise_for_errors(parsed.problems, source=source)
    return parsed.sheet


def load_sheet_csv(
    text: str,
    schema: TableSchema,
    *,
    distinct_counts: Mapping[str, int] | None = None,
    strata_max_distinct: int = STRATA_MAX_DISTINCT,
    source: str = "",
) -> CheckedSheet:
    """Read a CSV sheet and check it against ``schema``, reporting all problems together.

    Unreadable cells and validation problems (see :func:`xngin.sheets.validate_sheet`) are
    reported in one :class:`SheetInvalid`, numbered by CSV data row (blank rows counted).

    Parameters
    ----------
    text
        The CSV text.
    schema
        The participant table as introspected now.
    distinct_counts, strata_max_distinct
        As for :func:`xngin.sheets.validate_sheet`.
    source
        Where the text came from (path or URL), named in the error message; may be empty.

    Returns
    -------
    CheckedSheet
        The sheet and its warnings.

    Raises
    ------
    SheetInvalid
        When any cell is unreadable or the sheet has a validation error.
    """
    parsed = parse_sheet_csv(text, source=source)
    problems = list(parsed.problems)
    problems += validate_numbered_rows(
        list(zip(parsed.row_numbers, parsed.sheet.fields, strict=True)),
        schema,
        distinct_counts=distinct_counts,
        strata_max_distinct=strata_max_distinct,
        complete=not parsed.problems,
    )
    problems.sort(key=lambda p: (p.row is None, p.row or 0))
    raise_for_errors(problems, source=source)
    return CheckedSheet(parsed.sheet, tuple(problems))


def parse_flag(value: str) -> bool | None:
    """Read a yes/no cell; return None when the text is not a recognised yes/no value."""
    word = value.strip().casefold()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def parse_data_type(value: str) -> DataType | None:
    """Read a data_type cell (any case, or an alias); return None when it names no type."""
    word = value.strip().casefold()
    if word in _DATA_TYPE_ALIASES:
        return _DATA_TYPE_ALIASES[word]
    try:
        return DataType(word)
    except ValueError:
        return None


def _read_header(header: Sequence[str], *, source: str) -> dict[str, int]:
    positions: dict[str, int] = {}
    problems = []
    for index, name in enumerate(header):
        column = _normalize_header(name)
        if column not in SHEET_COLUMNS:
            continue
        if column in positions:
            problems.append(
                SheetProblem(
                    None,
                    column,
                    f"the header has column '{column}' twice (columns {positions[column] + 1} "
                    f"and {index + 1}); keep one",
                    code="duplicate_header",
                )
            )
        else:
            positions[column] = index
    found = ", ".join(repr(h) for h in header)
    for column in REQUIRED_COLUMNS:
        if column not in positions:
            problems.append(
                SheetProblem(
                    None,
                    column,
                    f"the header has no '{column}' column (found: {found}); the header must "
                    f"name {', '.join(REQUIRED_COLUMNS)}",
                    code="missing_header",
                )
            )
    if problems:
        raise SheetInvalid(problems, source=source)
    return positions


def _read_row(number: int, cells: Mapping[str, str]) -> tuple[SheetRow | None, list[SheetProblem]]:
    name = cells["field_name"]
    label = name or None
    problems = []
    if not name:
        problems.append(
            _cell_problem(number, None, "field_name is empty; name the table column", "empty_name")
        )
    data_type = parse_data_type(cells["data_type"])
    if data_type is None:
        problems.append(
            _cell_problem(
                number,
                label,
                f"data_type '{cells['data_type']}' is not a type xngin knows; write one of "
                f"{_ACCEPTED_TYPES}",
                "bad_data_type",
            )
        )
    flags: dict[str, bool] = {}
    for column in _FLAG_COLUMNS:
        flag = parse_flag(cells[column])
        if flag is None:
            problems.append(
                _cell_problem(
                    number,
                    label,
                    f"{column} '{cells[column]}' is not a yes/no value; write TRUE or FALSE "
                    "(also read: yes/no, 1/0, x or empty for no)",
                    "bad_flag",
                )
            )
        else:
            flags[column] = flag
    if problems or data_type is None:
        return None, problems
    row = SheetRow(
        field_name=name,
        data_type=data_type,
        description=cells.get("description", ""),
        extra=cells.get("extra", ""),
        **flags,
    )
    return row, []


def _cell_problem(row: int, field: str | None, message: str, code: str) -> SheetProblem:
    return SheetProblem(row, field, message, severity=Severity.ERROR, code=code)


def _normalize_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip("\ufeff").strip().casefold())


def _is_blank(record: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in record)


def _guess_delimiter(text: str) -> str:
    # The header line decides: whichever separator splits it into the most sheet column names.
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    best, best_hits = ",", 0
    for delimiter in (",", ";", "\t"):
        names = next(csv.reader([first_line], delimiter=delimiter), [])
        hits = sum(_normalize_header(n) in SHEET_COLUMNS for n in names)
        if hits > best_hits:
            best, best_hits = delimiter, hits
    return best
