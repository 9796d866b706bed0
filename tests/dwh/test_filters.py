from __future__ import annotations

import datetime as dt
import decimal

import pytest
import sqlalchemy as sa

from xngin.dwh.audience import count_audience
from xngin.dwh.filters import AudienceFilter, Relation, compile_filters
from xngin.dwh.schema import DataType
from xngin.errors import InvalidInput


def allowed_of(fields):
    return {name: info.data_type for name, info in fields.items()}


def reference_match(value, relation, values):
    """The documented NULL semantics, written out independently of the SQL compiler."""
    present = [v for v in values if v is not None]
    if relation == "includes":
        return value in present if value is not None else None in values
    if relation == "excludes":
        return value not in present if value is not None else None not in values
    lower, upper = values
    return (
        value is not None
        and (lower is None or value >= lower)
        and (upper is None or value <= upper)
    )


# (field, relation, JSON value, the same bounds/values as Python objects)
CASES = [
    ("category", "includes", ["alpha"], ["alpha"]),
    ("category", "includes", ["alpha", "delta"], ["alpha", "delta"]),
    ("category", "includes", ["alpha", None], ["alpha", None]),
    ("category", "includes", [None], [None]),
    ("category", "excludes", ["alpha"], ["alpha"]),
    ("category", "excludes", ["alpha", None], ["alpha", None]),
    ("category", "excludes", [None], [None]),
    ("category", "includes", ["no-such-level"], ["no-such-level"]),
    ("flag", "includes", [True], [True]),
    ("flag", "includes", [False, None], [False, None]),
    ("flag", "excludes", [True], [True]),
    ("visits", "includes", [3, 7, 11.0], [3, 7, 11]),
    ("visits", "between", [10, 20], [10, 20]),
    ("visits", "between", [10, None], [10, None]),
    ("visits", "between", [None, 5], [None, 5]),
    ("score", "between", [45.5, 60], [45.5, 60.0]),
    ("score", "excludes", [None], [None]),
    ("amount", "between", [100, 500.25], [decimal.Decimal(100), decimal.Decimal("500.25")]),
    ("amount", "between", [None, 250.5], [None, decimal.Decimal("250.5")]),
    (
        "joined_on",
        "between",
        ["2023-03-01", "2023-09-30"],
        [dt.date(2023, 3, 1), dt.date(2023, 9, 30)],
    ),
    ("joined_on", "includes", [None], [None]),
    (
        "last_seen",
        "between",
        ["2024-01-15T00:00:00", "2024-02-15 12:30:00"],
        [dt.datetime(2024, 1, 15), dt.datetime(2024, 2, 15, 12, 30)],
    ),
    ("last_seen", "between", ["2024-02-01T00:00:00Z", None], [dt.datetime(2024, 2, 1), None]),
]


@pytest.mark.parametrize(("field", "relation", "value", "py_values"), CASES)
def test_filter_selects_the_rows_the_null_semantics_describe(
    warehouse, field, relation, value, py_values
):
    where = compile_filters(
        warehouse.table,
        [AudienceFilter(field, Relation(relation), value)],
        allowed=allowed_of(warehouse.fields),
    )

    expected = warehouse.count(lambda r: reference_match(r[field], relation, py_values))
    assert count_audience(warehouse.engine, warehouse.table, where) == expected


def test_filters_are_anded(warehouse):
    filters = [
        AudienceFilter("category", Relation.EXCLUDES, ["gamma"]),
        AudienceFilter("flag", Relation.INCLUDES, [True, None]),
        AudienceFilter("amount", Relation.BETWEEN, [200, None]),
    ]
    where = compile_filters(warehouse.table, filters, allowed=allowed_of(warehouse.fields))

    expected = warehouse.count(
        lambda r: (
            r["category"] != "gamma"
            and r["flag"] in (True, None)
            and r["amount"] >= decimal.Decimal(200)
        )
    )
    assert 0 < expected < len(warehouse.rows)
    assert count_audience(warehouse.engine, warehouse.table, where) == expected


def test_no_filters_is_everyone(warehouse):
    where = compile_filters(warehouse.table, [], allowed=allowed_of(warehouse.fields))

    assert count_audience(warehouse.engine, warehouse.table, where) == len(warehouse.rows)
    assert count_audience(warehouse.engine, warehouse.table, None) == len(warehouse.rows)


