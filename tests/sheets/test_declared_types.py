from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.sheets import ParticipantSheet, SheetRow, detect_drift, validate_sheet

SCHEMA = TableSchema(
    "people",
    (
        ColumnInfo("id", DataType.STRING, nullable=False),
        ColumnInfo("flag", DataType.INTEGER),
        ColumnInfo("done", DataType.BOOLEAN),
    ),
)


def _sheet(flag_type: DataType, done_type: DataType) -> ParticipantSheet:
    return ParticipantSheet(
        fields=(
            SheetRow(field_name="id", data_type=DataType.STRING, is_unique_id=True),
            SheetRow(field_name="flag", data_type=flag_type, is_metric=True),
            SheetRow(field_name="done", data_type=done_type, is_metric=True),
        )
    )


def test_boolean_may_be_declared_for_an_integer_flag_column() -> None:
    """ClickHouse (and others) store flags as 0/1 integers: the sheet may call them boolean."""
    sheet = _sheet(DataType.BOOLEAN, DataType.BOOLEAN)
    assert [p for p in validate_sheet(sheet, SCHEMA) if p.code == "type_mismatch"] == []
    assert detect_drift(sheet, SCHEMA) == []


def test_integer_may_not_be_declared_for_a_boolean_column() -> None:
    sheet = _sheet(DataType.INTEGER, DataType.INTEGER)
    mismatches = [p for p in validate_sheet(sheet, SCHEMA) if p.code == "type_mismatch"]
    assert [p.field for p in mismatches] == ["done"]
