from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from xngin.sheets import SheetRow
from xngin.web.views import TOP_VALUES, balance_rows, field_view, power_view, results_view

SVG = "{http://www.w3.org/2000/svg}"


def _classes(markup: Any, tag: str, css: str) -> list[ET.Element]:
    root = ET.fromstring(str(markup))
    return [e for e in root.iter(SVG + tag) if css in (e.get("class") or "").split()]


def test_categorical_fields_draw_their_top_values_and_sum_the_rest() -> None:
    distinct = [{"value": f"v{i}", "count": 100 - i} for i in range(TOP_VALUES + 3)]
    distinct.append({"value": None, "count": 1})
    row = SheetRow(field_name="region", data_type="string", is_filter=True, is_strata=True)
    view = field_view(row, {"distinct": distinct, "complete": True})
    bars = _classes(view.chart, "rect", "bar")
    assert len(bars) == TOP_VALUES + 1
    assert bars[-1].get("data-label") == "4 other values"
    rest = sum(d["count"] for d in distinct[TOP_VALUES:])
    assert float(bars[-1].get("data-value", "")) == rest
    assert view.roles == ("filter", "strata")
    assert view.summary.startswith(f"{len(distinct)} distinct values")


def test_numeric_fields_draw_their_range() -> None:
    row = SheetRow(field_name="age", data_type="integer", is_filter=True)
    view = field_view(row, {"min": 18, "max": 85, "null_count": 3})
    (bar,) = _classes(view.chart, "rect", "range")
    assert (bar.get("data-min"), bar.get("data-max")) == ("18.0", "85.0")
    assert "3 missing" in view.summary


def test_the_power_curve_marks_the_designs_effect_at_its_required_n() -> None:
    analysis = {
        "field_name": "savings",
        "effect": 50.0,
        "target_n": 1200,
        "available_nonnull_n": 3000,
        "power_curve": [{"effect": 25.0, "n": 4800}, {"effect": 50.0, "n": 1200}],
    }
    view = power_view(analysis)
    (marked,) = _classes(view["chart"], "circle", "marked")
    assert (marked.get("data-x"), marked.get("data-y")) == ("50.0", "1200.0")
    assert len(_classes(view["chart"], "line", "reference")) == 1


def test_no_power_curve_no_chart() -> None:
    assert power_view({"field_name": "x", "power_curve": []})["chart"] is None


def test_balance_rows_report_the_largest_difference_between_arms() -> None:
    rows = balance_rows({"covariate_means": [{"covariate": "age", "arm_means": [30, 31.5, 29]}]})
    assert rows == [{"covariate": "age", "means": [30, 31.5, 29], "spread": 2.5}]


ANALYSIS: dict[str, Any] = {
    "experiment_id": "e1",
    "srm": {"p_value": 0.0004, "ok": False, "observed": [1000, 880], "expected": [940, 940]},
    "metrics": [
        {
            "metric_name": "savings",
            "method": "cuped",
            "variance_reduction": 0.31,
            "arms": [
                {"arm_id": "a", "arm_name": "control", "is_baseline": True, "n": 1000},
                {
                    "arm_id": "b",
                    "arm_name": "sms",
                    "is_baseline": False,
                    "n": 880,
                    "effect": 12.0,
                    "ci_lower": 2.0,
                    "ci_upper": 22.0,
                    "p_value": 0.01,
                    "p_value_adjusted": 0.03,
                },
                {
                    "arm_id": "c",
                    "arm_name": "call",
                    "is_baseline": False,
                    "n": 900,
                    "effect": 3.0,
                    "ci_lower": -5.0,
                    "ci_upper": 11.0,
                    "p_value": 0.04,
                    "p_value_adjusted": 0.08,
                },
            ],
        }
    ],
}


def test_results_draw_one_forest_row_per_compared_arm_judged_by_adjusted_p() -> None:
    view = results_view(ANALYSIS, alpha=0.05)
    (metric,) = view["metrics"]
    estimates = _classes(metric["forest"], "rect", "estimate")
    assert [e.get("data-estimate") for e in estimates] == ["12.0", "3.0"]
    # sms: adjusted 0.03 < 0.05; call: raw 0.04 would pass, adjusted 0.08 does not.
    assert [e.get("class") for e in estimates] == [
        "estimate significant",
        "estimate not-significant",
    ]
    assert metric["baseline"]["arm_name"] == "control"


def test_results_draw_the_always_valid_p_value_over_the_looks_when_given() -> None:
    analysis = {
        "srm": None,
        "metrics": [
            {
                "metric_name": "m",
                "method": "welch",
                "arms": [
                    {"arm_name": "control", "is_baseline": True},
                    {
                        "arm_name": "t",
                        "is_baseline": False,
                        "history": [{"always_valid_p_value": p} for p in (1.0, 0.4, 0.04)],
                    },
                ],
            }
        ],
    }
    (metric,) = results_view(analysis, alpha=0.05)["metrics"]
    (chart,) = metric["histories"]
    (marked,) = _classes(chart, "circle", "marked")
    assert float(marked.get("data-y", "")) == pytest.approx(0.04)
