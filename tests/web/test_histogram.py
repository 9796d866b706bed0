"""Histograms on the participants page: the chart's geometry, and the page drawing it per field.

Positions are worked out by hand from the layout (HISTOGRAM_HEIGHT, HISTOGRAM_MARGINS) for data
whose nice ticks are the data's own bounds; the page's counts are checked with numpy.histogram
on the demo generator's rows.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from xngin.web.charts import HISTOGRAM_HEIGHT, HISTOGRAM_MARGINS, histogram_chart
from xngin.web.routes.participants import with_histogram
from xngin.web.views import FieldView

SVG = "{http://www.w3.org/2000/svg}"


def by_class(markup: str, tag: str, css: str) -> list[ET.Element]:
    root = ET.fromstring(str(markup))
    return [e for e in root.iter(SVG + tag) if css in (e.get("class") or "").split()]


def test_histogram_bars_span_their_bins_and_rise_with_their_counts() -> None:
    # Edges 0..60 have nice ticks 0, 20, 40, 60 and counts up to 8 ticks 0, 5, 10: the bins
    # divide the box evenly and a count c rises c / 10 of the box's height (SVG keeps 2 decimals).
    edges = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    counts = [1, 2, 4, 0, 8, 2]
    bars = by_class(histogram_chart(edges, counts, title="t", description="d"), "rect", "bar")
    x0, x1 = HISTOGRAM_MARGINS["left"], 640 - HISTOGRAM_MARGINS["right"]
    y0 = HISTOGRAM_HEIGHT - HISTOGRAM_MARGINS["bottom"]
    box = y0 - HISTOGRAM_MARGINS["top"]
    assert [float(b.get("x", "")) for b in bars] == pytest.approx(
        [x0 + (x1 - x0) * i / 6 for i in range(6)], abs=0.01
    )
    assert [float(b.get("width", "")) for b in bars] == pytest.approx([(x1 - x0) / 6] * 6, abs=0.01)
    assert [float(b.get("height", "")) for b in bars] == pytest.approx(
        [box * c / 10 for c in counts], abs=0.01
    )
    assert [float(b.get("y", "")) + float(b.get("height", "")) for b in bars] == pytest.approx(
        [y0] * 6, abs=0.01
    )
    assert [int(b.get("data-count", "")) for b in bars] == counts
    assert [float(b.get("data-lower", "")) for b in bars] == edges[:-1]
    (extent,) = by_class(
        histogram_chart(edges, counts, title="t", description="d"), "rect", "range"
    )
    assert (float(extent.get("data-min", "")), float(extent.get("data-max", ""))) == (0.0, 60.0)


def test_a_constant_field_draws_one_narrow_bar_at_its_value() -> None:
    (bar,) = by_class(histogram_chart([5.0, 5.0], [12], title="t", description="d"), "rect", "bar")
    assert float(bar.get("width", "")) == pytest.approx(2.0)
    assert bar.get("data-count") == "12"


@pytest.mark.parametrize(
    ("edges", "counts"), [([], []), ([0.0, 1.0], [1, 2]), ([0.0, float("nan")], [3])]
)
def test_a_histogram_it_cannot_draw_says_so(edges: list[float], counts: list[int]) -> None:
    chart = histogram_chart(edges, counts, title="t", description="d")
    assert not by_class(chart, "rect", "bar")
    assert "no values" in str(chart)


def test_dates_are_labelled_as_dates_on_the_axis() -> None:
    view = FieldView("enrolled_on", "date", "", ("filter",), "", None)
    # 19358 days after 1970-01-01 is 2023-01-01.
    values = {"histogram": {"edges": [19358.0, 19458.0], "counts": [3], "unit": "epoch_days"}}
    chart = str(with_histogram(view, values).chart)
    assert "2023-01-01" in chart


def test_a_field_without_a_histogram_keeps_its_chart() -> None:
    view = FieldView("region", "string", "", ("filter",), "", None)
    assert with_histogram(view, {"distinct": [], "complete": True}) is view
    assert with_histogram(view, None) is view


def test_the_participant_type_page_draws_each_numeric_fields_histogram(
    signed_in: TestClient, people: pd.DataFrame, read_page: Callable[[str], Any]
) -> None:
    response = signed_in.get("/ui/participants/beneficiaries")
    assert response.status_code == 200
    page = read_page(response.text)
    for name in ("age", "monthly_income"):
        card = page.find("article", id=f"field-{name}")
        (svg,) = page.within(card, "svg")
        bars = page.within(svg, "rect", class_="bar")
        expected, edges = np.histogram(people[name].dropna(), bins=20)
        assert [int(b.get("data-count") or -1) for b in bars] == expected.tolist(), name
        assert [float(b.get("data-lower") or "nan") for b in bars] == pytest.approx(
            edges[:-1].tolist()
        )
    # Categorical fields keep their bars of counts per value, without bins.
    region = page.within(page.find("article", id="field-region"), "rect", class_="bar")
    assert region and all(b.get("data-count") is None for b in region)