def test_uuid_field_matches_any_spelling_of_the_uuid(warehouse):
    target = warehouse.rows[17]["external_id"]
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("external_id", Relation.INCLUDES, [target.upper()])],
        allowed={"external_id": DataType.UUID},
    )

    assert count_audience(warehouse.engine, warehouse.table, where) == 1


def test_filters_given_as_mappings_are_accepted(table, fields):
    where = compile_filters(
        table,
        [{"field_name": "category", "relation": "includes", "value": ["alpha"]}],
        allowed=allowed_of(fields),
    )
    assert "participants.category IN" in str(where)


# --- validation -----------------------------------------------------------------------------

INVALID = [
    # (filters, field of the error, words the message must contain)
    ([("nope", "includes", ["a"])], "filters[0].field_name", ["'nope'", "category"]),
    ([("category", "contains", ["a"])], "filters[0].relation", ["'contains'", "includes"]),
    ([("category", "includes", [])], "filters[0].value", ["empty"]),
    ([("category", "excludes", [])], "filters[0].value", ["empty"]),
    ([("category", "includes", "alpha")], "filters[0].value", ["list"]),
    ([("category", "between", ["a", "b"])], "filters[0].relation", ["between", "category"]),
    ([("flag", "between", [False, True])], "filters[0].relation", ["between"]),
    ([("visits", "between", [1, 2, 3])], "filters[0].value", ["[lower, upper]"]),
    ([("visits", "between", [1])], "filters[0].value", ["[lower, upper]"]),
    ([("visits", "between", [None, None])], "filters[0].value", ["[null, null]"]),
    ([("visits", "between", [9, 3])], "filters[0].value", ["lower bound"]),
    ([("visits", "includes", ["5"])], "filters[0].value", ["'5'", "integer"]),
    ([("visits", "includes", [1.5])], "filters[0].value", ["1.5", "integer"]),
    ([("visits", "includes", [True])], "filters[0].value", ["True", "integer"]),
    ([("visits", "includes", [2**70])], "filters[0].value", ["64-bit"]),
    ([("score", "between", ["1", 2])], "filters[0].value", ["'1'", "number"]),
    ([("score", "between", [float("nan"), 2])], "filters[0].value", ["finite"]),
    ([("amount", "includes", [{"a": 1}])], "filters[0].value", ["decimal"]),
    ([("flag", "includes", [1])], "filters[0].value", ["true or false"]),
    ([("flag", "includes", ["true"])], "filters[0].value", ["true or false"]),
    ([("category", "includes", [5])], "filters[0].value", ["string"]),
    ([("category", "includes", ["a\x00b"])], "filters[0].value", ["NUL"]),
    ([("joined_on", "between", ["yesterday", None])], "filters[0].value", ["ISO date"]),
    ([("joined_on", "between", ["2023-01-01T10:00:00", None])], "filters[0].value", ["ISO date"]),
    ([("joined_on", "includes", [20230101])], "filters[0].value", ["ISO date"]),
    ([("last_seen", "between", ["2024-13-01", None])], "filters[0].value", ["ISO timestamp"]),
    ([("external_id", "includes", ["not-a-uuid"])], "filters[0].value", ["UUID"]),
    (
        [("category", "includes", ["alpha"]), ("visits", "includes", ["x"])],
        "filters[1].value",
        ["filters[1].value[0]"],
    ),
]


@pytest.mark.parametrize(("filters", "field", "words"), INVALID)
def test_invalid_filters_raise_invalid_input_naming_the_field(table, fields, filters, field, words):
    allowed = allowed_of(fields) | {"external_id": DataType.UUID}
    with pytest.raises(InvalidInput) as info:
        compile_filters(table, [AudienceFilter(*f) for f in filters], allowed=allowed)

    assert info.value.field == field
    for word in words:
        assert word in info.value.message


def test_only_filter_fields_are_allowed_and_the_message_lists_them(table):
    with pytest.raises(InvalidInput) as info:
        compile_filters(
            table,
            [AudienceFilter("score", Relation.BETWEEN, [1, 2])],
            allowed={"category": DataType.STRING, "flag": DataType.BOOLEAN},
        )
    assert info.value.field == "filters[0].field_name"
    assert "filter fields: category, flag" in info.value.message


