"""The charts' geometry, read back from the SVG: known data land on known pixels.

Expected positions are worked out by hand from the layouts (LINE_PLOT etc.): with data whose
nice ticks are the data's own bounds, a value halfway through the domain sits halfway through
the plot box.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xngin.web.charts import (
    BAR_LABEL_WIDTH,
    BAR_WIDTH,
    FOREST_LABEL_WIDTH,
    FOREST_VALUE_WIDTH,
    FOREST_WIDTH,
    LINE_PLOT,
    ForestRow,
    bar_chart,
    forest_plot,
    line_chart,
    range_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if css in (e.get("class") or "").split()]


def test_line_chart_marks_the_point_at_its_scaled_coordinates() -> None:
    root = parse(
        line_chart(
            [(0, 0), (10, 100)],
            title="t",
            description="d",
            x_label="x",
            y_label="y",
            marked=(5, 50),
            marked_label="design",
        )
    )
    (marked,) = by_class(root, "circle", "marked")
    plot = LINE_PLOT
    assert float(marked.get("cx", "")) == pytest.approx((plot.x0 + plot.x1) / 2)
    assert float(marked.get("cy", "")) == pytest.approx((plot.y0 + plot.y1) / 2)
    assert marked.get("data-x") == "5" and marked.get("data-y") == "50"


def test_line_chart_on_a_log_scale_puts_each_decade_the_same_distance_apart() -> None:
    root = parse(
        line_chart(
            [(1.0, 100.0), (2.0, 10_000.0)],
            title="t",
            description="d",
            x_label="effect",
            y_label="n",
            marked=(1.5, 1000.0),
            log_y=True,
        )
    )
    (marked,) = by_class(root, "circle", "marked")
    plot = LINE_PLOT
    # 1000 is halfway between 100 and 10,000 in log10; 1.5 halfway between the ticks 1 and 2.
    assert float(marked.get("cy", "")) == pytest.approx((plot.y0 + plot.y1) / 2)
    assert float(marked.get("cx", "")) == pytest.approx((plot.x0 + plot.x1) / 2)


def test_line_chart_draws_the_reference_line_at_its_value() -> None:
    root = parse(
        line_chart(
            [(0, 0), (10, 100)],
            title="t",
            description="d",
            x_label="x",
            y_label="y",
            reference_y=25,
            reference_label="available",
        )
    )
    (line,) = by_class(root, "line", "reference")
    expected = LINE_PLOT.y0 - 0.25 * (LINE_PLOT.y0 - LINE_PLOT.y1)
    assert float(line.get("y1", "")) == pytest.approx(expected)
    assert float(line.get("y2", "")) == pytest.approx(expected)


def test_line_chart_skips_points_a_log_scale_cannot_show() -> None:
    root = parse(
        line_chart(
            [(1, 0), (2, float("nan")), (3, 10), (4, 100)],
            title="t",
            description="d",
            x_label="x",
            y_label="y",
            log_y=True,
        )
    )
    (curve,) = by_class(root, "polyline", "curve")
    assert len(curve.get("points", "").split()) == 2


def test_line_chart_without_data_says_so() -> None:
    root = parse(line_chart([], title="t", description="d", x_label="x", y_label="y"))
    assert "nothing to draw" in "".join(root.itertext())


def test_bar_lengths_are_proportional_to_the_values() -> None:
    root = parse(bar_chart([("a", 10), ("b", 40), ("c", 0)], title="t", description="d"))
    bars = by_class(root, "rect", "bar")
    widths = [float(b.get("width", "")) for b in bars]
    full = BAR_WIDTH - BAR_LABEL_WIDTH - 64
    assert widths == pytest.approx([full / 4, full, 0.0])
    assert [b.get("data-label") for b in bars] == ["a", "b", "c"]


def test_range_chart_spans_minimum_to_maximum() -> None:
    root = parse(range_chart(0.0, 50.0, title="t", description="d", width=524))
    (bar,) = by_class(root, "rect", "range")
    # Ticks 0..50: the range fills the box between the 24-pixel margins.
    assert float(bar.get("x", "")) == pytest.approx(24)
    assert float(bar.get("width", "")) == pytest.approx(524 - 48)


def test_forest_plot_places_estimates_intervals_and_zero() -> None:
    rows = [
        ForestRow("sms", estimate=1.0, lower=0.5, upper=1.5, significant=True),
        ForestRow("call", estimate=-1.0, lower=-2.0, upper=0.0),
    ]
    root = parse(forest_plot(rows, title="t", description="d"))
    # Data -2..1.5 with zero -> ticks -2..2 over the box between the label and value columns.
    left, right = FOREST_LABEL_WIDTH, FOREST_WIDTH - FOREST_VALUE_WIDTH

    def x(value: float) -> float:
        return left + (value + 2) / 4 * (right - left)

    (zero,) = by_class(root, "line", "zero")
    assert float(zero.get("x1", "")) == pytest.approx(x(0))
    intervals = by_class(root, "line", "interval")
    assert [float(i.get("x1", "")) for i in intervals] == pytest.approx([x(0.5), x(-2)])
    assert [float(i.get("x2", "")) for i in intervals] == pytest.approx([x(1.5), x(0)])
    estimates = by_class(root, "rect", "estimate")
    centres = [float(e.get("x", "")) + float(e.get("width", "")) / 2 for e in estimates]
    assert centres == pytest.approx([x(1.0), x(-1.0)])
    assert [e.get("class") for e in estimates] == [
        "estimate significant",
        "estimate not-significant",
    ]


def test_forest_plot_names_rows_it_cannot_draw() -> None:
    rows = [ForestRow("sms", None, None, None, note="too few participants")]
    root = parse(forest_plot(rows, title="t", description="d"))
    assert not by_class(root, "rect", "estimate")
    assert "too few participants" in "".join(root.itertext())


def test_chart_labels_are_escaped() -> None:
    markup = str(bar_chart([("<img src=x onerror=alert(1)>", 3)], title="<t>", description="d"))
    assert "<img" not in markup
    root = parse(markup)
    assert by_class(root, "rect", "bar")[0].get("data-label") == "<img src=x onerror=alert(1)>"
