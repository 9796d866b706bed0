from __future__ import annotations

import pytest

from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.errors import InvalidInput
from xngin.sheets import (
    ParticipantSheet,
    Severity,
    SheetInvalid,
    SheetProblem,
    SheetRow,
    check_sheet,
    validate_sheet,
)


def row(name: str, data_type: str, **marks: bool) -> SheetRow:
    return SheetRow(field_name=name, data_type=data_type, **marks)


def sheet(*rows: SheetRow) -> ParticipantSheet:
    return ParticipantSheet(fields=rows)


ID = row("id", "integer", is_unique_id=True)


def found(problems: list[SheetProblem]) -> list[tuple[int | None, str | None, str, Severity]]:
    return [(p.row, p.field, p.code, p.severity) for p in problems]


E, W = Severity.ERROR, Severity.WARNING


def test_a_clean_sheet_has_no_problems(people_schema: TableSchema) -> None:
    clean = sheet(
        ID,
        row("age", "integer", is_filter=True, is_metric=True, is_strata=True),
        row("gender", "string", is_filter=True, is_strata=True),
        row("is_active", "boolean", is_metric=True),
        row("signup_date", "date", is_filter=True),
    )
    assert validate_sheet(clean, people_schema, distinct_counts={"gender": 3, "age": 12}) == []
    assert check_sheet(clean, people_schema) == []


def test_unknown_column_names_the_table_and_suggests_the_spelling(
    people_schema: TableSchema,
) -> None:
    problems = validate_sheet(sheet(ID, row("Age", "integer"), row("zip", "string")), people_schema)
    assert found(problems) == [(2, "Age", "unknown_column", E), (3, "zip", "unknown_column", E)]
    assert "did you mean 'age'" in problems[0].message
    assert "'people'" in problems[1].message and "gender" in problems[1].message


def test_data_type_disagreeing_with_the_table_names_the_right_type(
    people_schema: TableSchema,
) -> None:
    problems = validate_sheet(sheet(ID, row("age", "string")), people_schema)
    assert found(problems) == [(2, "age", "type_mismatch", E)]
    assert "'string'" in problems[0].message and "write 'integer'" in problems[0].message


@pytest.mark.parametrize("name,data_type", [("gender", "string"), ("signup_date", "date")])
def test_metric_must_be_numeric_or_boolean(
    people_schema: TableSchema, name: str, data_type: str
) -> None:
    problems = validate_sheet(sheet(ID, row(name, data_type, is_metric=True)), people_schema)
    assert found(problems) == [(2, name, "metric_not_numeric", E)]
    assert "boolean" in problems[0].message and "float" in problems[0].message


def test_metric_check_uses_the_table_type_when_the_sheet_type_is_wrong(
    people_schema: TableSchema,
) -> None:
    # The sheet says integer, the table says string: one type error and the metric error, which
    # follows the table (what queries will actually meet).
    problems = validate_sheet(sheet(ID, row("gender", "integer", is_metric=True)), people_schema)
    assert found(problems) == [
        (2, "gender", "type_mismatch", E),
        (2, "gender", "metric_not_numeric", E),
    ]


def test_no_unique_id_is_a_sheet_problem_with_a_suggestion(people_schema: TableSchema) -> None:
    problems = validate_sheet(sheet(row("age", "integer")), people_schema)
    assert found(problems) == [(None, None, "no_unique_id", E)]
    assert "'id'" in problems[0].message


def test_every_unique_id_after_the_first_is_reported_on_its_row(
    people_schema: TableSchema,
) -> None:
    problems = validate_sheet(
        sheet(ID, row("age", "integer"), row("email", "string", is_unique_id=True)), people_schema
    )
    assert found(problems) == [
        (3, "email", "unique_id_nullable", W),
        (3, "email", "multiple_unique_ids", E),
    ]
    assert "row 1 ('id')" in problems[1].message


def test_unique_id_may_not_be_metric_or_stratum(people_schema: TableSchema) -> None:
    problems = validate_sheet(
        sheet(row("id", "integer", is_unique_id=True, is_metric=True, is_strata=True)),
        people_schema,
    )
    assert found(problems) == [(1, "id", "unique_id_metric", E), (1, "id", "unique_id_strata", E)]


