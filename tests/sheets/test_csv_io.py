from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xngin.dwh.schema import DataType, TableSchema
from xngin.errors import InvalidInput
from xngin.sheets import (
    SHEET_COLUMNS,
    ParticipantSheet,
    SheetInvalid,
    SheetRow,
    bootstrap_sheet,
    load_sheet_csv,
    parse_sheet_csv,
    read_sheet_csv,
    write_sheet_csv,
)
from xngin.sheets.csv_io import parse_data_type, parse_flag

HEADER = ",".join(SHEET_COLUMNS)

# Text a spreadsheet cell can hold: any printable character, commas, quotes and line breaks
# included; surrounding whitespace is not kept by design, so it is not generated.
_cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff")
    | st.sampled_from([",", '"', "\n", "\r", ";", "\t"]),
    max_size=30,
).map(str.strip)
_rows = st.builds(
    SheetRow,
    field_name=_cell_text.filter(bool),
    data_type=st.sampled_from(list(DataType)),
    description=_cell_text,
    is_unique_id=st.booleans(),
    is_filter=st.booleans(),
    is_metric=st.booleans(),
    is_strata=st.booleans(),
    extra=_cell_text,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_rows, max_size=8).map(lambda rows: ParticipantSheet(fields=tuple(rows))))
def test_written_sheet_reads_back_equal(sheet: ParticipantSheet) -> None:
    assert read_sheet_csv(write_sheet_csv(sheet)) == sheet


def test_written_csv_is_readable_by_the_csv_module_with_spreadsheet_booleans(
    people_schema: TableSchema,
) -> None:
    sheet = bootstrap_sheet(people_schema, distinct_counts={"gender": 3})
    records = list(csv.DictReader(io.StringIO(write_sheet_csv(sheet))))
    assert [r["field_name"] for r in records] == [c.name for c in people_schema.columns]
    assert records[0] == {
        "field_name": "id",
        "data_type": "integer",
        "description": "",
        "is_unique_id": "TRUE",
        "is_filter": "FALSE",
        "is_metric": "FALSE",
        "is_strata": "FALSE",
        "extra": "",
    }


@pytest.mark.parametrize(
    "word", ["TRUE", "true", "True", "T", "1", "yes", "Y", "x", "X", "✓", "on"]
)
def test_yes_words_read_as_true(word: str) -> None:
    assert parse_flag(f"  {word} ") is True


@pytest.mark.parametrize("word", ["FALSE", "false", "F", "0", "no", "N", "off", "", "   "])
def test_no_words_and_empty_cells_read_as_false(word: str) -> None:
    assert parse_flag(word) is False


@pytest.mark.parametrize("word", ["maybe", "2", "TRUE!", "-"])
def test_other_words_are_not_flags(word: str) -> None:
    assert parse_flag(word) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Integer", DataType.INTEGER),
        (" STRING ", DataType.STRING),
        ("int", DataType.INTEGER),
        ("bool", DataType.BOOLEAN),
        ("text", DataType.STRING),
        ("datetime", DataType.TIMESTAMP),
        ("varchar(20)", None),
        ("", None),
    ],
)
def test_data_type_is_read_in_any_case_and_from_aliases(text: str, expected: DataType) -> None:
    assert parse_data_type(text) is expected


def test_spreadsheet_quirks_are_forgiven() -> None:
    text = (
        "\ufeff Field Name ,DATA_TYPE,Is-Unique-ID,is_filter,IS_METRIC,is strata,owner,"
        "Description\r\n"
        " id , Integer ,x,,,,ana,the person\r\n"
        "\r\n"
        "age,integer,no,yes,1,0\r\n"
        ",,,,,,\r\n"
        'gender , string,FALSE,TRUE,FALSE,TRUE,bo,"self-reported, free text",surplus\r\n'
    )
    sheet = read_sheet_csv(text)
    assert sheet == ParticipantSheet(
        fields=(
            SheetRow(
                field_name="id", data_type="integer", description="the person", is_unique_id=True
            ),
            SheetRow(field_name="age", data_type="integer", is_filter=True, is_metric=True),
            SheetRow(
                field_name="gender",
                data_type="string",
                description="self-reported, free text",
                is_filter=True,
                is_strata=True,
            ),
        )
    )


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_sheets_are_read(delimiter: str) -> None:
    text = "\n".join(
        [
            delimiter.join(SHEET_COLUMNS),
            delimiter.join(["id", "integer", "a, b", "TRUE", "FALSE", "FALSE", "FALSE", ""]),
        ]
    )
    (row,) = read_sheet_csv(text).fields
    assert (row.field_name, row.description, row.is_unique_id) == ("id", "a, b", True)


