"""What the participant and design pages show, shaped from the services' answers.

Functions here take service results (plain dicts and dataclasses) and return small dicts for the
templates, with their charts drawn. No queries and no decisions: those stay in the services.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from xngin.web.charts import bar_chart, line_chart, range_chart
from xngin.web.rendering import fmt_number

__all__ = [
    "FieldView",
    "arm_sizes_chart",
    "balance_rows",
    "field_view",
    "power_view",
    "value_hint",
]

#: Categorical values drawn per field; the rest are summed into "other values".
TOP_VALUES = 12
#: Canvas width of the charts in field cards (narrow columns: a small canvas keeps text legible).
CARD_CHART_WIDTH = 380


@dataclass(frozen=True, slots=True)
class FieldView:
    """One column of a participant type, for the fields page."""

    field_name: str
    data_type: str
    description: str
    roles: tuple[str, ...]
    summary: str
    chart: Markup | None


def _roles(row: Any) -> tuple[str, ...]:
    flags = (
        ("is_unique_id", "unique ID"),
        ("is_filter", "filter"),
        ("is_metric", "metric"),
        ("is_strata", "strata"),
    )
    return tuple(label for flag, label in flags if getattr(row, flag, False))


def _label(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def field_view(row: Any, values: Mapping[str, Any] | None) -> FieldView:
    """A sheet row with its values: counts drawn for categories, the range for numbers.

    Parameters
    ----------
    row : SheetRow
        The config sheet's row.
    values : mapping, optional
        ``describe_fields``' values for the field (None for fields with no role but the ID).
    """
    name = row.field_name
    chart: Markup | None = None
    summary = ""
    if values and "distinct" in values:
        distinct = list(values["distinct"])
        shown = distinct[:TOP_VALUES]
        bars = [(_label(v["value"]), float(v["count"])) for v in shown]
        rest = sum(int(v["count"]) for v in distinct[TOP_VALUES:])
        if rest:
            bars.append((f"{len(distinct) - TOP_VALUES} other values", float(rest)))
        total = sum(int(v["count"]) for v in distinct)
        summary = f"{len(distinct):,} distinct values" + ("" if values.get("complete") else "+")
        summary += f" over {total:,} participants"
        chart = bar_chart(
            bars,
            title=f"Participants per value of {name}",
            description=f"{summary}; the most common first.",
            width=CARD_CHART_WIDTH,
            label_width=110,
        )
    elif values and "min" in values:
        low, high, nulls = values.get("min"), values.get("max"), values.get("null_count", 0)
        summary = f"from {fmt_number(low)} to {fmt_number(high)}; {fmt_number(nulls)} missing"
        if isinstance(low, int | float) and isinstance(high, int | float):
            chart = range_chart(
                float(low),
                float(high),
                title=f"Range of {name}",
                description=f"Values of {name} {summary}.",
                width=CARD_CHART_WIDTH,
            )
    return FieldView(
        field_name=name,
        data_type=str(row.data_type),
        description=row.description,
        roles=_roles(row),
        summary=summary,
        chart=chart,
    )


def value_hint(values: Mapping[str, Any] | None, limit: int = 8) -> str:
    """A one-line reminder of a filter field's values, shown under its input."""
    if not values:
        return ""
    if "distinct" in values:
        shown = ", ".join(_label(v["value"]) for v in list(values["distinct"])[:limit])
        more = len(values["distinct"]) > limit or not values.get("complete", True)
        return f"Values: {shown}{', …' if more else ''}"
    if "min" in values:
        return f"Range: {fmt_number(values.get('min'))} to {fmt_number(values.get('max'))}"
    return ""