def test_too_many_values_are_refused(table, fields):
    with pytest.raises(InvalidInput) as info:
        compile_filters(
            table,
            [AudienceFilter("visits", Relation.INCLUDES, list(range(10_001)))],
            allowed=allowed_of(fields),
        )
    assert info.value.field == "filters[0].value"


# --- hostile input --------------------------------------------------------------------------

HOSTILE = [
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    ";",
    "'; DROP TABLE participants; --",
    "' OR 1=1 --",
    "' OR '1'='1",
    "alpha' OR 'x'='x",
    "alpha'--",
    "--",
    "/*",
    "*/",
    "/* alpha */",
    "alpha; SELECT 1",
    "%s",
    "%(category_1)s",
    ":category",
    "?",
    "$1",
    "{}",
    "`alpha`",
    "ünïcødé — ✓ 😀 中文",
    "\u202e\u200b",
    "line\nbreak\r\n--",
    "\t",
    "",
    " alpha",
    "ALPHA",
    "x" * 10_000,
    "'" * 5_000,
]


def _sql_shape(engine, table, where):
    stmt = sa.select(sa.func.count()).select_from(table).where(where)
    return str(stmt.compile(dialect=engine.dialect))


def test_hostile_values_are_bound_parameters_and_match_nothing(warehouse):
    allowed = allowed_of(warehouse.fields)
    shapes = set()
    for value in HOSTILE:
        includes = compile_filters(
            warehouse.table,
            [AudienceFilter("category", Relation.INCLUDES, [value])],
            allowed=allowed,
        )
        excludes = compile_filters(
            warehouse.table,
            [AudienceFilter("category", Relation.EXCLUDES, [value])],
            allowed=allowed,
        )
        shapes.add(_sql_shape(warehouse.engine, warehouse.table, includes))

        assert count_audience(warehouse.engine, warehouse.table, includes) == 0, value
        assert count_audience(warehouse.engine, warehouse.table, excludes) == len(warehouse.rows)
    # Whatever the value, the SQL text is the same; only the parameter differs.
    assert len(shapes) == 1
    assert "DROP" not in shapes.pop()


def test_hostile_values_next_to_a_real_one_still_find_it(warehouse):
    where = compile_filters(
        warehouse.table,
        [AudienceFilter("category", Relation.INCLUDES, ["beta", *HOSTILE])],
        allowed=allowed_of(warehouse.fields),
    )

    expected = warehouse.count(lambda r: r["category"] == "beta")
    assert count_audience(warehouse.engine, warehouse.table, where) == expected


@pytest.mark.parametrize("value", HOSTILE[:20])
@pytest.mark.parametrize("field", ["visits", "score", "amount", "flag", "joined_on", "last_seen"])
def test_hostile_strings_for_typed_fields_are_invalid_input(table, fields, field, value):
    relation = Relation.INCLUDES if field == "flag" else Relation.BETWEEN
    value_list = [value] if field == "flag" else [value, None]
    with pytest.raises(InvalidInput) as info:
        compile_filters(
            table, [AudienceFilter(field, relation, value_list)], allowed=allowed_of(fields)
        )
    assert info.value.field == "filters[0].value"


@pytest.mark.parametrize("name", [*HOSTILE, None, 5, "participants.category", "CATEGORY"])
def test_hostile_field_names_are_invalid_input(table, fields, name):
    with pytest.raises(InvalidInput) as info:
        compile_filters(
            table, [AudienceFilter(name, Relation.INCLUDES, ["alpha"])], allowed=allowed_of(fields)
        )
    assert info.value.field == "filters[0].field_name"
    assert len(info.value.message) < 500


@pytest.mark.parametrize("relation", [*HOSTILE[:12], None, 1])
def test_hostile_relations_are_invalid_input(table, fields, relation):
    with pytest.raises(InvalidInput) as info:
        compile_filters(
            table, [AudienceFilter("category", relation, ["alpha"])], allowed=allowed_of(fields)
        )
    assert info.value.field == "filters[0].relation"


def test_odd_but_allowed_column_names_are_quoted_identifiers(warehouse):
    name = 'we"ird name; --'
    table = sa.table("participants", sa.column(name))
    where = compile_filters(
        table, [AudienceFilter(name, Relation.INCLUDES, ["x"])], allowed={name: DataType.STRING}
    )

    text = _sql_shape(warehouse.engine, table, where)

    assert warehouse.engine.dialect.identifier_preparer.quote(name) in text
    assert "'x'" not in text
