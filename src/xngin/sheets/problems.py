"""Problems found in a sheet, and the one error that carries all of them.

Row numbers follow one convention everywhere: ``row`` is the 1-based number of the data row, the
header not counted. Row 1 is the first row under the header, which a spreadsheet shows as line 2.
When a sheet is read from CSV, blank rows count, so the number matches the spreadsheet's own line
number minus one; for a sheet sent as JSON it is the position in ``fields`` (1-based).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

from xngin.errors import InvalidInput


class Severity(enum.StrEnum):
    ERROR = "error"
    """The sheet cannot be used until this is fixed."""
    WARNING = "warning"
    """The sheet works, but probably not as its authors meant."""
    INFO = "info"
    """Nothing to fix; worth knowing (used by drift reports, never by validation)."""


@dataclass(frozen=True, slots=True)
class SheetProblem:
    """One thing wrong with a sheet.

    Attributes
    ----------
    row
        1-based data row (header not counted; see the module docstring), or None for a problem of
        the whole sheet, such as a missing unique ID or a missing header column.
    field
        The ``field_name`` of the row concerned, or the sheet column (e.g. ``"is_metric"``) when
        the problem is in the header; None when neither applies.
    message
        A sentence for the sheet's authors: what is wrong and what would be accepted.
    severity
        ``error`` blocks the sheet; ``warning`` is reported but accepted.
    code
        A stable machine-readable name of the kind of problem, e.g. ``unknown_column``.
    """

    row: int | None
    field: str | None
    message: str
    _: KW_ONLY
    severity: Severity = Severity.ERROR
    code: str = "invalid"

    def describe(self) -> str:
        """Return the problem as one line: severity, place and message."""
        place = []
        if self.row is not None:
            place.append(f"row {self.row}")
        if self.field is not None:
            place.append(f"field '{self.field}'")
        where = f" ({', '.join(place)})" if place else ""
        return f"{self.severity.value}{where}: {self.message}"


class SheetInvalid(InvalidInput):
    """A sheet has at least one error; ``problems`` lists every error and warning found.

    The message lists all problems, one per line, so a CLI user or an API client sees everything
    to fix in one go rather than one problem per attempt.
    """

    code = "invalid_sheet"

    def __init__(
        self,
        problems: Sequence[SheetProblem],
        *,
        source: str = "",
        field: str | None = "fields",
    ) -> None:
        self.problems: list[SheetProblem] = list(problems)
        self.source = source
        n_errors = sum(p.severity is Severity.ERROR for p in self.problems)
        n_warnings = len(self.problems) - n_errors
        origin = f" {source}" if source else ""
        counts = f"{n_errors} error{'s' if n_errors != 1 else ''}"
        if n_warnings:
            counts += f" and {n_warnings} warning{'s' if n_warnings != 1 else ''}"
        header = (
            f"The participant sheet{origin} has {counts} "
            "(rows are numbered from 1 = first row under the header):"
        )
        lines = [header, *(f"- {p.describe()}" for p in self.problems)]
        super().__init__("\n".join(lines), field=field)

    @property
    def errors(self) -> list[SheetProblem]:
        """The problems that block the sheet."""
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[SheetProblem]:
        """The problems reported but accepted."""
        return [p for p in self.problems if p.severity is Severity.WARNING]
