from __future__ import annotations

from xngin.web.errors import input_id, place_errors

INPUTS = [
    "name",
    "filters[0].field_name",
    "filters[0].relation",
    "filters[0].value",
    "arms[0].arm_name",
    "arms[0].weight",
    "metrics[0].field_name",
    "metrics[0].metric_pct_change",
    "strata",
    "alpha",
]
SECTIONS = ["filters", "arms", "metrics", "strata"]


def test_an_error_goes_next_to_the_input_its_field_names() -> None:
    placed = place_errors([("filters[0].value", "bad")], input_names=INPUTS, sections=SECTIONS)
    assert placed.for_input("filters[0].value") == ["bad"]
    assert not placed.summary


def test_an_error_on_a_whole_row_goes_to_the_rows_first_input() -> None:
    placed = place_errors([("metrics[0]", "one of")], input_names=INPUTS, sections=SECTIONS)
    assert placed.for_input("metrics[0].field_name") == ["one of"]


def test_an_error_on_one_of_several_checked_values_goes_to_their_input() -> None:
    placed = place_errors([("strata[2]", "not strata")], input_names=INPUTS, sections=SECTIONS)
    assert placed.for_input("strata") == ["not strata"]


def test_an_error_on_a_list_goes_to_its_section() -> None:
    placed = place_errors([("arms", "two needed")], input_names=INPUTS, sections=SECTIONS)
    assert placed.for_section("arms") == ["two needed"]
    placed = place_errors([("arms[3].weight", "x")], input_names=INPUTS, sections=SECTIONS)
    assert placed.for_section("arms") == ["x"]


def test_errors_without_an_input_are_listed_above_the_form() -> None:
    placed = place_errors(
        [(None, "warehouse down"), ("participant_type", "unknown")],
        input_names=INPUTS,
        sections=SECTIONS,
    )
    assert placed.summary == ["warehouse down", "participant_type: unknown"]
    assert placed.count() == 2 and bool(placed)


def test_input_ids_are_valid_html_ids() -> None:
    assert input_id("filters[0].value") == "f-filters-0-value"
    assert input_id("alpha") == "f-alpha"
