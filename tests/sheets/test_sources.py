"""Reading sheets from files and Google Sheet URLs (Google stood in for by a local HTTP server,
since Google itself cannot be reached from here; see test_google.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xngin.dwh.schema import TableSchema
from xngin.errors import InvalidInput
from xngin.sheets import (
    SHEET_COLUMNS,
    SheetInvalid,
    bootstrap_sheet,
    load_sheet,
    read_sheet,
    read_sheet_text,
    write_sheet_file,
)

HEADER = ",".join(SHEET_COLUMNS)


def test_sheet_file_round_trip(tmp_path: Path, people_schema: TableSchema) -> None:
    sheet = bootstrap_sheet(people_schema, distinct_counts={"gender": 3})
    path = tmp_path / "people.csv"
    write_sheet_file(sheet, path)
    assert read_sheet(str(path)) == sheet
    assert load_sheet(str(path), people_schema).sheet == sheet


def test_file_with_byte_order_mark_and_crlf_is_read(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        ("\ufeff" + HEADER + '\r\nid,integer,"line one\r\nline two",TRUE,,,,\r\n').encode("utf-8")
    )
    (row,) = read_sheet(str(path)).fields
    assert row.field_name == "id" and row.description == "line one\r\nline two"


def test_file_that_is_not_utf8_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\nid,integer,Ça va,TRUE,,,,\n").encode("latin-1"))
    with pytest.raises(InvalidInput, match="CSV UTF-8") as caught:
        read_sheet_text(str(path))
    assert str(path) in caught.value.message and caught.value.field == "sheet_url"


def test_missing_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InvalidInput) as caught:
        read_sheet_text(str(path))
    assert str(path) in caught.value.message and "No such file" in caught.value.message


def test_urls_other_than_google_sheets_are_not_fetched(http_server: Any) -> None:
    http_server.serve("/people.csv", 200, HEADER + "\n")
    with pytest.raises(InvalidInput, match="not a Google Sheet URL"):
        read_sheet_text(f"{http_server.base_url}/people.csv")
    assert http_server.requests == []


def test_load_sheet_from_google_url_validates_with_csv_rows(
    http_server: Any,
    people_schema: TableSchema,
) -> None:
    url = "https://docs.google.com/spreadsheets/d/SHEET/edit#gid=5"
    http_server.serve(
        "/d/SHEET/export?format=csv&gid=5",
        200,
        "\n".join([HEADER, "id,integer,,TRUE,,,,", "gender,string,,,,TRUE,,"]),
    )
    with pytest.raises(SheetInvalid) as caught:
        load_sheet(url, people_schema, export_base_url=f"{http_server.base_url}/d")
    assert [(p.row, p.field, p.code) for p in caught.value.problems] == [
        (2, "gender", "metric_not_numeric")
    ]
    assert url in caught.value.message


def test_read_sheet_from_google_url(http_server: Any) -> None:
    http_server.serve("/d/SHEET/export?format=csv", 200, HEADER + "\nid,uuid,,x,,,,\n")
    sheet = read_sheet(
        "https://docs.google.com/spreadsheets/d/SHEET/edit",
        export_base_url=f"{http_server.base_url}/d",
    )
    assert sheet.unique_id().field_name == "id"
