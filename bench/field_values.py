"""Benchmark: ``GET /v1/filters`` on 10,000,000 participants in DuckDB, against hand-written SQL.

``GET /v1/filters`` lists every filter field of a participant type with its values. It is timed
as a client sees it, through the whole application in process (FastAPI, API-key check, app
database, sheet, :func:`xngin.dwh.values.field_values`, JSON), with the field-values cache off so
every request reaches the warehouse. The numbers are first checked against the hand-written SQL
(through ``field_values``, and the API's answer against ``field_values``).

Table (built once with ``generate_series`` and cached in ``bench/out/field_values.duckdb``):
``id``; categorical ``region`` (8 levels, 5% NULL), ``gender`` (3), ``segment`` (50); boolean
``is_active`` (10% NULL); numeric ``age`` (integer), ``income`` (double, 14% NULL), ``score``
(DECIMAL(10,2)); ``signup_date`` (date). All eight are filter fields.

Baseline: one hand-written statement computing the same numbers the way an analyst would write
it for DuckDB: ``GROUPING SETS`` over the four categorical fields with ``row_number()`` keeping the
top ``limit + 1`` values per field, cross-joined with one ``MIN``/``MAX``/NULL-count aggregate over
the four others. It runs through the same engine (``exec_driver_sql``), so both sides pay the same
driver costs; its time is execute plus fetch, ours includes building the statement and shaping
the result. Both results are checked to hold the same numbers. Best of several alternating runs
after a warm-up.

Target: ``field_values`` within 1.5x of the hand-written statement. Run:
``.venv/bin/python bench/field_values.py``; the last line is the JSON summary.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.dwh.engines import dispose_all, get_engine
from xngin.dwh.schema import ColumnInfo, DataType
from xngin.dwh.values import DistinctValues, ValueRange, field_values
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store.db import upgrade

N = 10_000_000
LIMIT = 1000
REPEATS = 7
TARGET = 1.5
OUT = Path(__file__).resolve().parent / "out"
DATABASE = OUT / "field_values.duckdb"
TABLE = "participants_v1"  # also spelled in the SQL below; bump both when the generator changes

FIELDS = [
    ColumnInfo("region", DataType.STRING),
    ColumnInfo("gender", DataType.STRING),
    ColumnInfo("segment", DataType.STRING),
    ColumnInfo("is_active", DataType.BOOLEAN),
    ColumnInfo("age", DataType.INTEGER),
    ColumnInfo("income", DataType.FLOAT),
    ColumnInfo("score", DataType.DECIMAL),
    ColumnInfo("signup_date", DataType.DATE),
]
CATEGORICAL = [f.name for f in FIELDS if f.data_type.is_categorical]
RANGED = [f.name for f in FIELDS if not f.data_type.is_categorical]

# Pseudo-random but reproducible columns from DuckDB's hash of (row, column number).
GENERATE = """
CREATE OR REPLACE TABLE participants_v1 AS
SELECT
  i AS id,
  CASE WHEN hash(i, 1) % 20 = 0 THEN NULL
       ELSE ['north', 'south', 'east', 'west', 'central', 'coast', 'hills', 'islands']
            [(hash(i, 2) % 8)::INTEGER + 1] END AS region,
  ['female', 'male', 'other'][(hash(i, 3) % 3)::INTEGER + 1] AS gender,
  'segment_' || lpad((hash(i, 4) % 50)::VARCHAR, 2, '0') AS segment,
  CASE WHEN hash(i, 5) % 10 = 0 THEN NULL ELSE hash(i, 6) % 3 = 0 END AS is_active,
  (18 + hash(i, 7) % 60)::INTEGER AS age,
  CASE WHEN hash(i, 8) % 7 = 0 THEN NULL ELSE (hash(i, 9) % 1000000) / 10.0 END::DOUBLE AS income,
  ((hash(i, 10) % 100000) / 100.0)::DECIMAL(10, 2) AS score,
  DATE '2020-01-01' + (hash(i, 11) % 1500)::INTEGER AS signup_date
