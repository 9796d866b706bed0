"""Sample-ratio mismatch check against the chi-square closed form and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from xngin.stats.errors import StatsInputError
from xngin.stats.srm import sample_ratio_mismatch


def test_srm_equals_pearson_chi_square_closed_form() -> None:
    observed = np.array([10210, 9790, 20150])
    weights = np.array([1.0, 1.0, 2.0])
    expected = observed.sum() * weights / weights.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    result = sample_ratio_mismatch(observed.tolist(), weights.tolist())
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert result.p_value == pytest.approx(scipy_stats.chi2.sf(statistic, df=2), rel=1e-10)
    assert result.df == 2
    assert result.expected == pytest.approx(tuple(expected))
    assert result.observed == (10210, 9790, 20150)


def test_a_visible_imbalance_on_a_large_audience_is_flagged() -> None:
    # 50.8% / 49.2% of 200,000 is a 7-sigma deviation from a 50/50 split.
    result = sample_ratio_mismatch([101_600, 98_400], [1, 1])
    assert not result.ok
    assert result.p_value < 1e-10
    assert sample_ratio_mismatch([100_150, 99_850], [1, 1]).ok


def test_flag_rate_under_correct_assignment_equals_the_threshold() -> None:
    # 4,000 seeded multinomial splits with the promised weights: flagged at threshold 0.05
    # about 5% of the time (binomial SD 0.0034).
    rng = np.random.default_rng(40)
    weights = [0.2, 0.3, 0.5]
    splits = rng.multinomial(5000, weights, size=4000)
    flagged = np.mean(
        [not sample_ratio_mismatch(s.tolist(), weights, threshold=0.05).ok for s in splits]
    )
    assert abs(flagged - 0.05) < 0.012


def test_participants_in_a_zero_weight_arm_are_a_certain_mismatch() -> None:
    result = sample_ratio_mismatch([500, 490, 3], [1, 1, 0])
    assert result.p_value == 0.0 and not result.ok
    clean = sample_ratio_mismatch([500, 490, 0], [1, 1, 0])
    assert clean.ok and clean.df == 1


def test_no_participants_yet_is_not_a_mismatch() -> None:
    result = sample_ratio_mismatch([0, 0], [1, 1])
    assert result.ok and result.p_value == 1.0


def test_threshold_is_configurable() -> None:
    observed = [1040, 960]  # p ~ 0.074
    assert sample_ratio_mismatch(observed, [1, 1]).ok
    assert not sample_ratio_mismatch(observed, [1, 1], threshold=0.1).ok


@pytest.mark.parametrize(
    ("observed", "weights", "field"),
    [
        ([10, -1], [1, 1], "observed"),
        ([10, 5], [1, 1, 1], "weights"),
        ([10, 5], [0, 0], "weights"),
        ([1.5, 2], [1, 1], "observed"),
    ],
)
def test_bad_inputs_raise_with_the_field_named(
    observed: list[float], weights: list[float], field: str
) -> None:
    with pytest.raises(StatsInputError) as raised:
        sample_ratio_mismatch(observed, weights)  # type: ignore[arg-type]
    assert raised.value.field == field