def test_nullable_unique_id_is_a_warning(people_schema: TableSchema) -> None:
    problems = validate_sheet(sheet(row("email", "string", is_unique_id=True)), people_schema)
    assert found(problems) == [(1, "email", "unique_id_nullable", W)]


def test_boolean_unique_id_is_an_error(people_schema: TableSchema) -> None:
    problems = validate_sheet(sheet(row("is_active", "boolean", is_unique_id=True)), people_schema)
    assert (1, "is_active", "unique_id_type", E) in found(problems)


def test_duplicate_field_rows_name_the_first_row(people_schema: TableSchema) -> None:
    problems = validate_sheet(
        sheet(ID, row("age", "integer"), row("gender", "string"), row("age", "integer")),
        people_schema,
    )
    assert found(problems) == [(4, "age", "duplicate_field", E)]
    assert "row 2" in problems[0].message


def test_strata_on_float_and_high_cardinality_columns_are_warnings(
    people_schema: TableSchema,
) -> None:
    problems = validate_sheet(
        sheet(
            ID,
            row("income", "float", is_strata=True),
            row("email", "string", is_strata=True),
            row("gender", "string", is_strata=True),
            row("age", "integer", is_strata=True),
        ),
        people_schema,
        distinct_counts={"email": 5000, "gender": 3, "income": 4000},
    )
    assert found(problems) == [
        (2, "income", "strata_continuous", W),
        (3, "email", "strata_high_cardinality", W),
    ]
    assert "5000 distinct values" in problems[1].message


def test_strata_threshold_is_inclusive_and_configurable(people_schema: TableSchema) -> None:
    strata = sheet(ID, row("gender", "string", is_strata=True))
    assert validate_sheet(strata, people_schema, distinct_counts={"gender": 20}) == []
    assert validate_sheet(strata, people_schema, distinct_counts={"gender": 21}) != []
    assert (
        validate_sheet(
            strata, people_schema, distinct_counts={"gender": 21}, strata_max_distinct=21
        )
        == []
    )


def test_all_problems_are_reported_together_in_row_order(people_schema: TableSchema) -> None:
    messy = sheet(
        row("age", "string", is_metric=True),  # 1: wrong type -> and the metric follows the table
        row("gender", "string", is_metric=True, is_strata=True),  # 2: text metric
        row("zip", "string", is_filter=True),  # 3: unknown
        row("gender", "string"),  # 4: duplicate
        row("email", "string", is_unique_id=True),  # 5: nullable ID (warning)
        row("id", "integer", is_unique_id=True),  # 6: second ID
        row("income", "float", is_strata=True),  # 7: float stratum (warning)
    )
    problems = validate_sheet(messy, people_schema)
    assert found(problems) == [
        (1, "age", "type_mismatch", E),
        (2, "gender", "metric_not_numeric", E),
        (3, "zip", "unknown_column", E),
        (4, "gender", "duplicate_field", E),
        (5, "email", "unique_id_nullable", W),
        (6, "id", "multiple_unique_ids", E),
        (7, "income", "strata_continuous", W),
    ]

    with pytest.raises(SheetInvalid) as caught:
        check_sheet(messy, people_schema, source="people.csv")
    error = caught.value
    assert isinstance(error, InvalidInput) and error.status == 422
    assert error.code == "invalid_sheet" and error.field == "fields"
    assert error.problems == problems
    assert len(error.errors) == 5 and len(error.warnings) == 2
    lines = error.message.splitlines()
    assert "people.csv" in lines[0] and "5 errors and 2 warnings" in lines[0]
    assert lines[1:] == [f"- {p.describe()}" for p in problems]
    assert lines[1].startswith("- error (row 1, field 'age'): ")
    assert error.to_dict()["code"] == "invalid_sheet"


def test_check_returns_warnings_when_there_is_no_error(people_schema: TableSchema) -> None:
    warnings = check_sheet(sheet(ID, row("income", "float", is_strata=True)), people_schema)
    assert found(warnings) == [(2, "income", "strata_continuous", W)]


def test_columns_missing_from_the_sheet_are_not_problems() -> None:
    schema = TableSchema(
        "t", (ColumnInfo("id", DataType.UUID, nullable=False), ColumnInfo("x", DataType.STRING))
    )
    assert validate_sheet(sheet(row("id", "uuid", is_unique_id=True)), schema) == []
