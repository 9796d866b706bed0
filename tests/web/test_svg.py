from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from xngin.web.svg import LinearScale, LogScale, element, fmt_tick, log_ticks, nice_ticks, text


def test_linear_scale_maps_the_ends_and_the_middle_including_reversed_pixels() -> None:
    scale = LinearScale((0.0, 10.0), (272.0, 16.0))  # SVG y grows downward
    assert scale(0.0) == 272.0
    assert scale(10.0) == 16.0
    assert scale(5.0) == pytest.approx(144.0)


def test_linear_scale_puts_everything_in_the_middle_of_an_empty_domain() -> None:
    assert LinearScale((3.0, 3.0), (0.0, 100.0))(3.0) == 50.0


def test_log_scale_spaces_decades_evenly() -> None:
    scale = LogScale((100.0, 10_000.0), (0.0, 200.0))
    assert scale(100.0) == pytest.approx(0.0)
    assert scale(1000.0) == pytest.approx(100.0)
    assert scale(10_000.0) == pytest.approx(200.0)


@given(
    low=st.floats(-1e9, 1e9, allow_nan=False),
    width=st.floats(1e-6, 1e9, allow_nan=False),
    count=st.integers(1, 10),
)
def test_nice_ticks_cover_the_data_with_one_round_step(
    low: float, width: float, count: int
) -> None:
    # Data spans that floats can still resolve into ticks (a chart never sees narrower ones).
    assume(width > 1e-6 * max(1.0, abs(low)))
    high = low + width
    ticks = nice_ticks(low, high, count)
    step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    # Covering within a millionth of a step (invisible in a chart) is covering.
    assert ticks[0] <= low + 1e-6 * step
    assert ticks[-1] >= high - 1e-6 * step
    # Equal steps, up to the spacing of floats at the ticks' magnitude.
    noise = 4 * math.ulp(max(abs(ticks[0]), abs(ticks[-1]), 1.0))
    assert all(
        math.isclose(b - a, step, rel_tol=1e-9, abs_tol=2 * noise)
        for a, b in zip(ticks, ticks[1:], strict=False)
    )
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-5) for m in (1, 2, 2.5, 5, 10))
    assert len(ticks) <= 2 * count + 3


def test_nice_ticks_widen_a_single_value() -> None:
    ticks = nice_ticks(5.0, 5.0)
    assert ticks[0] < 5.0 < ticks[-1]


def test_log_ticks_use_1_2_5_within_three_decades_and_powers_of_ten_beyond() -> None:
    assert log_ticks(310, 31_000) == [200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000]
    assert log_ticks(50, 2_000_000) == [10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000]


def test_log_ticks_refuse_non_positive_bounds() -> None:
    with pytest.raises(ValueError, match="positive"):
        log_ticks(0, 10)


@pytest.mark.parametrize(
    ("value", "label"),
    [(0, "0"), (2.5, "2.5"), (1000, "1000"), (25_000, "25k"), (3_000_000, "3M"), (0.125, "0.125")],
)
def test_tick_labels_are_short(value: float, label: str) -> None:
    assert fmt_tick(value) == label


def test_elements_escape_attribute_values_and_text() -> None:
    markup = element("g", text(1, 2, "<script>alert(1)</script>"), data_label='"><x y="')
    parsed = ET.fromstring(markup)
    assert parsed.get("data-label") == '"><x y="'
    assert parsed[0].text == "<script>alert(1)</script>"
    assert "<script>" not in markup
