"""Guardrail decisions from confidence intervals, and their error rate by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from xngin.stats.errors import StatsInputError
from xngin.stats.estimators import EffectResult, welch_t_test
from xngin.stats.guardrails import check_guardrail
from xngin.stats.sufficient import MeanStats


def _interval(lower: float, upper: float, *, relative: bool = False) -> EffectResult:
    bounds = (
        {"ci_lower_relative": lower, "ci_upper_relative": upper}
        if relative
        else {"ci_lower": lower, "ci_upper": upper}
    )
    return EffectResult(method="welch", alpha=0.05, baseline_n=100, treatment_n=100, **bounds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lower", "upper", "direction", "threshold", "status"),
    [
        (0.5, 1.5, "increase", 0.0, "worse"),
        (0.5, 1.5, "increase", 0.4, "worse"),
        (0.5, 1.5, "increase", 0.6, "inconclusive"),
        (0.5, 1.5, "increase", 2.0, "not_worse"),
        (-0.2, 0.3, "increase", 0.0, "inconclusive"),
        (-1.5, -0.5, "decrease", 0.4, "worse"),
        (-1.5, -0.5, "decrease", 1.0, "inconclusive"),
        (-0.2, 0.3, "decrease", 0.5, "not_worse"),
        (0.5, 1.5, "decrease", 0.0, "not_worse"),
    ],
)
def test_decision_follows_where_the_interval_lies(
    lower: float, upper: float, direction: str, threshold: float, status: str
) -> None:
    decision = check_guardrail(
        _interval(lower, upper),
        bad_direction=direction,  # type: ignore[arg-type]
        threshold=threshold,
    )
    assert decision.status == status
    assert decision.significantly_worse == (status == "worse")
    assert "95% CI" in decision.message


def test_relative_thresholds_read_the_relative_interval() -> None:
    decision = check_guardrail(
        _interval(0.03, 0.08, relative=True),
        bad_direction="increase",
        threshold=0.02,
        relative=True,
    )
    assert decision.significantly_worse
    assert "3.00% to 8.00%" in decision.message and "2.00%" in decision.message


def test_a_failed_comparison_is_unknown_not_worse() -> None:
    failed = welch_t_test(MeanStats(1, 1.0, 1.0), MeanStats(5, 5.0, 7.0))
    decision = check_guardrail(failed, bad_direction="increase")
    assert decision.status == "unknown" and not decision.significantly_worse
    assert "at least 2 participants" in decision.message


def test_harm_exactly_at_the_tolerance_is_flagged_at_the_one_sided_rate() -> None:
    # 3,000 seeded experiments whose true increase equals the tolerance: a flag is a false alarm
    # of a one-sided level-0.025 test (binomial SD 0.0029).
    rng = np.random.default_rng(70)
    flags = 0
    for _ in range(3000):
        baseline = MeanStats.from_values(rng.normal(10.0, 2.0, 200))
        treatment = MeanStats.from_values(rng.normal(10.5, 2.0, 200))
        flags += check_guardrail(
            welch_t_test(baseline, treatment), bad_direction="increase", threshold=0.5
        ).significantly_worse
    assert flags / 3000 == pytest.approx(0.025, abs=0.009)


def test_bad_guardrail_settings_raise() -> None:
    with pytest.raises(StatsInputError) as raised:
        check_guardrail(_interval(0, 1), bad_direction="up")  # type: ignore[arg-type]
    assert raised.value.field == "bad_direction"
    with pytest.raises(StatsInputError) as raised:
        check_guardrail(_interval(0, 1), bad_direction="increase", threshold=-1)
    assert raised.value.field == "threshold"
