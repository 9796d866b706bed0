"""The confidence-sequence chart's geometry, read back from the SVG.

Expected pixels are worked out by hand from LINE_PLOT (640 x 320, data box x 64..624, y 272
(bottom) .. 16 (top)): the looks below have nice ticks equal to their own bounds, x 0..10 and
y -10..20, so the scales are plain proportions.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from xngin.web.charts import LINE_PLOT, SequenceLook, sequence_chart

SVG = "{http://www.w3.org/2000/svg}"
LOOKS = [
    SequenceLook(x=10.0, estimate=5.0, lower=0.0, upper=10.0),
    SequenceLook(x=0.0, estimate=5.0, lower=-10.0, upper=20.0),
    SequenceLook(x=5.0, estimate=math.nan, lower=-1.0, upper=1.0),  # skipped
]


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if css in (e.get("class") or "").split()]


def draw() -> ET.Element:
    chart = sequence_chart(LOOKS, title="t", description="d", x_label="days", y_label="effect")
    return ET.fromstring(str(chart))


def test_sequence_chart_places_each_look_at_its_scaled_coordinates() -> None:
    assert (LINE_PLOT.x0, LINE_PLOT.x1, LINE_PLOT.y0, LINE_PLOT.y1) == (64, 624, 272, 16)
    looks = by_class(draw(), "circle", "look")
    assert [float(c.get("data-x", "")) for c in looks] == [0.0, 10.0]
    assert [float(c.get("cx", "")) for c in looks] == pytest.approx([64.0, 624.0])
    # estimate 5 is halfway between -10 and 20
    assert [float(c.get("cy", "")) for c in looks] == pytest.approx([144.0, 144.0])
    assert [float(c.get("data-lower", "")) for c in looks] == [-10.0, 0.0]


def test_sequence_chart_band_runs_along_the_upper_then_back_along_the_lower_bounds() -> None:
    (band,) = by_class(draw(), "polygon", "sequence-band")
    corners = [float(v) for p in (band.get("points") or "").split() for v in p.split(",")]
    # upper 20 at x 0 is the top; upper 10 two thirds up; lower 0 one third up; lower -10 bottom
    expected = [64, 16, 624, 272 - 256 * 2 / 3, 624, 272 - 256 / 3, 64, 272]
    assert corners == pytest.approx(expected, abs=0.01)  # drawn to two decimals
    (zero,) = by_class(draw(), "line", "reference")
    assert float(zero.get("y1", "")) == pytest.approx(272 - 256 / 3, abs=0.01)


def test_sequence_chart_without_usable_looks_says_so() -> None:
    chart = sequence_chart(
        [SequenceLook(0.0, math.inf, 0.0, 1.0)], title="t", description="d", x_label="x",
        y_label="y",
    )  # fmt: skip
    assert "no looks yet" in str(chart)
