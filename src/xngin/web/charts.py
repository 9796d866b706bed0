"""The UI's charts as SVG text: a line with a marked point, bars, a range, a forest plot.

Each function takes plain numbers and labels and returns an ``<svg>`` element (as
:class:`markupsafe.Markup`, ready for a template). Layouts are fixed per chart kind
(:data:`LINE_PLOT`, ...) and the SVG scales to its container, so the same chart fits a phone and a
desktop. Data elements carry classes (``curve``, ``marked``, ``bar``, ``estimate``, ``interval``)
and ``data-*`` values, which the stylesheet colors and the tests read back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from xngin.web.svg import (
    LinearScale,
    LogScale,
    Plot,
    element,
    fmt_tick,
    log_ticks,
    nice_ticks,
    svg_document,
    text,
)

__all__ = [
    "BAR_ROW_HEIGHT",
    "FOREST_ROW_HEIGHT",
    "LINE_PLOT",
    "ForestRow",
    "SequenceLook",
    "bar_chart",
    "forest_plot",
    "histogram_chart",
    "line_chart",
    "range_chart",
    "sequence_chart",
]

#: Canvas of :func:`line_chart`: room on the left for n labels, below for the x axis title.
LINE_PLOT = Plot(width=640, height=320, left=64, right=16, top=16, bottom=48)
#: Height of one bar in :func:`bar_chart`, label column width and canvas width.
BAR_ROW_HEIGHT = 26
BAR_LABEL_WIDTH = 150
BAR_WIDTH = 640
#: Height of one arm in :func:`forest_plot`, and its label and value columns.
FOREST_ROW_HEIGHT = 36
FOREST_LABEL_WIDTH = 140
FOREST_VALUE_WIDTH = 190
FOREST_WIDTH = 640


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def line_chart(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
    marked: tuple[float, float] | None = None,
    marked_label: str = "",
    reference_y: float | None = None,
    reference_label: str = "",
    log_y: bool = False,
    y_range: tuple[float, float] | None = None,
) -> Markup:
    """A line through ``points`` with one marked point and an optional horizontal reference.

    Used for the power curve (required n against effect, log scale, the design's effect marked,
    the available n as reference) and for p-values over time.

    Parameters
    ----------
    points : sequence of (x, y)
        Drawn in x order; non-finite points (and y <= 0 with ``log_y``) are skipped.
    title, description : str
        Read by screen readers (``<title>``, ``<desc>``).
    x_label, y_label : str
        Axis titles.
    marked : (x, y), optional
        Drawn as a circle of class ``marked`` with ``data-x``/``data-y``, and included in the
        axes' extent.
    marked_label, reference_label : str
        Text next to the marked point and the reference line.
    reference_y : float, optional
        A dashed horizontal line (class ``reference``), included in the y extent.
    log_y : bool
        Base-10 logarithmic y axis (all y must be > 0).
    y_range : (float, float), optional
        Fixed y extent (e.g. 0 to 1 for p-values) instead of one fitted to the data.

    Returns
    -------
    Markup
        The ``<svg>`` element.
    """
    plot = LINE_PLOT

    def usable(x: float, y: float) -> bool:
        return _finite(x, y) and (y > 0 or not log_y)

    data = sorted((x, y) for x, y in points if usable(x, y))
    xs = [x for x, _ in data]
    ys = [y for _, y in data]
    if marked is not None and usable(*marked):
        xs.append(marked[0])
        ys.append(marked[1])
    else:
        marked = None
    if reference_y is not None and usable(0.0, reference_y):
        ys.append(reference_y)
    else:
        reference_y = None
    if not xs:
        return _empty(plot, title=title, description=description, message="nothing to draw")

    x_ticks = nice_ticks(min(xs), max(xs))
    if y_range is not None:
        y_ticks = nice_ticks(*y_range)
    elif log_y:
        y_ticks = log_ticks(min(ys), max(ys))
    else:
        y_ticks = nice_ticks(min(ys), max(ys))
    sx = LinearScale((x_ticks[0], x_ticks[-1]), (plot.x0, plot.x1))
    y_domain = (y_ticks[0], y_ticks[-1])
    sy: LinearScale | LogScale = (
        LogScale(y_domain, (plot.y0, plot.y1))
        if log_y and y_range is None
        else LinearScale(y_domain, (plot.y0, plot.y1))
    )

    body = [_axes(plot, x_ticks, y_ticks, sx, sy, x_label=x_label, y_label=y_label)]
    if reference_y is not None:
        ry = sy(reference_y)
        body.append(
            element("line", x1=plot.x0, y1=ry, x2=plot.x1, y2=ry, class_="reference")
            + text(plot.x1 - 4, ry - 5, reference_label, class_="label", text_anchor="end")
        )
    if data:
        path = " ".join(f"{sx(x):.2f},{sy(y):.2f}" for x, y in data)
        body.append(element("polyline", points=path, class_="curve", fill="none"))
    if marked is not None:
        mx, my = sx(marked[0]), sy(marked[1])
        anchor = "end" if mx > (plot.x0 + plot.x1) / 2 else "start"
        offset = -8 if anchor == "end" else 8
        body.append(
            element(
                "circle",
                element("title", escape(marked_label)),
                cx=mx,
                cy=my,
                r=5,
                class_="marked",
                data_x=repr(marked[0]),
                data_y=repr(marked[1]),
            )
            + text(
                mx + offset, my - 8, marked_label, class_="label marked-label", text_anchor=anchor
            )
        )
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))


def _axes(
    plot: Plot,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    sx: LinearScale,
    sy: LinearScale | LogScale,
    *,
    x_label: str,
    y_label: str,
) -> str:
    parts = []
    for tick in y_ticks:
        y = sy(tick)
        parts.append(element("line", x1=plot.x0, y1=y, x2=plot.x1, y2=y, class_="grid"))
        parts.append(text(plot.x0 - 6, y + 4, fmt_tick(tick), class_="tick", text_anchor="end"))
    for tick in x_ticks:
        x = sx(tick)
        parts.append(element("line", x1=x, y1=plot.y0, x2=x, y2=plot.y0 + 4, class_="axis"))
        parts.append(text(x, plot.y0 + 18, fmt_tick(tick), class_="tick", text_anchor="middle"))
    parts.append(element("line", x1=plot.x0, y1=plot.y0, x2=plot.x1, y2=plot.y0, class_="axis"))
    parts.append(element("line", x1=plot.x0, y1=plot.y0, x2=plot.x0, y2=plot.y1, class_="axis"))
    parts.append(
        text((plot.x0 + plot.x1) / 2, plot.height - 8, x_label, class_="axis-title",
             text_anchor="middle")
    )  # fmt: skip
    parts.append(
        text(14, (plot.y0 + plot.y1) / 2, y_label, class_="axis-title", text_anchor="middle",
             transform=f"rotate(-90 14 {(plot.y0 + plot.y1) / 2:.2f})")
    )  # fmt: skip
    return "".join(parts)


def _empty(plot: Plot, *, title: str, description: str, message: str) -> Markup:
    body = [text(plot.width / 2, plot.height / 2, message, class_="empty", text_anchor="middle")]
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    description: str,
    value_format: str = "{:,.0f}",
    max_value: float | None = None,
    width: float = BAR_WIDTH,
    label_width: float = BAR_LABEL_WIDTH,
) -> Markup:
    """Horizontal bars, one per label, longest for the largest value (counts, arm sizes).

    Parameters
    ----------
    bars : sequence of (label, value)
        In display order; values >= 0 (negative or non-finite values draw as empty bars).
    title, description : str
        Read by screen readers.
    value_format : str
        ``str.format`` pattern for the number printed after each bar.
    max_value : float, optional
        Value of a full-width bar (default: the largest value), so charts can share a scale.
    width, label_width : float
        Canvas width and the part of it kept for labels; a narrower canvas shows larger text
        in a narrow column (the SVG scales to fit).

    Returns
    -------
    Markup
        The ``<svg>`` element; each bar is a ``rect`` of class ``bar`` with ``data-value``.
    """
    height = max(1, len(bars)) * BAR_ROW_HEIGHT + 8
    plot = Plot(width=width, height=height, left=label_width, right=64, top=4, bottom=4)
    if not bars:
        return _empty(plot, title=title, description=description, message="no values")
    values = [v if _finite(v) and v > 0 else 0.0 for _, v in bars]
    top = max_value if max_value is not None and max_value > 0 else max(values) or 1.0
    scale = LinearScale((0.0, top), (plot.x0, plot.x1))
    body = []
    for i, ((label, raw), value) in enumerate(zip(bars, values, strict=True)):
        y = plot.top + i * BAR_ROW_HEIGHT
        room = max(6, int(label_width / 7))
        short = label if len(label) <= room else label[: room - 1] + "…"
        body.append(
            text(plot.x0 - 8, y + BAR_ROW_HEIGHT * 0.65, short, class_="tick", text_anchor="end")
            + element(
                "rect",
                element("title", escape(f"{label}: {value_format.format(raw)}")),
                x=plot.x0,
                y=y + 4,
                width=max(scale(value) - plot.x0, 0.0),
                height=BAR_ROW_HEIGHT - 8,
                class_="bar",
                data_label=label,
                data_value=repr(raw),
            )
            + text(
                scale(value) + 6,
                y + BAR_ROW_HEIGHT * 0.65,
                value_format.format(raw) if _finite(raw) else "–",
                class_="value",
            )
        )
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))


def range_chart(
    minimum: float,
    maximum: float,
    *,
    title: str,
    description: str,
    unit_label: str = "",
    width: float = 640,
) -> Markup:
    """A numeric field's range: a bar from the smallest to the largest value on a nice axis.

    Returns
    -------
    Markup
        The ``<svg>``; the range is a ``rect`` of class ``range`` with ``data-min``/``data-max``.
    """
    plot = Plot(width=width, height=64, left=24, right=24, top=8, bottom=28)
    if not _finite(minimum, maximum):
        return _empty(plot, title=title, description=description, message="no values")
    ticks = nice_ticks(minimum, maximum)
    scale = LinearScale((ticks[0], ticks[-1]), (plot.x0, plot.x1))
    body = []
    for tick in ticks:
        x = scale(tick)
        body.append(element("line", x1=x, y1=plot.y0, x2=x, y2=plot.y0 + 4, class_="axis"))
        body.append(text(x, plot.y0 + 18, fmt_tick(tick), class_="tick", text_anchor="middle"))
    body.append(element("line", x1=plot.x0, y1=plot.y0, x2=plot.x1, y2=plot.y0, class_="axis"))
    left, right = scale(minimum), scale(maximum)
    body.append(
        element(
            "rect",
            x=left,
            y=plot.top + 6,
            width=max(right - left, 2.0),
            height=plot.y0 - plot.top - 12,
            class_="range",
            data_min=repr(minimum),
            data_max=repr(maximum),
        )
    )
    if unit_label:
        body.append(text(plot.x1, plot.top + 4, unit_label, class_="label", text_anchor="end"))
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One comparison in a forest plot: an estimate with its interval (None: not estimable)."""

    label: str
    estimate: float | None
    lower: float | None
    upper: float | None
    significant: bool = False
    note: str = ""
    #: An always-valid interval (confidence sequence), drawn as a thin band behind the interval.
    sequence_lower: float | None = None
    sequence_upper: float | None = None


