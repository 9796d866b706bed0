from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from xngin.web.forms import DesignForm, FormInvalid, parse_filter_value

FILTER_TYPES = {"age": "integer", "region": "string", "has_phone": "boolean", "income": "float"}


@pytest.mark.parametrize(
    ("text", "data_type", "relation", "expected"),
    [
        ("Nairobi, Kisumu", "string", "includes", ["Nairobi", "Kisumu"]),
        ("20, 60", "integer", "between", [20, 60]),
        ("18,", "integer", "between", [18, None]),
        (", 99.5", "float", "between", [None, 99.5]),
        ("yes, false", "boolean", "includes", [True, False]),
        ("null, (missing), a", "string", "excludes", [None, None, "a"]),
        ("1.5", "integer", "includes", [1.5]),  # the compiler says an integer is expected
        ("twenty", "integer", "includes", ["twenty"]),  # left as typed, for the same reason
        ("", "string", "includes", []),
        ("a, , b", "string", "includes", ["a", "b"]),
    ],
)
def test_filter_values_take_their_field_type(
    text: str, data_type: str, relation: str, expected: list[object]
) -> None:
    assert parse_filter_value(text, data_type=data_type, relation=relation) == expected


def _form(**fields: str) -> FormData:
    base = {
        "participant_type": "people",
        "arms[0].arm_name": "control",
        "arms[0].weight": "1",
        "arms[1].arm_name": "sms",
        "arms[1].weight": "2",
        "seed": "7",
    }
    return FormData({**base, **fields})


def test_rows_are_read_in_index_order_and_renumbered() -> None:
    form = DesignForm.from_form(
        _form(
            **{
                "filters[5].field_name": "region",
                "filters[5].value": "b",
                "filters[2].field_name": "age",
                "filters[2].value": "1, 2",
                "filters[2].relation": "between",
                "filters[999].field_name": "ignored",  # beyond the row limit
            }
        )
    )
    assert [(f.field_name, f.value) for f in form.filters] == [("age", "1, 2"), ("region", "b")]
    design = form.to_design(FILTER_TYPES)
    assert [f.model_dump() for f in design.filters] == [
        {"field_name": "age", "relation": "between", "value": [1, 2]},
        {"field_name": "region", "relation": "includes", "value": ["b"]},
    ]
    assert [a.weight for a in design.arms] == [1.0, 2.0]


def test_rows_are_added_and_removed_by_the_buttons() -> None:
    form = DesignForm.from_form(_form())
    assert form.apply("add_filter") and len(form.filters) == 1
    assert form.apply("remove_arm:0") and [a.arm_name for a in form.arms] == ["sms"]
    assert form.apply("remove_arm:9")  # out of range: nothing to remove
    assert not form.apply("power")
    assert not form.apply("add_everything")


def test_percent_change_is_sent_as_a_fraction() -> None:
    form = DesignForm.from_form(
        _form(**{"metrics[0].field_name": "income", "metrics[0].metric_pct_change": "12.5%"})
    )
    (metric,) = form.to_design(FILTER_TYPES).metrics
    assert metric.metric_pct_change == pytest.approx(0.125)
    assert metric.metric_target is None


def test_blank_rows_are_dropped_before_reading_and_their_positions_reported() -> None:
    form = DesignForm.from_form(
        _form(
            **{
                "filters[0].field_name": "",
                "filters[1].field_name": "age",
                "filters[1].value": "3",
                "metrics[0].field_name": "",
            }
        )
    )
    assert form.compact() == [1]
    assert len(form.filters) == 1 and form.metrics == []


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"arms[1].weight": "heavy"}, "arms[1].weight", "valid number"),
        ({"arms[1].weight": "-1"}, "arms[1].weight", "greater than 0"),
        ({"alpha": "2"}, "alpha", "less than 1"),
        ({"desired_n": "0"}, "desired_n", "greater than or equal to 1"),
        ({"seed": "x"}, "seed", "valid integer"),
        (
            {"metrics[0].field_name": "income", "metrics[0].metric_pct_change": "lots"},
            "metrics[0].metric_pct_change",
            "valid number",
        ),
        (
            {"metrics[0].field_name": "income"},
            "metrics[0]",
            "exactly one of metric_pct_change or metric_target",
        ),
    ],
)
def test_unreadable_values_name_their_field(fields: dict[str, str], field: str, words: str) -> None:
    form = DesignForm.from_form(_form(**fields))
    with pytest.raises(FormInvalid) as caught:
        form.to_design(FILTER_TYPES)
    assert any(f == field and words in m for f, m in caught.value.errors), caught.value.errors


def test_an_experiment_needs_a_name() -> None:
    form = DesignForm.from_form(_form(type="preassigned"))
    with pytest.raises(FormInvalid) as caught:
        form.to_experiment(FILTER_TYPES)
    assert [f for f, _ in caught.value.errors] == ["name"]


def test_an_experiment_keeps_the_previewed_seed() -> None:
    form = DesignForm.from_form(_form(name="Reminder", type="online"))
    spec = form.to_experiment(FILTER_TYPES)
    assert spec.seed == 7 and spec.type == "online" and spec.name == "Reminder"


def test_strata_come_from_the_checked_boxes() -> None:
    form = DesignForm.from_form(_form(), strata=["region", "", "age"])
    assert form.to_design(FILTER_TYPES).strata == ["region", "age"]
