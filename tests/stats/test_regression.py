"""Arm regression with HC1 errors, checked against statsmodels OLS on a dense design."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import statsmodels.api as sm

from xngin.stats.errors import StatsInputError
from xngin.stats.regression import ParticipantRows, arm_regression, arm_regression_from_cells
from xngin.stats.sufficient import MeanStats


def _experiment(seed: int, n: int = 4000, n_arms: int = 3, n_strata: int = 4):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, n_arms, n)
    stratum = rng.integers(0, n_strata, n)
    # Covariates in very different units (one around 1,000) to exercise the rank check's scaling.
    covariates = rng.normal(size=(n, 2)) * [1.0, 100.0] + [0.0, 1000.0]
    lifts = np.array([0.0, 0.3, -0.2, 0.1][:n_arms])
    # Heteroskedastic noise (grows with the arm index) is what HC errors are for.
    outcome = (
        1.0
        + lifts[arm]
        + 0.5 * stratum
        + covariates @ [0.5, 0.01]
        + rng.normal(size=n) * (1.0 + arm)
    )
    return outcome, arm, stratum, covariates


def _dense_design(
    arm: np.ndarray, stratum: np.ndarray | None, covariates: np.ndarray | None, n_arms: int
) -> np.ndarray:
    columns = [np.ones(arm.size)] + [(arm == a).astype(float) for a in range(1, n_arms)]
    if stratum is not None:
        levels = np.unique(stratum)
        columns += [(stratum == s).astype(float) for s in levels[1:]]
    if covariates is not None:
        columns += list(covariates.T)
    return np.column_stack(columns)


@pytest.mark.parametrize(
    ("use_strata", "use_covariates"), [(False, False), (True, False), (True, True)]
)
def test_arm_regression_matches_statsmodels_ols_hc1(use_strata: bool, use_covariates: bool) -> None:
    outcome, arm, stratum, covariates = _experiment(30)
    strata = stratum if use_strata else None
    z = covariates if use_covariates else None
    fit = sm.OLS(outcome, _dense_design(arm, strata, z, 3)).fit(cov_type="HC1")
    result = arm_regression(ParticipantRows(outcome, arm, strata, z), n_arms=3, alpha=0.1)
    assert result.error_code is None
    np.testing.assert_allclose(result.coefficients, fit.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.array(result.covariance), fit.cov_params(), rtol=1e-8, atol=1e-15)
    intervals = fit.conf_int(alpha=0.1)
    for index, effect in enumerate(result.effects, start=1):
        assert effect.effect == pytest.approx(fit.params[index], rel=1e-9)
        assert effect.std_error == pytest.approx(fit.bse[index], rel=1e-8)
        assert effect.p_value == pytest.approx(fit.pvalues[index], rel=1e-6)
        assert effect.ci_lower == pytest.approx(intervals[index][0], rel=1e-8)
        assert effect.ci_upper == pytest.approx(intervals[index][1], rel=1e-8)


def test_chunked_rows_give_the_same_fit_as_whole_rows() -> None:
    outcome, arm, stratum, covariates = _experiment(31)
    whole = arm_regression(ParticipantRows(outcome, arm, stratum, covariates), n_arms=3)
    bounds = [0, 123, 1500, 1501, 3999, 4000]
    chunks = [
        ParticipantRows(outcome[a:b], arm[a:b], stratum[a:b], covariates[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    opened = []

    def reopen() -> Iterator[ParticipantRows]:
        opened.append(1)
        yield from chunks

    for source in (chunks, reopen):
        chunked = arm_regression(source, n_arms=3)
        np.testing.assert_allclose(chunked.coefficients, whole.coefficients, rtol=1e-9)
        np.testing.assert_allclose(chunked.covariance, whole.covariance, rtol=1e-8)
    # With covariates the residual pass reads the source a second time.
    assert len(opened) == 2


def test_cell_statistics_give_the_same_fit_as_rows_without_covariates() -> None:
    outcome, arm, stratum, _ = _experiment(32)
    rows = arm_regression(ParticipantRows(outcome, arm, stratum), n_arms=3)
    cells = {
        (a, s): MeanStats.from_values(outcome[(arm == a) & (stratum == s)])
        for a in range(3)
        for s in range(4)
    }
    from_cells = arm_regression_from_cells(cells, n_arms=3)
    np.testing.assert_allclose(from_cells.coefficients, rows.coefficients, rtol=1e-9)
    np.testing.assert_allclose(from_cells.covariance, rows.covariance, rtol=1e-7)


def test_adjusted_means_and_relative_effect_follow_from_the_hc1_covariance() -> None:
    outcome, arm, stratum, covariates = _experiment(33)
    design = _dense_design(arm, stratum, covariates, 3)
    fit = sm.OLS(outcome, design).fit(cov_type="HC1")
    result = arm_regression(ParticipantRows(outcome, arm, stratum, covariates), n_arms=3)
    # Everyone's prediction with the arm indicators switched off, averaged: the baseline mean.
    as_baseline = design.copy()
    as_baseline[:, 1:3] = 0.0
    contrast = as_baseline.mean(axis=0)
    baseline_test = fit.t_test(contrast)
    effect = result.effects[0]
    assert effect.baseline_mean == pytest.approx(float(fit.predict(as_baseline).mean()), rel=1e-10)
    assert effect.baseline_std_error == pytest.approx(float(baseline_test.sd[0, 0]), rel=1e-8)

    # Relative effect b_1 / (c' b): numerical gradient, statsmodels covariance.
    def relative(params: np.ndarray) -> float:
        return float(params[1] / (contrast @ params))

    step = 1e-6 * np.maximum(1.0, np.abs(fit.params))
    gradient = np.array(
        [
            (
                relative(fit.params + np.eye(8)[i] * step[i])
                - relative(fit.params - np.eye(8)[i] * step[i])
            )
            / (2 * step[i])
            for i in range(8)
        ]
    )
    assert effect.effect_relative == pytest.approx(relative(fit.params), rel=1e-9)
    assert effect.std_error_relative == pytest.approx(
        float(np.sqrt(gradient @ fit.cov_params() @ gradient)), rel=1e-5
    )


def test_an_empty_stratum_level_is_skipped_like_a_missing_dummy() -> None:
    outcome, arm, stratum, _ = _experiment(34)
    stratum = np.where(stratum == 1, 3, stratum)  # no participant in stratum 1
    fit = sm.OLS(outcome, _dense_design(arm, stratum, None, 3)).fit(cov_type="HC1")
    result = arm_regression(ParticipantRows(outcome, arm, stratum), n_arms=3)
    assert result.column_names == ("intercept", "arm[1]", "arm[2]", "stratum[2]", "stratum[3]")
    np.testing.assert_allclose(result.coefficients, fit.params, rtol=1e-9)


def test_an_empty_treatment_arm_fails_alone() -> None:
    outcome, arm, stratum, _ = _experiment(35)
    arm = np.where(arm == 2, 0, arm)
    result = arm_regression(ParticipantRows(outcome, arm, stratum), n_arms=3)
    assert result.error_code is None
    assert result.effects[0].ok
    assert result.effects[1].error_code == "too_few_participants"
    assert result.arm_n[2] == 0


def test_collinear_covariates_give_a_singular_design_result() -> None:
    outcome, arm, stratum, covariates = _experiment(36, n=500)
    doubled = np.column_stack([covariates[:, 0], 2 * covariates[:, 0]])
    result = arm_regression(ParticipantRows(outcome, arm, None, doubled), n_arms=3)
    assert result.error_code == "singular_design"
    assert all(e.error_code == "singular_design" for e in result.effects)


def test_a_one_shot_iterator_is_refused_because_rows_are_read_twice() -> None:
    outcome, arm, _, _ = _experiment(37, n=100)
    with pytest.raises(StatsInputError) as raised:
        arm_regression(iter([ParticipantRows(outcome, arm)]), n_arms=3)  # type: ignore[arg-type]
    assert raised.value.field == "rows"


def test_bad_rows_raise_with_the_field_named() -> None:
    with pytest.raises(StatsInputError) as raised:
        arm_regression(ParticipantRows([1.0, 2.0, 3.0], [0, 1, 5]), n_arms=3)
    assert raised.value.field == "arm"
    with pytest.raises(StatsInputError) as raised:
        ParticipantRows([1.0, np.nan], [0, 1])
    assert raised.value.field == "outcome"
    with pytest.raises(StatsInputError) as raised:
        ParticipantRows([1.0, 2.0], [0.5, 1.0])
    assert raised.value.field == "arm"
    with pytest.raises(StatsInputError) as raised:
        ParticipantRows([1.0, 2.0], [0, 1], covariates=[[1.0, 2.0, 3.0]])
    assert raised.value.field == "covariates"