def forest_plot(
    rows: Sequence[ForestRow],
    *,
    title: str,
    description: str,
    x_label: str = "effect against the baseline arm",
    value_format: str = "{:+.3g}",
) -> Markup:
    """Estimates with confidence intervals, one row per arm, around a vertical line at zero.

    Parameters
    ----------
    rows : sequence of ForestRow
        In display order. Rows without a finite estimate and interval show their ``note``.
    title, description : str
        Read by screen readers.
    x_label : str
        Axis title.
    value_format : str
        ``str.format`` pattern for the estimate and bounds in the value column.

    Returns
    -------
    Markup
        The ``<svg>``: per row a ``line`` of class ``interval`` (``data-lower``/``data-upper``)
        and a ``rect`` of class ``estimate`` (``data-estimate``) centred on the estimate, and
        when given a wider ``line`` of class ``sequence`` for the always-valid interval; the
        zero line has class ``zero``.
    """
    height = max(1, len(rows)) * FOREST_ROW_HEIGHT + 44
    plot = Plot(
        width=FOREST_WIDTH,
        height=height,
        left=FOREST_LABEL_WIDTH,
        right=FOREST_VALUE_WIDTH,
        top=8,
        bottom=36,
    )
    drawable = [r for r in rows if _finite(r.estimate, r.lower, r.upper)]
    extent = [0.0]
    for row in drawable:
        extent += [row.lower or 0.0, row.upper or 0.0, row.estimate or 0.0]
        if _finite(row.sequence_lower, row.sequence_upper):
            extent += [row.sequence_lower or 0.0, row.sequence_upper or 0.0]
    ticks = nice_ticks(min(extent), max(extent), count=4)
    scale = LinearScale((ticks[0], ticks[-1]), (plot.x0, plot.x1))
    body = []
    for tick in ticks:
        x = scale(tick)
        body.append(element("line", x1=x, y1=plot.y1, x2=x, y2=plot.y0, class_="grid"))
        body.append(text(x, plot.y0 + 16, fmt_tick(tick), class_="tick", text_anchor="middle"))
    zero = scale(0.0)
    body.append(element("line", x1=zero, y1=plot.y1, x2=zero, y2=plot.y0, class_="zero"))
    body.append(
        text((plot.x0 + plot.x1) / 2, plot.height - 6, x_label, class_="axis-title",
             text_anchor="middle")
    )  # fmt: skip
    for i, row in enumerate(rows):
        cy = plot.top + i * FOREST_ROW_HEIGHT + FOREST_ROW_HEIGHT / 2
        label = row.label if len(row.label) <= 18 else row.label[:17] + "…"
        body.append(text(plot.x0 - 8, cy + 4, label, class_="tick", text_anchor="end"))
        if row.estimate is None or row.lower is None or row.upper is None or row not in drawable:
            body.append(text(plot.x0 + 4, cy + 4, row.note or "no estimate", class_="empty"))
            continue
        css = "significant" if row.significant else "not-significant"
        x_est = scale(row.estimate)
        if row.sequence_lower is not None and row.sequence_upper is not None:
            if _finite(row.sequence_lower, row.sequence_upper):
                body.append(
                    element(
                        "line",
                        x1=scale(row.sequence_lower),
                        y1=cy,
                        x2=scale(row.sequence_upper),
                        y2=cy,
                        class_="sequence",
                        data_lower=repr(row.sequence_lower),
                        data_upper=repr(row.sequence_upper),
                    )
                )
        body.append(
            element(
                "line",
                x1=scale(row.lower),
                y1=cy,
                x2=scale(row.upper),
                y2=cy,
                class_=f"interval {css}",
                data_lower=repr(row.lower),
                data_upper=repr(row.upper),
            )
            + element(
                "rect",
                element(
                    "title",
                    escape(
                        f"{row.label}: {value_format.format(row.estimate)} "
                        f"[{value_format.format(row.lower)}, {value_format.format(row.upper)}]"
                    ),
                ),
                x=x_est - 5,
                y=cy - 5,
                width=10,
                height=10,
                class_=f"estimate {css}",
                data_estimate=repr(row.estimate),
            )
            + text(
                plot.x1 + 8,
                cy + 4,
                f"{value_format.format(row.estimate)} "
                f"[{value_format.format(row.lower)}, {value_format.format(row.upper)}]",
                class_="value",
            )
        )
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))


