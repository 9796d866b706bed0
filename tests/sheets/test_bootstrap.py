from __future__ import annotations

import pytest

from xngin.dwh.schema import ColumnInfo, DataType, TableSchema
from xngin.sheets import ParticipantSheet, bootstrap_sheet, guess_unique_id, validate_sheet


def _schema(table: str, *columns: tuple[str, DataType]) -> TableSchema:
    return TableSchema(table, tuple(ColumnInfo(n, t, nullable=False) for n, t in columns))


def _marks(sheet: ParticipantSheet, name: str) -> tuple[bool, bool, bool, bool]:
    row = sheet.field(name)
    return (row.is_unique_id, row.is_filter, row.is_metric, row.is_strata)


def test_bootstrap_proposes_uses_by_type_and_cardinality(people_schema: TableSchema) -> None:
    sheet = bootstrap_sheet(
        people_schema, distinct_counts={"age": 70, "gender": 3, "email": 9500, "is_active": 2}
    )
    assert [r.field_name for r in sheet.fields] == [c.name for c in people_schema.columns]
    #                                   unique  filter metric strata
    assert _marks(sheet, "id") == (True, False, False, False)
    assert _marks(sheet, "age") == (False, True, True, False)  # 70 values: too many for strata
    assert _marks(sheet, "gender") == (False, True, False, True)  # 3 values
    assert _marks(sheet, "income") == (False, True, True, False)  # float: never strata
    assert _marks(sheet, "is_active") == (False, True, True, True)
    assert _marks(sheet, "signup_date") == (False, True, False, False)
    assert _marks(sheet, "email") == (False, False, False, False)  # high-cardinality text
    assert all(r.description == "" and r.extra == "" for r in sheet.fields)
    assert all(r.data_type is people_schema.column(r.field_name).data_type for r in sheet.fields)


def test_bootstrap_without_counts_proposes_no_text_filters_but_keeps_booleans(
    people_schema: TableSchema,
) -> None:
    sheet = bootstrap_sheet(people_schema)
    assert _marks(sheet, "gender") == (False, False, False, False)
    assert _marks(sheet, "is_active") == (False, True, True, True)
    assert _marks(sheet, "age") == (False, True, True, False)


def test_low_cardinality_integer_is_a_stratum_but_a_constant_column_is_not() -> None:
    schema = _schema(
        "pupils",
        ("id", DataType.INTEGER),
        ("grade", DataType.INTEGER),
        ("country", DataType.STRING),
    )
    sheet = bootstrap_sheet(schema, distinct_counts={"grade": 6, "country": 1})
    assert _marks(sheet, "grade") == (False, True, True, True)
    assert _marks(sheet, "country") == (False, True, False, False)


def test_threshold_is_inclusive_and_configurable() -> None:
    schema = _schema("t", ("id", DataType.STRING), ("region", DataType.STRING))
    assert bootstrap_sheet(schema, distinct_counts={"region": 20}).field("region").is_strata
    assert not bootstrap_sheet(schema, distinct_counts={"region": 21}).field("region").is_strata
    assert (
        bootstrap_sheet(schema, distinct_counts={"region": 21}, strata_max_distinct=30)
        .field("region")
        .is_strata
    )


def test_unique_id_candidates_win_in_their_order() -> None:
    schema = _schema(
        "people", ("id", DataType.INTEGER), ("phone", DataType.STRING), ("ext", DataType.STRING)
    )
    sheet = bootstrap_sheet(schema, unique_id_candidates=("missing", "phone", "ext"))
    assert sheet.unique_id().field_name == "phone"
    assert not sheet.field("id").is_unique_id
    assert sheet.field("id").is_metric  # no longer the ID: an integer like any other


@pytest.mark.parametrize(
    ("table", "columns", "expected"),
    [
        ("people", ["name", "ID"], "ID"),
        ("households", ["name", "households_id"], "households_id"),
        ("households", ["name", "household_id"], "household_id"),
        ("analytics.cities", ["name", "city_id"], "city_id"),
        ("schools", ["name", "uuid"], "uuid"),
        ("schools", ["school_id", "id"], "id"),  # plain id is preferred
        ("schools", ["name", "code"], None),
    ],
)
def test_unique_id_is_guessed_from_conventional_names(
    table: str, columns: list[str], expected: str | None
) -> None:
    schema = _schema(table, *((c, DataType.STRING) for c in columns))
    assert guess_unique_id(schema) == expected


def test_boolean_column_is_never_guessed_as_unique_id() -> None:
    schema = _schema("t", ("id", DataType.BOOLEAN), ("uuid", DataType.UUID))
    assert guess_unique_id(schema) == "uuid"
    assert guess_unique_id(schema, ["id"]) == "uuid"


def test_bootstrap_is_deterministic(people_schema: TableSchema) -> None:
    counts = {"gender": 3, "age": 70}
    assert bootstrap_sheet(people_schema, distinct_counts=counts) == bootstrap_sheet(
        people_schema, distinct_counts=dict(reversed(counts.items()))
    )


def test_bootstrapped_sheet_passes_validation_without_errors(people_schema: TableSchema) -> None:
    counts = {"age": 70, "gender": 3, "email": 9500}
    sheet = bootstrap_sheet(people_schema, distinct_counts=counts)
    assert validate_sheet(sheet, people_schema, distinct_counts=counts) == []


def test_bootstrap_rejects_a_threshold_below_one(people_schema: TableSchema) -> None:
    with pytest.raises(ValueError, match="strata_max_distinct"):
        bootstrap_sheet(people_schema, strata_max_distinct=0)
