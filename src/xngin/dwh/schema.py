"""The small set of column types xngin reasons about, and a table's schema in those terms.

Warehouse dialects have dozens of types; power, assignment and filters only need to know whether a
column is text-like, numeric, boolean or a point in time. ``dwh.introspect`` maps each dialect's
types onto :class:`DataType`; ``sheets`` and the API speak only these names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DataType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    UUID = "uuid"

    @property
    def is_numeric(self) -> bool:
        return self in (DataType.INTEGER, DataType.FLOAT, DataType.DECIMAL)

    @property
    def is_temporal(self) -> bool:
        return self in (DataType.DATE, DataType.TIMESTAMP)

    @property
    def is_categorical(self) -> bool:
        """Values are listed as distinct values with counts rather than as a range."""
        return self in (DataType.STRING, DataType.BOOLEAN, DataType.UUID)

    @property
    def can_be_metric(self) -> bool:
        return self.is_numeric or self is DataType.BOOLEAN


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column of a participant table as xngin sees it."""

    name: str
    data_type: DataType
    nullable: bool = True
    native_type: str = ""


@dataclass(frozen=True, slots=True)
class TableSchema:
    table_name: str
    columns: tuple[ColumnInfo, ...]

    def column(self, name: str) -> ColumnInfo | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None


def declared_type_fits(declared: DataType, actual: DataType) -> bool:
    """Whether a config sheet may declare ``declared`` for a column the warehouse reports as
    ``actual``: the same type, or boolean for an integer column (0/1 flags in warehouses without
    a boolean type, such as ClickHouse's UInt8)."""
    return declared is actual or (declared is DataType.BOOLEAN and actual is DataType.INTEGER)