#: Canvas of :func:`histogram_chart`: room on the left for count labels, below for the x ticks.
HISTOGRAM_HEIGHT = 150
HISTOGRAM_MARGINS = {"left": 44, "right": 16, "top": 8, "bottom": 34}


def histogram_chart(
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    title: str,
    description: str,
    width: float = 640,
    tick_format: Callable[[float], str] = fmt_tick,
) -> Markup:
    """A numeric field's distribution: one bar per bin, its height the participants in it.

    Parameters
    ----------
    edges : sequence of float
        Bin edges, increasing, one more than ``counts`` (``numpy.histogram``'s convention). Equal
        first and last edges (a constant field) draw one narrow bar at that value.
    counts : sequence of int
        Participants per bin (>= 0).
    title, description : str
        Read by screen readers.
    width : float
        Canvas width (the SVG scales to its container).
    tick_format : callable
        Label of an x tick from its value (e.g. days since 1970 as a date).

    Returns
    -------
    Markup
        The ``<svg>``; each bin is a ``rect`` of class ``bar`` with ``data-lower``,
        ``data-upper`` and ``data-count``; under the bars, a ``rect`` of class ``range`` with
        ``data-min``/``data-max`` marks the extent of the values on the axis.
    """
    plot = Plot(width=width, height=HISTOGRAM_HEIGHT, **HISTOGRAM_MARGINS)
    if (
        not counts
        or len(edges) != len(counts) + 1
        or not _finite(*edges)
        or any(b < a for a, b in zip(edges, edges[1:], strict=False))
    ):
        return _empty(plot, title=title, description=description, message="no values")
    low, high = float(edges[0]), float(edges[-1])
    x_ticks = nice_ticks(low, high, count=4)
    sx = LinearScale((x_ticks[0], x_ticks[-1]), (plot.x0, plot.x1))
    y_ticks = nice_ticks(0.0, float(max(max(counts), 1)), count=3)
    sy = LinearScale((y_ticks[0], y_ticks[-1]), (plot.y0, plot.y1))
    body = []
    for tick in y_ticks:
        y = sy(tick)
        body.append(element("line", x1=plot.x0, y1=y, x2=plot.x1, y2=y, class_="grid"))
        body.append(text(plot.x0 - 6, y + 4, fmt_tick(tick), class_="tick", text_anchor="end"))
    for tick in x_ticks:
        x = sx(tick)
        body.append(element("line", x1=x, y1=plot.y0, x2=x, y2=plot.y0 + 4, class_="axis"))
        body.append(text(x, plot.y0 + 18, tick_format(tick), class_="tick", text_anchor="middle"))
    for i, count in enumerate(counts):
        lower, upper = float(edges[i]), float(edges[i + 1])
        left, right = sx(lower), sx(upper)
        if right - left < 2:  # a constant field's one bin would have no width
            left, right = (left + right) / 2 - 1, (left + right) / 2 + 1
        top = sy(max(count, 0))
        body.append(
            element(
                "rect",
                element(
                    "title",
                    escape(f"{tick_format(lower)} to {tick_format(upper)}: {count:,}"),
                ),
                x=left,
                y=top,
                width=right - left,
                height=plot.y0 - top,
                class_="bar",
                data_lower=repr(lower),
                data_upper=repr(upper),
                data_count=str(count),
            )
        )
    body.append(element("line", x1=plot.x0, y1=plot.y0, x2=plot.x1, y2=plot.y0, class_="axis"))
    # The values' extent as a strip on the axis: the nice ticks may reach past it.
    body.append(
        element(
            "rect",
            x=sx(low),
            y=plot.y0 + 1,
            width=max(sx(high) - sx(low), 2.0),
            height=3,
            class_="range",
            data_min=repr(low),
            data_max=repr(high),
        )
    )
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))