def test_every_unreadable_cell_is_reported_with_its_data_row() -> None:
    text = "\n".join(
        [
            HEADER,
            "id,integer,,TRUE,,,,",
            "",  # blank row 2 still counts, so rows match the spreadsheet
            "age,number,,,,maybe,,",
            ",string,,,,,,",
            "ok,string,,,,,,",
        ]
    )
    with pytest.raises(SheetInvalid) as caught:
        read_sheet_csv(text, source="people.csv")
    problems = caught.value.problems
    assert [(p.row, p.field, p.code) for p in problems] == [
        (3, "age", "bad_data_type"),
        (3, "age", "bad_flag"),
        (4, None, "empty_name"),
    ]
    assert "'number'" in problems[0].message and "integer" in problems[0].message
    assert "is_metric 'maybe'" in problems[1].message
    message = str(caught.value)
    assert "people.csv" in message and "row 3" in message and "row 4" in message


def test_parse_keeps_readable_rows_with_their_row_numbers() -> None:
    text = "\n".join([HEADER, "", "id,integer,,TRUE,,,,", "age,wrong,,,,,,", "x,string,,,,,,"])
    parsed = parse_sheet_csv(text)
    assert [r.field_name for r in parsed.sheet.fields] == ["id", "x"]
    assert parsed.row_numbers == (2, 4)
    assert [(p.row, p.code) for p in parsed.problems] == [(3, "bad_data_type")]


def test_missing_header_columns_are_reported_together() -> None:
    with pytest.raises(SheetInvalid) as caught:
        read_sheet_csv("field_name,type,is_unique_id,is_filter,is_metrics,is_strata\nid,integer\n")
    assert {(p.row, p.field, p.code) for p in caught.value.problems} == {
        (None, "data_type", "missing_header"),
        (None, "is_metric", "missing_header"),
    }
    assert "'is_metrics'" in str(caught.value)  # the header found is shown


def test_repeated_header_column_is_reported() -> None:
    with pytest.raises(SheetInvalid) as caught:
        read_sheet_csv(HEADER + ",Is_Metric\n")
    assert [(p.field, p.code) for p in caught.value.problems] == [("is_metric", "duplicate_header")]


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n  \n", ",,,\n"])
def test_empty_sheet_is_reported(text: str) -> None:
    with pytest.raises(SheetInvalid) as caught:
        read_sheet_csv(text)
    assert [p.code for p in caught.value.problems] == ["empty_sheet"]
    assert isinstance(caught.value, InvalidInput) and caught.value.status == 422


def test_header_only_sheet_reads_as_no_rows() -> None:
    assert read_sheet_csv(HEADER + "\n") == ParticipantSheet(fields=())


def test_load_reports_cell_and_validation_problems_together_by_csv_row(
    people_schema: TableSchema,
) -> None:
    text = "\n".join(
        [
            HEADER,
            "id,integer,,TRUE,,,,",
            "",
            "age,integer,,,TRUE,,,",
            "gender,string,,,yes,TRUE,,",  # validation: text metric
            "income,float,,,,perhaps,,",  # cell: bad flag
            "shoe_size,integer,,,,,,",  # validation: unknown column
        ]
    )
    with pytest.raises(SheetInvalid) as caught:
        load_sheet_csv(text, people_schema, source="people.csv")
    assert [(p.row, p.field, p.code) for p in caught.value.problems] == [
        (4, "gender", "metric_not_numeric"),
        (5, "income", "bad_flag"),
        (6, "shoe_size", "unknown_column"),
    ]


def test_load_does_not_claim_a_missing_unique_id_when_a_row_was_unreadable(
    people_schema: TableSchema,
) -> None:
    text = "\n".join([HEADER, "id,integr,,TRUE,,,,", "age,integer,,,,,,"])
    with pytest.raises(SheetInvalid) as caught:
        load_sheet_csv(text, people_schema)
    assert [p.code for p in caught.value.problems] == ["bad_data_type"]


def test_load_returns_the_sheet_with_its_warnings(people_schema: TableSchema) -> None:
    text = "\n".join([HEADER, "id,integer,,TRUE,,,,", "", "income,float,,,TRUE,,TRUE,"])
    checked = load_sheet_csv(text, people_schema)
    assert [r.field_name for r in checked.sheet.fields] == ["id", "income"]
    assert [(w.row, w.field, w.code) for w in checked.warnings] == [
        (3, "income", "strata_continuous")
    ]
