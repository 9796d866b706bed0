"""Holm and Benjamini-Hochberg adjusted p-values equal statsmodels multipletests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from xngin.stats.corrections import adjust_p_values
from xngin.stats.errors import StatsInputError


def _families() -> list[np.ndarray]:
    rng = np.random.default_rng(50)
    return [
        rng.uniform(size=12),
        np.r_[rng.uniform(0, 0.01, 5), rng.uniform(size=20)],
        np.array([0.01, 0.01, 0.04, 0.04, 0.5, 1.0]),  # ties and a 1
        np.array([0.03]),
    ]


@pytest.mark.parametrize(
    ("method", "statsmodels_method"),
    [("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")],
)
def test_adjusted_p_values_equal_statsmodels_multipletests(
    method: str, statsmodels_method: str
) -> None:
    for family in _families():
        expected = multipletests(family, method=statsmodels_method)[1]
        adjusted = adjust_p_values(family.tolist(), method=method)  # type: ignore[arg-type]
        np.testing.assert_allclose(np.array(adjusted, dtype=float), expected, rtol=1e-12)


@pytest.mark.parametrize(("method", "statsmodels_method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_missing_p_values_are_left_out_of_the_family(method: str, statsmodels_method: str) -> None:
    p_values = [0.01, None, 0.04, math.nan, 0.03, 0.2]
    adjusted = adjust_p_values(p_values, method=method)  # type: ignore[arg-type]
    expected = multipletests([0.01, 0.04, 0.03, 0.2], method=statsmodels_method)[1]
    assert adjusted[1] is None and adjusted[3] is None
    present = [adjusted[i] for i in (0, 2, 4, 5)]
    np.testing.assert_allclose(np.array(present, dtype=float), expected, rtol=1e-12)


def test_holm_is_never_below_the_raw_p_value_and_bh_never_above_holm() -> None:
    family = _families()[1]
    holm = np.array(adjust_p_values(family.tolist(), method="holm"), dtype=float)
    bh = np.array(adjust_p_values(family.tolist(), method="bh"), dtype=float)
    assert np.all(holm >= family) and np.all(bh >= family) and np.all(bh <= holm)


def test_no_correction_and_empty_family() -> None:
    assert adjust_p_values([0.2, None], method="none") == (0.2, None)
    assert adjust_p_values([], method="holm") == ()
    assert adjust_p_values([None], method="bh") == (None,)


def test_out_of_range_p_values_and_unknown_methods_raise() -> None:
    with pytest.raises(StatsInputError) as raised:
        adjust_p_values([0.2, 1.5])
    assert raised.value.field == "p_values"
    with pytest.raises(StatsInputError) as raised:
        adjust_p_values([0.2], method="sidak")  # type: ignore[arg-type]
    assert raised.value.field == "method"
