"""The participant-type config sheet: one row per column of the participant table.

The sheet is what a team edits by hand (as a CSV file or a Google Sheet) to tell xngin which column
identifies a participant and which columns may be used as audience filters, metrics or strata. The
same models are the ``SheetRow`` / ``fields`` shapes of the API, so every field carries a
description that ends up in ``/api/docs``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from xngin.dwh.schema import DataType

#: The column order of a sheet as written to CSV; also the accepted header names when reading.
SHEET_COLUMNS: tuple[str, ...] = (
    "field_name",
    "data_type",
    "description",
    "is_unique_id",
    "is_filter",
    "is_metric",
    "is_strata",
    "extra",
)

#: Columns with at most this many distinct values are proposed as strata and filters, and strata
#: with more are flagged. Twenty keeps strata large enough in audiences of a few thousand.
STRATA_MAX_DISTINCT = 20


class SheetRow(BaseModel):
    """How one column of the participant table may be used.

    Surrounding whitespace of every text field is removed, as spreadsheets tend to add it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    field_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        description="Name of the column in the participant table, spelled as in the warehouse.",
        examples=["age"],
    )
    data_type: DataType = Field(
        description="The column's type as xngin sees it; must agree with the table.",
        examples=["integer"],
    )
    description: str = Field(
        default="",
        description="What the column means, in words the experiment designers use.",
    )
    is_unique_id: bool = Field(
        default=False,
        description="This column identifies a participant; exactly one row of a sheet sets it.",
    )
    is_filter: bool = Field(
        default=False,
        description="The column may be used in audience filters.",
    )
    is_metric: bool = Field(
        default=False,
        description="The column may be used as an outcome metric (numeric or boolean only).",
    )
    is_strata: bool = Field(
        default=False,
        description="The column may be used to stratify assignment (few distinct values).",
    )
    extra: str = Field(
        default="",
        description="Free text or JSON kept with the row for later use; xngin does not read it.",
    )


class ParticipantSheet(BaseModel):
    """The config sheet of one participant type, in sheet order.

    Accessors return rows in sheet order, so lists shown to users follow the order the sheet's
    authors chose.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: tuple[SheetRow, ...] = Field(
        description="One row per described column of the participant table, in sheet order.",
    )

    def field(self, field_name: str) -> SheetRow | None:
        """Return the first row describing ``field_name`` (exact spelling), or None."""
        for row in self.fields:
            if row.field_name == field_name:
                return row
        return None

    def unique_id(self) -> SheetRow | None:
        """Return the row marked ``is_unique_id``.

        Returns
        -------
        SheetRow or None
            The first marked row, or None when no row is marked. A validated sheet (see
            :func:`xngin.sheets.check_sheet`) has exactly one.
        """
        for row in self.fields:
            if row.is_unique_id:
                return row
        return None

    def filters(self) -> list[SheetRow]:
        """Return the rows usable in audience filters, in sheet order."""
        return [row for row in self.fields if row.is_filter]

    def metrics(self) -> list[SheetRow]:
        """Return the rows usable as metrics, in sheet order."""
        return [row for row in self.fields if row.is_metric]

    def strata(self) -> list[SheetRow]:
        """Return the rows usable as strata, in sheet order."""
        return [row for row in self.fields if row.is_strata]

    def allowed_filter_types(self) -> dict[str, DataType]:
        """Map each filterable field name to its data type.

        The filter compiler uses this to accept only marked fields and to check that filter values
        fit the field's type.
        """
        return {row.field_name: row.data_type for row in self.fields if row.is_filter}
