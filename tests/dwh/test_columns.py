from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
import sqlalchemy as sa

from xngin.dwh.columns import column_of, python_value
from xngin.dwh.schema import DataType

U = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")


@pytest.mark.parametrize(
    ("raw", "data_type", "expected"),
    [
        (None, DataType.INTEGER, None),
        (1, DataType.BOOLEAN, True),  # SQLite, ClickHouse UInt8
        (0, DataType.BOOLEAN, False),
        (U, DataType.UUID, "123e4567-e89b-12d3-a456-426614174000"),  # psycopg, duckdb
        ("123E4567-E89B-12D3-A456-426614174000", DataType.UUID, str(U)),
        (decimal.Decimal("5"), DataType.INTEGER, 5),  # NUMERIC(38,0)
        (12.25, DataType.DECIMAL, decimal.Decimal("12.25")),  # SQLite REAL
        (decimal.Decimal("12.25"), DataType.DECIMAL, decimal.Decimal("12.25")),
        (3, DataType.FLOAT, 3.0),
        ("2024-02-29", DataType.DATE, dt.date(2024, 2, 29)),  # SQLite text
        (dt.datetime(2024, 2, 29, 13), DataType.DATE, dt.date(2024, 2, 29)),
        ("2024-02-29 13:14:15.000000", DataType.TIMESTAMP, dt.datetime(2024, 2, 29, 13, 14, 15)),
        (dt.date(2024, 2, 29), DataType.TIMESTAMP, dt.datetime(2024, 2, 29)),
        (
            dt.datetime(2024, 2, 29, 13, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            DataType.TIMESTAMP,
            dt.datetime(2024, 2, 29, 11),
        ),
        (42, DataType.STRING, "42"),
    ],
)
def test_driver_values_become_one_python_type_per_data_type(raw, data_type, expected):
    got = python_value(raw, data_type)
    assert got == expected
    assert type(got) is type(expected)


def test_undeclared_columns_resolve_unqualified():
    table = sa.table("people", sa.column("id"))
    assert column_of(table, "id") is table.c.id
    assert str(sa.select(column_of(table, "age")).select_from(table)) == "SELECT age \nFROM people"
