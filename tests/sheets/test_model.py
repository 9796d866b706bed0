from __future__ import annotations

import pydantic
import pytest

from xngin.dwh.schema import DataType
from xngin.sheets import SHEET_COLUMNS, ParticipantSheet, SheetRow


def _sheet() -> ParticipantSheet:
    return ParticipantSheet(
        fields=(
            SheetRow(field_name="id", data_type=DataType.INTEGER, is_unique_id=True),
            SheetRow(field_name="age", data_type="integer", is_filter=True, is_metric=True),
            SheetRow(field_name="gender", data_type="string", is_filter=True, is_strata=True),
            SheetRow(field_name="income", data_type="float", is_metric=True),
            SheetRow(field_name="signup_date", data_type="date", is_filter=True),
            SheetRow(field_name="notes", data_type="string", description="free text"),
        )
    )


def test_accessors_return_marked_rows_in_sheet_order() -> None:
    sheet = _sheet()
    assert [r.field_name for r in sheet.filters()] == ["age", "gender", "signup_date"]
    assert [r.field_name for r in sheet.metrics()] == ["age", "income"]
    assert [r.field_name for r in sheet.strata()] == ["gender"]
    unique_id = sheet.unique_id()
    assert unique_id is not None and unique_id.field_name == "id"


def test_allowed_filter_types_maps_only_filter_fields_to_their_types() -> None:
    assert _sheet().allowed_filter_types() == {
        "age": DataType.INTEGER,
        "gender": DataType.STRING,
        "signup_date": DataType.DATE,
    }


def test_unique_id_is_none_when_no_row_is_marked() -> None:
    sheet = ParticipantSheet(fields=(SheetRow(field_name="a", data_type="string"),))
    assert sheet.unique_id() is None


def test_field_looks_up_a_row_by_exact_name() -> None:
    sheet = _sheet()
    row = sheet.field("notes")
    assert row is not None and row.description == "free text"
    assert sheet.field("Notes") is None


def test_text_fields_lose_surrounding_whitespace() -> None:
    row = SheetRow(field_name="  age ", data_type="integer", description=" years\n", extra=" {} ")
    assert (row.field_name, row.description, row.extra) == ("age", "years", "{}")


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_field_name_is_rejected(name: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        SheetRow(field_name=name, data_type="integer")


def test_unknown_data_type_and_unknown_keys_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        SheetRow(field_name="a", data_type="varchar")
    with pytest.raises(pydantic.ValidationError):
        SheetRow.model_validate({"field_name": "a", "data_type": "string", "is_metrik": True})


def test_rows_are_immutable() -> None:
    row = SheetRow(field_name="a", data_type="string")
    with pytest.raises(pydantic.ValidationError):
        row.is_metric = True  # type: ignore[misc]


def test_json_shape_matches_the_api_sheet_row() -> None:
    # API.md: SheetRow {"field_name", "data_type", "description", "is_unique_id", "is_filter",
    # "is_metric", "is_strata"}; extra is the sheet's eighth column.
    dumped = _sheet().model_dump(mode="json")
    assert list(dumped) == ["fields"]
    assert tuple(dumped["fields"][0]) == SHEET_COLUMNS
    assert dumped["fields"][1]["data_type"] == "integer"
    assert ParticipantSheet.model_validate_json(_sheet().model_dump_json()) == _sheet()


def test_every_model_field_has_a_description() -> None:
    for model in (SheetRow, ParticipantSheet):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