def power_view(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """One metric's power analysis (``analyze_power`` item) with its power curve drawn.

    The curve is required total n against the absolute effect on a log scale; the design's
    effect is marked at its required n, and the available n is a dashed line: where the curve
    crosses it is the smallest effect the audience can detect.
    """
    curve = [(float(p["effect"]), float(p["n"])) for p in analysis.get("power_curve") or []]
    effect, target_n = analysis.get("effect"), analysis.get("target_n")
    marked = (float(effect), float(target_n)) if effect is not None and target_n else None
    available = analysis.get("available_nonnull_n") or None
    name = analysis["field_name"]
    chart = None
    if curve:
        chart = line_chart(
            curve,
            title=f"Required participants against effect size for {name}",
            description=(
                "Total participants needed to detect each effect size; the marked point is "
                "this design's effect, the dashed line the participants available."
            ),
            x_label=f"effect on {name} (absolute)",
            y_label="participants needed (log scale)",
            marked=marked,
            marked_label=f"design: n = {fmt_number(target_n)}" if marked else "",
            reference_y=float(available) if available else None,
            reference_label=f"available: {fmt_number(available)}",
            log_y=True,
        )
    return {**analysis, "chart": chart}


def arm_sizes_chart(arm_names: Sequence[str], sizes: Sequence[int]) -> Markup:
    """Participants per arm as bars."""
    return bar_chart(
        list(zip(arm_names, (float(s) for s in sizes), strict=True)),
        title="Participants per arm",
        description=", ".join(f"{a}: {s:,}" for a, s in zip(arm_names, sizes, strict=True)),
    )


def balance_rows(balance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Covariate means by arm, one row per covariate, with the spread between arms."""
    rows = []
    for item in balance.get("covariate_means") or []:
        means = [m for m in item.get("arm_means", [])]
        finite = [m for m in means if isinstance(m, int | float)]
        spread = max(finite) - min(finite) if len(finite) > 1 else None
        rows.append({"covariate": item.get("covariate"), "means": means, "spread": spread})
    return rows


# Results ----------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """An analysis as plain dicts and lists, whether the service gave dataclasses or dicts."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _significant(arm: Mapping[str, Any], alpha: float) -> bool:
    p = arm.get("p_value_adjusted")
    if p is None:
        p = arm.get("p_value")
    return isinstance(p, int | float) and p < alpha


def _history_chart(metric_name: str, arm: Mapping[str, Any]) -> Markup | None:
    """The always-valid p-value at each look, when the analysis keeps the looks."""
    looks = arm.get("history") or arm.get("looks") or []
    points = [
        (float(i), float(look["always_valid_p_value"]))
        for i, look in enumerate(looks, start=1)
        if isinstance(look, Mapping) and look.get("always_valid_p_value") is not None
    ]
    if len(points) < 2:
        return None
    return line_chart(
        points,
        title=f"Always-valid p-value over time, {arm.get('arm_name')} on {metric_name}",
        description="The always-valid p-value at each analysis; it never rises, and peeking "
        "at it does not inflate false positives.",
        x_label="analysis (look)",
        y_label="always-valid p-value",
        y_range=(0.0, 1.0),
        marked=points[-1],
        marked_label=f"now: {points[-1][1]:.3f}",
    )


def results_view(analysis: Any, *, alpha: float) -> dict[str, Any]:
    """The analysis (API.md "Analysis" shape) with a forest plot per metric.

    Parameters
    ----------
    analysis : mapping or dataclass
        ``{"srm": {...}, "metrics": [{"metric_name", "method", "variance_reduction",
        "arms": [...]}]}`` as :func:`xngin.services.analysis.analyze` returns it; arms may
        carry ``always_valid_ci_lower/upper`` (drawn behind the interval) and ``history`` (the
        always-valid p-value at earlier looks, drawn over time).
    alpha : float
        The experiment's significance level; effects whose (adjusted) p-value is below it are
        drawn as significant.
    """
    from xngin.web.charts import ForestRow, forest_plot

    plain = _plain(analysis)
    metrics = []
    for metric in plain.get("metrics") or []:
        arms = list(metric.get("arms") or [])
        compared = [a for a in arms if not a.get("is_baseline")]
        baseline = next((a for a in arms if a.get("is_baseline")), None)
        rows = [
            ForestRow(
                label=str(a.get("arm_name")),
                estimate=a.get("effect"),
                lower=a.get("ci_lower"),
                upper=a.get("ci_upper"),
                significant=_significant(a, alpha),
                note=str(a.get("error_message") or a.get("error_code") or "no estimate"),
                sequence_lower=a.get("always_valid_ci_lower"),
                sequence_upper=a.get("always_valid_ci_upper"),
            )
            for a in compared
        ]
        name = str(metric.get("metric_name"))
        chart = forest_plot(
            rows,
            title=f"Effects on {name} with {100 * (1 - alpha):g}% confidence intervals",
            description=(
                f"Difference from {baseline.get('arm_name') if baseline else 'the baseline'} "
                f"per arm; intervals crossing zero are not significant at alpha {alpha:g}."
            ),
            x_label=f"effect on {name} against "
            f"{baseline.get('arm_name') if baseline else 'baseline'}",
        )
        histories = [c for c in (_history_chart(name, a) for a in compared) if c is not None]
        sequences = any(a.get("always_valid_ci_lower") is not None for a in compared)
        metrics.append(
            {**metric, "arms": arms, "forest": chart, "histories": histories,
             "baseline": baseline, "has_sequences": sequences,
             "participation": {p.get("arm_id"): p for p in metric.get("participation") or []}}
        )  # fmt: skip
    return {**plain, "metrics": metrics}