FROM generate_series(1, 10000000) AS g(i)
"""

# The baseline, written by hand for DuckDB (limit 1000, so 1001 rows per field tell completeness).
HAND_WRITTEN = """
SELECT top.*, ranges.*
FROM (
  SELECT * FROM (
    SELECT grouping_id(region, gender, segment, is_active) AS field,
           region, gender, segment, is_active, count(*) AS n,
           row_number() OVER (
             PARTITION BY grouping_id(region, gender, segment, is_active)
             ORDER BY count(*) DESC, region, gender, segment, is_active NULLS LAST
           ) AS rank
    FROM participants_v1
    GROUP BY GROUPING SETS ((region), (gender), (segment), (is_active))
  ) WHERE rank <= 1001
) AS top
CROSS JOIN (
  SELECT min(age), max(age), count(*) - count(age),
         min(income), max(income), count(*) - count(income),
         min(score), max(score), count(*) - count(score),
         min(signup_date), max(signup_date), count(*) - count(signup_date)
  FROM participants_v1
) AS ranges
"""
COUNT = "SELECT count(*) FROM participants_v1"


def ensure_table(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", (TABLE,)
        ).scalar_one()
        if exists and conn.exec_driver_sql(COUNT).scalar_one() == N:
            return
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(GENERATE)
    print(f"built {N:,} rows in {time.perf_counter() - started:.1f} s ({DATABASE})")


def hand_written(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.exec_driver_sql(HAND_WRITTEN).all())


def ours(engine: sa.Engine, table: sa.TableClause) -> dict[str, Any]:
    return field_values(engine, table, FIELDS, limit=LIMIT)


def same_numbers(rows: list[Any], result: dict[str, Any]) -> bool:
    """Whether the hand-written rows hold exactly the numbers ``field_values`` returned."""
    width = len(CATEGORICAL)
    expected: dict[str, Any] = {name: [] for name in CATEGORICAL}
    for row in rows:
        # grouping_id has a 1 bit for every column *not* grouped; the grouped one is the 0 bit.
        position = next(i for i in range(width) if not (row[0] >> (width - 1 - i)) & 1)
        expected[CATEGORICAL[position]].append((row[1 + position], row[1 + width]))
    for name in CATEGORICAL:
        got = result[name]
        assert isinstance(got, DistinctValues)
        pairs = sorted(expected[name], key=lambda p: (-p[1], p[0] is None, p[0] or 0))
        if [(v.value, v.count) for v in got.distinct] != pairs[:LIMIT]:
            return False
    base = 1 + width + 2
    for j, name in enumerate(RANGED):
        got = result[name]
        assert isinstance(got, ValueRange)
        lo, hi, nulls = rows[0][base + 3 * j : base + 3 * j + 3]
        if (got.min, got.max, got.null_count) != (lo, hi, nulls):
            return False
    return True


SHEET = [
    {"field_name": "id", "data_type": "integer", "is_unique_id": True},
    *({"field_name": f.name, "data_type": f.data_type.value, "is_filter": True} for f in FIELDS),
]


@contextmanager
def api_client() -> Iterator[tuple[TestClient, str]]:
    """The app on a throwaway SQLite app database, with the bench table as a participant type."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/app.sqlite"
        upgrade(url)
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url,
            event_store_url=f"duckdb:///{tmp}/events.duckdb",
            field_values_ttl_seconds=0,
        )
        runtime = Runtime.start(settings)
        key = issue_api_key(runtime, organization="bench").plaintext
        headers = {"X-API-Key": key}
        try:
            with TestClient(create_app(runtime=runtime)) as client:
                ds = {"name": "bench", "url": f"duckdb:///{DATABASE}"}
                assert client.post("/v1/datasources", json=ds, headers=headers).status_code == 201
                pt = {"name": "people", "datasource": "bench", "table_name": TABLE, "fields": SHEET}
                created = client.post("/v1/participant-types", json=pt, headers=headers)
                assert created.status_code == 201, created.text
                yield client, key
        finally:
            runtime.close()


def api_filters(client: TestClient, key: str) -> dict[str, Any]:
    response = client.get(
        "/v1/filters", params={"participant_type": "people"}, headers={"X-API-Key": key}
    )
    response.raise_for_status()
    return {f["field_name"]: f["values"] for f in response.json()["fields"]}


def api_agrees(api: dict[str, Any], result: dict[str, Any]) -> bool:
    for name, got in result.items():
        if isinstance(got, DistinctValues):
            pairs = [(d["value"], d["count"]) for d in api[name]["distinct"]]
            if pairs != [(v.value, v.count) for v in got.distinct]:
                return False
        elif api[name]["null_count"] != got.null_count:
            return False
    return True


def seconds(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    engine = get_engine(name="bench-field-values", url=f"duckdb:///{DATABASE}")
    ensure_table(engine)
    table = sa.table(TABLE, *(sa.column(f.name) for f in FIELDS))
    rows, result = hand_written(engine), ours(engine, table)  # warm-up and cross-check
    if not same_numbers(rows, result):
        raise SystemExit("field_values and the hand-written SQL disagree")
    dispose_all()  # one DuckDB handle per file: the app opens its own
    with api_client() as (client, key):
        if not api_agrees(api_filters(client, key), result):
            raise SystemExit("GET /v1/filters and field_values disagree")
        app_engine = get_engine(name="bench", url=f"duckdb:///{DATABASE}")
        ours_s = baseline_s = float("inf")
        for _ in range(REPEATS):
            # Alternating, so a busy moment on the shared machine hits both sides alike.
            baseline_s = min(baseline_s, seconds(lambda: hand_written(app_engine)))
            ours_s = min(ours_s, seconds(lambda: api_filters(client, key)))
    dispose_all()
    ratio = ours_s / baseline_s
    print(f"participants: {N:,}; fields: {len(CATEGORICAL)} categorical, {len(RANGED)} ranged")
    print(f"hand-written SQL (grouping sets + ranges): {baseline_s * 1000:8.1f} ms")
    print(f"GET /v1/filters (cache off):               {ours_s * 1000:8.1f} ms")
    print(f"ratio: {ratio:.2f}x (target <= {TARGET}x)")
    summary = {
        "bench": "field_values",
        "value": round(ratio, 3),
        "unit": "x hand-written SQL",
        "target": TARGET,
        "met": ratio <= TARGET,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
