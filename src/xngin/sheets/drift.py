"""Compare a saved sheet with the participant table as it is now.

Tables change after a sheet is written: columns are dropped, retyped or added. Drift is reported,
not raised, so that ``GET /v1/participant-types/{name}`` can show it next to the sheet. A change
to a column the sheet uses (marked as unique ID, filter, metric or stratum) is an ``error``: the
experiments that rely on it will fail. A change to a column the sheet only describes is a
``warning``; a new column is ``info``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xngin.dwh.schema import DataType, TableSchema, declared_type_fits
from xngin.sheets.model import ParticipantSheet, SheetRow
from xngin.sheets.problems import Severity


class DriftKind(enum.StrEnum):
    COLUMN_DROPPED = "column_dropped"
    TYPE_CHANGED = "type_changed"
    COLUMN_ADDED = "column_added"


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between a sheet and its table.

    Attributes
    ----------
    kind
        What changed.
    field_name
        The column concerned.
    severity
        ``error`` (a used column broke), ``warning`` (an unused column changed) or ``info``
        (a new column).
    message
        A sentence for the sheet's authors saying what to do.
    sheet_type, table_type
        The type in the sheet and in the table; None where the column is absent.
    """

    kind: DriftKind
    field_name: str
    severity: Severity
    message: str
    sheet_type: DataType | None = None
    table_type: DataType | None = None


def detect_drift(sheet: ParticipantSheet, schema: TableSchema) -> list[Drift]:
    """List the differences between ``sheet`` and the table ``schema``.

    Parameters
    ----------
    sheet
        The saved sheet; when a column is described twice, its first row counts.
    schema
        The participant table as introspected now.

    Returns
    -------
    list of Drift
        Dropped and retyped columns in sheet order, then new columns in table order; empty when
        sheet and table agree.
    """
    drifts: list[Drift] = []
    described: set[str] = set()
    table = schema.table_name
    for row in sheet.fields:
        if row.field_name in described:
            continue
        described.add(row.field_name)
        column = schema.column(row.field_name)
        uses = _uses(row)
        severity = Severity.ERROR if uses else Severity.WARNING
        used_as = f" (used as {', '.join(uses)})" if uses else ""
        if column is None:
            drifts.append(
                Drift(
                    DriftKind.COLUMN_DROPPED,
                    row.field_name,
                    severity,
                    f"column '{row.field_name}'{used_as} is no longer in table '{table}'; "
                    "remove its row from the sheet or restore the column",
                    sheet_type=row.data_type,
                )
            )
        elif not declared_type_fits(row.data_type, column.data_type):
            drifts.append(
                Drift(
                    DriftKind.TYPE_CHANGED,
                    row.field_name,
                    severity,
                    f"column '{row.field_name}'{used_as} is now {column.data_type.value} in table "
                    f"'{table}' but {row.data_type.value} in the sheet; update its data_type and "
                    "check its uses",
                    sheet_type=row.data_type,
                    table_type=column.data_type,
                )
            )
    for column in schema.columns:
        if column.name not in described:
            drifts.append(
                Drift(
                    DriftKind.COLUMN_ADDED,
                    column.name,
                    Severity.INFO,
                    f"table '{table}' has a column '{column.name}' ({column.data_type.value}) "
                    "that the sheet does not describe; add a row to use it",
                    table_type=column.data_type,
                )
            )
    return drifts


def _uses(row: SheetRow) -> list[str]:
    marks = [
        (row.is_unique_id, "unique ID"),
        (row.is_filter, "filter"),
        (row.is_metric, "metric"),
        (row.is_strata, "stratum"),
    ]
    return [name for marked, name in marks if marked]
