"""One small participant table, loaded identically into DuckDB, SQLite, PostgreSQL and ClickHouse.

Every warehouse test takes the ``warehouse`` fixture and runs once per backend, checking the
warehouse's answers against numbers computed in Python from the same generated rows
(``warehouse.rows``). The PostgreSQL and ClickHouse databases are private and dropped afterwards
(the same helpers as the ``postgres_url``/``clickhouse_database`` fixtures), but made once per
session: the table is only read, and a database per test would cost ~0.4 s each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from xngin.dwh import engines
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.testing import servers

TABLE = "participants"
N_ROWS = 200
LEVELS = ("alpha", "beta", "gamma", "delta")

# The participant type's sheet: ClickHouse stores the flag as UInt8, the sheet says boolean.
FIELDS: dict[str, ColumnInfo] = {
    c.name: c
    for c in (
        ColumnInfo("id", DataType.INTEGER, nullable=False),
        ColumnInfo("category", DataType.STRING),
        ColumnInfo("flag", DataType.BOOLEAN),
        ColumnInfo("visits", DataType.INTEGER, nullable=False),
        ColumnInfo("score", DataType.FLOAT),
        ColumnInfo("amount", DataType.DECIMAL, nullable=False),
        ColumnInfo("joined_on", DataType.DATE),
        ColumnInfo("last_seen", DataType.TIMESTAMP),
        ColumnInfo("external_id", DataType.STRING, nullable=False),
        ColumnInfo("household_id", DataType.INTEGER, nullable=False),
        ColumnInfo("balance", DataType.FLOAT, nullable=False),
    )
}

DDL = {
    "duckdb": """CREATE TABLE participants (id BIGINT NOT NULL, category VARCHAR, flag BOOLEAN,
        visits INTEGER NOT NULL, score DOUBLE, amount DECIMAL(10,2) NOT NULL, joined_on DATE,
        last_seen TIMESTAMP, external_id VARCHAR NOT NULL, household_id INTEGER NOT NULL,
        balance DOUBLE NOT NULL)""",
    "sqlite": """CREATE TABLE participants (id INTEGER NOT NULL, category VARCHAR, flag BOOLEAN,
        visits INTEGER NOT NULL, score DOUBLE, amount DECIMAL(10,2) NOT NULL, joined_on DATE,
        last_seen TIMESTAMP, external_id VARCHAR NOT NULL, household_id INTEGER NOT NULL,
        balance DOUBLE NOT NULL)""",
    "postgresql": """CREATE TABLE participants (id BIGINT NOT NULL, category VARCHAR(20),
        flag BOOLEAN, visits INTEGER NOT NULL, score DOUBLE PRECISION,
        amount NUMERIC(10,2) NOT NULL, joined_on DATE, last_seen TIMESTAMP,
        external_id TEXT NOT NULL, household_id INTEGER NOT NULL,
        balance DOUBLE PRECISION NOT NULL)""",
    "clickhouse": """CREATE TABLE participants (id Int64, category Nullable(String),
        flag Nullable(UInt8), visits Int32, score Nullable(Float64), amount Decimal(10,2),
        joined_on Nullable(Date), last_seen Nullable(DateTime), external_id String,
        household_id Int32, balance Float64) ENGINE = MergeTree ORDER BY id""",
}

# What introspection must report per backend: (DataType, nullable).
EXPECTED_TYPES: dict[str, dict[str, tuple[DataType, bool]]] = {}
for _backend in DDL:
    EXPECTED_TYPES[_backend] = {
        name: (info.data_type, info.nullable) for name, info in FIELDS.items()
    }
EXPECTED_TYPES["clickhouse"]["flag"] = (DataType.INTEGER, True)


def make_rows() -> list[dict[str, Any]]:
    """200 participants with NULLs, repeated values, ties and a large-offset float."""
    rng = random.Random(20261121)
    rows = []
    for i in range(1, N_ROWS + 1):
        category = None if rng.random() < 0.1 else rng.choices(LEVELS, [8, 5, 3, 1])[0]
        rows.append(
            {
                "id": i,
                "category": category,
                "flag": None if rng.random() < 0.1 else rng.random() < 0.35,
                "visits": rng.randint(0, 40),
                "score": None if rng.random() < 0.15 else round(rng.gauss(50, 12), 3),
                "amount": decimal.Decimal(rng.randint(0, 100_000)) / 100,
                "joined_on": None
                if rng.random() < 0.05
                else dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 500)),
                "last_seen": None
                if rng.random() < 0.05
                else dt.datetime(2024, 1, 1) + dt.timedelta(seconds=rng.randint(0, 86400 * 90)),
                "external_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "household_id": rng.randint(1, 60),
                # Mean 1e9, spread 0.01: sums of squares of the raw values lose every digit.
                "balance": 1e9 + rng.gauss(0, 0.01),
            }
        )
    return rows


ROWS = make_rows()


@dataclass
class Warehouse:
    """What a test needs: the engine and table, and the rows and types to check against."""

    backend: str
    engine: sa.Engine
    table: sa.TableClause
    rows: list[dict[str, Any]]
    url: str
    table_name: str = TABLE
    view_name: str = "active_participants"

    @property
    def fields(self) -> dict[str, ColumnInfo]:
        """The sheet's view of the columns (same on every backend)."""
        return FIELDS

    @property
    def expected_types(self) -> dict[str, tuple[DataType, bool]]:
        """What introspection must report on this backend: name -> (DataType, nullable)."""
        return EXPECTED_TYPES[self.backend]

    def field(self, name: str) -> ColumnInfo:
        return FIELDS[name]

    def count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for row in self.rows if predicate(row))


