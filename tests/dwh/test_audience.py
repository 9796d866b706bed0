from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from xngin.dwh.audience import audience_rows, count_audience
from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.schema import DataType
from xngin.errors import InvalidInput


def md5_order(rows, id_name, seed):
    """The documented order, computed with hashlib: md5("<seed>:<id>") then the ID."""
    return [
        r[id_name]
        for r in sorted(
            rows,
            key=lambda r: (hashlib.md5(f"{seed}:{r[id_name]}".encode()).hexdigest(), r[id_name]),
        )
    ]


def collect(chunks):
    frames = list(chunks)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_count_audience_matches_python(warehouse):
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("visits", Relation.BETWEEN, [5, 25])],
        allowed={"visits": DataType.INTEGER},
    )

    assert count_audience(warehouse.engine, warehouse.table, where) == warehouse.count(
        lambda r: 5 <= r["visits"] <= 25
    )


def test_audience_rows_come_in_seeded_md5_order(warehouse):
    got = collect(
        audience_rows(
            warehouse.engine,
            warehouse.table,
            id_field=warehouse.field("id"),
            columns=[],
            filters=None,
            seed=42,
        )
    )

    assert got["id"].tolist() == md5_order(warehouse.rows, "id", 42)


def test_string_ids_are_hashed_as_their_text(warehouse):
    got = collect(
        audience_rows(
            warehouse.engine,
            warehouse.table,
            id_field=warehouse.field("external_id"),
            columns=[],
            filters=None,
            seed=-7,
            limit=50,
        )
    )

    assert got["external_id"].tolist() == md5_order(warehouse.rows, "external_id", -7)[:50]


def test_same_seed_same_order_other_seed_other_order(warehouse):
    def ids(seed):
        return collect(
            audience_rows(
                warehouse.engine,
                warehouse.table,
                id_field=warehouse.field("id"),
                columns=[],
                filters=None,
                seed=seed,
            )
        )["id"].tolist()

    first, again, other = ids(2024), ids(2024), ids(2025)

    assert first == again
    assert sorted(first) == sorted(other)
    assert first != other
    # The order is not the table's: not sorted by ID.
    assert first != sorted(first)


def test_limit_takes_the_first_participants_of_the_filtered_order(warehouse):
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("category", Relation.EXCLUDES, ["alpha"])],
        allowed={"category": DataType.STRING},
    )
    audience = [r for r in warehouse.rows if r["category"] != "alpha"]

    got = collect(
        audience_rows(
            warehouse.engine,
            warehouse.table,
            id_field=warehouse.field("id"),
            columns=[warehouse.field("category")],
            filters=where,
            seed=9,
            limit=30,
        )
    )

    assert got["id"].tolist() == md5_order(audience, "id", 9)[:30]
    assert "alpha" not in set(got["category"])


def test_rows_stream_in_chunks_with_python_values(warehouse):
    columns = [warehouse.field(n) for n in ("flag", "category", "amount", "joined_on", "last_seen")]
    chunks = list(
        audience_rows(
            warehouse.engine,
            warehouse.table,
            id_field=warehouse.field("id"),
            columns=[*columns, warehouse.field("id"), columns[0]],
            filters=None,
            seed=1,
            chunk_size=64,
        )
    )

    assert [len(c) for c in chunks] == [64, 64, 64, 8]
    assert all(
        list(c.columns) == ["id", "flag", "category", "amount", "joined_on", "last_seen"]
        for c in chunks
    )
    got = pd.concat(chunks, ignore_index=True)
    by_id = {r["id"]: r for r in warehouse.rows}
    for record in got.to_dict("records"):
        expected = by_id[record["id"]]
        for name in ("flag", "category", "amount", "joined_on", "last_seen"):
            assert record[name] == expected[name], (name, record)
            assert record[name] is None or type(record[name]) is type(expected[name])


def test_an_empty_audience_yields_no_chunks(warehouse):
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("id", Relation.INCLUDES, [-5])],
        allowed={"id": DataType.INTEGER},
    )

    chunks = list(
        audience_rows(
            warehouse.engine,
            warehouse.table,
            id_field=warehouse.field("id"),
            columns=[],
            filters=where,
            seed=1,
        )
    )

    assert chunks == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": "1"}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 1, "limit": -1}, "desired_n"),
        ({"seed": 1, "limit": 2.0}, "desired_n"),
        ({"seed": 1, "chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_arguments_are_invalid_input(table, fields, kwargs, field):
    with pytest.raises(InvalidInput) as info:
        audience_rows(None, table, id_field=fields["id"], columns=[], filters=None, **kwargs)
    assert info.value.field == field


def test_categorical_columns_travel_as_level_codes_with_filters_on_their_values(warehouse):
    """``coded`` returns each row's position in the levels (NULL included, an unlisted value
    gets UNLISTED_LEVEL), while a filter on the same column still sees its values."""
    from xngin.dwh.audience import UNLISTED_LEVEL

    levels = ["gamma", None, "alpha"]  # deliberately partial (no delta) and out of order
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("category", Relation.EXCLUDES, ["beta"])],
        allowed={"category": DataType.STRING},
    )
    got = collect(
        audience_rows(
            warehouse.engine,
            warehouse.table,
            id_field=warehouse.field("id"),
            columns=[warehouse.field("category")],
            filters=where,
            seed=5,
            coded={"category": levels},
        )
    )
    expected = {
        r["id"]: levels.index(r["category"]) if r["category"] in levels else UNLISTED_LEVEL
        for r in warehouse.rows
        if r["category"] != "beta"
    }
    assert dict(zip(got["id"], got["category"], strict=True)) == expected
    assert set(expected.values()) == {0, 1, 2, UNLISTED_LEVEL}


def test_values_by_id_reads_the_given_participants_only(warehouse):
    from xngin.dwh.audience import values_by_id
    from xngin.dwh.engines import connect

    wanted = [r for r in warehouse.rows if r["id"] % 7 == 0]
    ids = [str(r["id"]) for r in wanted] + ["not-a-number", "999999"]
    fields = [warehouse.field("visits"), warehouse.field("score")]
    with connect(warehouse.engine) as conn:
        got = values_by_id(
            conn, warehouse.table, id_field=warehouse.field("id"), fields=fields, ids=ids
        )
    assert set(got) == {str(r["id"]) for r in wanted}
    for r in wanted:
        visits, score = got[str(r["id"])]
        assert visits == r["visits"]
        assert (score is None and r["score"] is None) or abs(score - r["score"]) < 1e-9
