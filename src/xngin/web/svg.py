"""Small building blocks for charts drawn on the server as SVG: scales, ticks, escaped elements.

Charts are plain SVG text, so pages need no JavaScript to show them, print well, and can be
checked in tests by parsing the markup. Everything here is pure: numbers in, text out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "LinearScale",
    "LogScale",
    "Plot",
    "element",
    "fmt_tick",
    "log_ticks",
    "nice_ticks",
    "svg_document",
    "text",
]


@dataclass(frozen=True, slots=True)
class LinearScale:
    """Maps a data interval onto a pixel interval, linearly.

    Parameters
    ----------
    domain : (float, float)
        Data values at the two ends; they may be equal (everything maps to the middle).
    range : (float, float)
        Pixel positions of the two ends; may be reversed (SVG's y axis grows downward).
    """

    domain: tuple[float, float]
    range: tuple[float, float]

    def __call__(self, value: float) -> float:
        d0, d1 = self.domain
        r0, r1 = self.range
        if d1 == d0:
            return (r0 + r1) / 2
        return r0 + (value - d0) / (d1 - d0) * (r1 - r0)


@dataclass(frozen=True, slots=True)
class LogScale:
    """Maps a positive data interval onto pixels on a base-10 logarithmic scale.

    Parameters
    ----------
    domain : (float, float)
        Positive data values at the two ends.
    range : (float, float)
        Pixel positions of the two ends.
    """

    domain: tuple[float, float]
    range: tuple[float, float]

    def __call__(self, value: float) -> float:
        inner = LinearScale((math.log10(self.domain[0]), math.log10(self.domain[1])), self.range)
        return inner(math.log10(value))


@dataclass(frozen=True, slots=True)
class Plot:
    """A chart's canvas and the inner box where data are drawn (axes and labels sit outside)."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        """Pixel row of the bottom of the data box."""
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        """Pixel row of the top of the data box."""
        return self.top


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]``: steps of 1, 2 or 5 times a power of ten.

    Parameters
    ----------
    low, high : float
        The data interval, finite; ``low > high`` is swapped, ``low == high`` is widened.
    count : int
        About how many intervals to make (>= 1).

    Returns
    -------
    list of float
        Increasing ticks; the first is <= ``low`` and the last >= ``high``.
    """
    if low > high:
        low, high = high, low
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    # Multiples of the step, rounded to its decimals (2.5 needs one more than its power of
    # ten): keeps 0.30000000000000004 out of labels.
    decimals = max(0, -math.floor(math.log10(step)) + 2)
    return [round(k * step, decimals) for k in range(first, last + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks at 1, 2 and 5 times powers of ten spanning ``[low, high]`` (both > 0).

    With more than three decades only the powers of ten are kept, so labels do not collide.
    The first tick is <= ``low`` and the last >= ``high``.
    """
    if low <= 0 or high <= 0:
        raise ValueError(f"log ticks need positive bounds, got {low} and {high}")
    if low > high:
        low, high = high, low
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multiples = (1, 2, 5) if last - first <= 3 else (1,)
    ticks = [m * 10.0**k for k in range(first, last + 1) for m in multiples]
    below = [t for t in ticks if t <= low]
    above = [t for t in ticks if t >= high]
    start = below[-1] if below else ticks[0]
    stop = above[0] if above else ticks[-1]
    return [t for t in ticks if start <= t <= stop]


def fmt_tick(value: float) -> str:
    """A tick label: thousands as k/M, no trailing zeros."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if magnitude >= 10_000:
        return f"{value / 1_000:g}k"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.4g}"


def _attr(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return escape(str(value), quote=True)


def element(tag: str, body: str = "", /, **attrs: object) -> str:
    """One SVG element; attribute names use ``_`` for ``-`` (``stroke_width``), values escaped.

    ``class_`` gives the ``class`` attribute; attributes set to None are left out.
    """
    parts = [tag]
    for name, value in attrs.items():
        if value is None:
            continue
        key = name.rstrip("_").replace("_", "-")
        parts.append(f'{key}="{_attr(value)}"')
    opening = " ".join(parts)
    if body:
        return f"<{opening}>{body}</{tag}>"
    return f"<{opening}/>"


def text(x: float, y: float, label: str, **attrs: object) -> str:
    """A text element; ``label`` is escaped."""
    return element("text", escape(label), x=x, y=y, **attrs)


def svg_document(
    plot: Plot, body: Sequence[str], *, title: str, description: str, class_: str
) -> str:
    """Wrap elements in an accessible, responsive ``<svg>`` (scales to its container's width)."""
    return element(
        "svg",
        element("title", escape(title)) + element("desc", escape(description)) + "".join(body),
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {_attr(float(plot.width))} {_attr(float(plot.height))}",
        role="img",
        class_=class_,
        preserveAspectRatio="xMidYMid meet",
    )