#: Fill of the confidence-sequence band; inline so the chart needs no new stylesheet rule.
SEQUENCE_BAND_FILL = "#c9d3e6"


@dataclass(frozen=True, slots=True)
class SequenceLook:
    """One look of a running comparison: when (``x``), its effect and its confidence sequence."""

    x: float
    estimate: float
    lower: float
    upper: float


def sequence_chart(
    looks: Sequence[SequenceLook],
    *,
    title: str,
    description: str,
    x_label: str,
    y_label: str,
) -> Markup:
    """The confidence sequence of an effect over time: a band, the estimate, and zero.

    The band narrows as looks accumulate (each look's interval is intersected with the earlier
    ones), so where it leaves zero the effect is established however often it was looked at.

    Parameters
    ----------
    looks : sequence of SequenceLook
        Drawn in ``x`` order; looks with a non-finite value are skipped.
    title, description : str
        Read by screen readers (``<title>``, ``<desc>``).
    x_label, y_label : str
        Axis titles.

    Returns
    -------
    Markup
        The ``<svg>``: the band is a ``polygon`` of class ``sequence-band``, the estimate a
        ``polyline`` of class ``curve``, each look a ``circle`` of class ``look`` with
        ``data-x``, ``data-estimate``, ``data-lower`` and ``data-upper``, and zero a dashed line
        of class ``reference``.
    """
    plot = LINE_PLOT
    data = sorted(
        (look for look in looks if _finite(look.x, look.estimate, look.lower, look.upper)),
        key=lambda look: look.x,
    )
    if not data:
        return _empty(plot, title=title, description=description, message="no looks yet")
    x_ticks = nice_ticks(min(d.x for d in data), max(d.x for d in data))
    values = [0.0, *(d.lower for d in data), *(d.upper for d in data)]
    y_ticks = nice_ticks(min(values), max(values))
    sx = LinearScale((x_ticks[0], x_ticks[-1]), (plot.x0, plot.x1))
    sy = LinearScale((y_ticks[0], y_ticks[-1]), (plot.y0, plot.y1))
    body = [_axes(plot, x_ticks, y_ticks, sx, sy, x_label=x_label, y_label=y_label)]
    edge = [(sx(d.x), sy(d.upper)) for d in data] + [(sx(d.x), sy(d.lower)) for d in data[::-1]]
    body.append(
        element(
            "polygon",
            points=" ".join(f"{x:.2f},{y:.2f}" for x, y in edge),
            class_="sequence-band",
            fill=SEQUENCE_BAND_FILL,
            fill_opacity="0.7",
        )
    )
    zero = sy(0.0)
    body.append(
        element("line", x1=plot.x0, y1=zero, x2=plot.x1, y2=zero, class_="reference")
        + text(plot.x1 - 4, zero - 5, "no effect", class_="label", text_anchor="end")
    )
    path = " ".join(f"{sx(d.x):.2f},{sy(d.estimate):.2f}" for d in data)
    body.append(element("polyline", points=path, class_="curve", fill="none"))
    for d in data:
        body.append(
            element(
                "circle",
                element("title", escape(f"{d.estimate:.4g} [{d.lower:.4g}, {d.upper:.4g}]")),
                cx=sx(d.x),
                cy=sy(d.estimate),
                r=3,
                class_="look",
                data_x=repr(d.x),
                data_estimate=repr(d.estimate),
                data_lower=repr(d.lower),
                data_upper=repr(d.upper),
            )
        )
    return Markup(svg_document(plot, body, title=title, description=description, class_="chart"))
