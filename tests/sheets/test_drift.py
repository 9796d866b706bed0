from __future__ import annotations

from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.sheets import (
    Drift,
    DriftKind,
    ParticipantSheet,
    Severity,
    SheetRow,
    bootstrap_sheet,
    detect_drift,
)


def _sheet() -> ParticipantSheet:
    return ParticipantSheet(
        fields=(
            SheetRow(field_name="id", data_type="integer", is_unique_id=True),
            SheetRow(field_name="age", data_type="integer", is_metric=True),
            SheetRow(field_name="gender", data_type="string", is_strata=True),
            SheetRow(field_name="nickname", data_type="string"),
            SheetRow(field_name="score", data_type="integer"),
        )
    )


def test_sheet_matching_its_table_has_no_drift(people_schema: TableSchema) -> None:
    assert detect_drift(bootstrap_sheet(people_schema), people_schema) == []


def test_dropped_retyped_and_new_columns_are_reported_with_severity() -> None:
    now = TableSchema(
        "people",
        (
            ColumnInfo("id", DataType.INTEGER),
            ColumnInfo("age", DataType.STRING),  # retyped, used as metric
            ColumnInfo("score", DataType.FLOAT),  # retyped, unused
            ColumnInfo("region", DataType.STRING),  # new
            ColumnInfo("phone", DataType.STRING),  # new
        ),  # gender (stratum) and nickname (unused) dropped
    )
    drifts = detect_drift(_sheet(), now)
    assert [(d.kind, d.field_name, d.severity) for d in drifts] == [
        (DriftKind.TYPE_CHANGED, "age", Severity.ERROR),
        (DriftKind.COLUMN_DROPPED, "gender", Severity.ERROR),
        (DriftKind.COLUMN_DROPPED, "nickname", Severity.WARNING),
        (DriftKind.TYPE_CHANGED, "score", Severity.WARNING),
        (DriftKind.COLUMN_ADDED, "region", Severity.INFO),
        (DriftKind.COLUMN_ADDED, "phone", Severity.INFO),
    ]
    age, gender = drifts[0], drifts[1]
    assert (age.sheet_type, age.table_type) == (DataType.INTEGER, DataType.STRING)
    assert "used as metric" in age.message and "now string" in age.message
    assert (gender.sheet_type, gender.table_type) == (DataType.STRING, None)
    assert "used as stratum" in gender.message and "'people'" in gender.message
    assert drifts[4] == Drift(
        DriftKind.COLUMN_ADDED,
        "region",
        Severity.INFO,
        drifts[4].message,
        sheet_type=None,
        table_type=DataType.STRING,
    )


def test_a_column_described_twice_drifts_once() -> None:
    sheet = ParticipantSheet(
        fields=(
            SheetRow(field_name="id", data_type="integer", is_unique_id=True),
            SheetRow(field_name="gone", data_type="integer"),
            SheetRow(field_name="gone", data_type="integer"),
        )
    )
    drifts = detect_drift(sheet, TableSchema("t", (ColumnInfo("id", DataType.INTEGER),)))
    assert [(d.kind, d.field_name) for d in drifts] == [(DriftKind.COLUMN_DROPPED, "gone")]