def participant_table(name: str = TABLE) -> sa.TableClause:
    """The table as services build it: untyped columns named after the schema."""
    return sa.table(name, *(sa.column(n) for n in FIELDS))


def _load_sqlalchemy(engine: sa.Engine, backend: str) -> None:
    table = sa.table(TABLE, *(sa.column(n) for n in FIELDS))
    rows = ROWS
    if backend == "sqlite":
        # sqlite3 has no Decimal or datetime adapters; store what SQLAlchemy's types would.
        rows = [
            {
                **r,
                "amount": float(r["amount"]),
                "joined_on": r["joined_on"].isoformat() if r["joined_on"] else None,
                "last_seen": r["last_seen"].strftime("%Y-%m-%d %H:%M:%S.%f")
                if r["last_seen"]
                else None,
            }
            for r in rows
        ]
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL[backend])
        conn.execute(sa.insert(table), rows)
        conn.exec_driver_sql(
            "CREATE VIEW active_participants AS SELECT id, category FROM participants"
        )


def _load_clickhouse(database: str) -> None:
    from clickhouse_driver import Client

    client = Client(host=servers.CLICKHOUSE_HOST, port=servers.CLICKHOUSE_PORT, database=database)
    try:
        client.execute(DDL["clickhouse"])
        columns = list(FIELDS)
        values = [
            tuple((None if r[c] is None else int(r[c])) if c == "flag" else r[c] for c in columns)
            for r in ROWS
        ]
        client.execute(f"INSERT INTO participants ({', '.join(columns)}) VALUES", values)
        client.execute("CREATE VIEW active_participants AS SELECT id, category FROM participants")
    finally:
        client.disconnect()


BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("clickhouse", id="clickhouse", marks=pytest.mark.clickhouse),
]


@pytest.fixture(scope="session", params=BACKENDS)
def warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    """The test table in one backend (parametrized over all four)."""
    backend: str = request.param
    with contextlib.ExitStack() as stack:
        if backend == "duckdb":
            url = f"duckdb:///{tmp_path_factory.mktemp('duckdb') / 'wh.duckdb'}"
        elif backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'wh.sqlite'}"
        elif backend == "postgresql":
            url = stack.enter_context(servers.temporary_postgres_database("xngin_dwh"))
        else:
            database = stack.enter_context(servers.temporary_clickhouse_database("xngin_dwh"))
            url = (
                f"clickhouse+native://{servers.CLICKHOUSE_HOST}:{servers.CLICKHOUSE_PORT}/"
                f"{database}"
            )
        name = f"test-{backend}"
        engine = engines.get_engine(name=name, url=url)
        try:
            if backend == "clickhouse":
                _load_clickhouse(database)
            else:
                _load_sqlalchemy(engine, backend)
            yield Warehouse(backend, engine, participant_table(), list(ROWS), url)
        finally:
            engines.forget_engine(name=name)


@pytest.fixture
def table() -> sa.TableClause:
    """The participant table clause, for tests that only compile SQL."""
    return participant_table()


@pytest.fixture
def fields() -> dict[str, ColumnInfo]:
    return FIELDS


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    return list(ROWS)
