"""Balance check checked against statsmodels, by simulation, and on degenerate inputs.

References: statsmodels 0.15 ``MANOVA.from_formula(...).mv_test()`` (Pillai's trace row: F value,
Num DF, Den DF, Pr > F) on a design matrix built here by hand with pandas (mean imputation, missing
indicator, level indicators), and for two arms statsmodels ``OLS(arm, X).fit()`` whose overall
F-test is the same test (Hotelling's T^2). Size and power are estimated by simulation with fixed
seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.multivariate.manova import MANOVA

from xngin.stats.assignment import assign_arms
from xngin.stats.balance import (
    MAX_COVARIATE_LEVELS,
    check_balance,
    prepare_covariates,
)
from xngin.stats.errors import StatsInputError


def audience(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    age[rng.random(n) < 0.1] = np.nan
    return {
        "age": age,
        "region": rng.choice(np.array(["n", "s", "e", None], dtype=object), n),
        "visits": rng.poisson(3, n).astype(float),
    }


def reference_design(fields: dict[str, np.ndarray]) -> pd.DataFrame:
    """The design our docs describe, built independently with pandas."""
    age = pd.Series(fields["age"])
    region = pd.Series(fields["region"]).fillna("zz_missing")
    design = pd.DataFrame({"age": age.fillna(age.mean()), "age_missing": age.isna().astype(float)})
    for level in sorted(region.unique())[1:]:  # drop the first level
        design[f"region_{level}"] = (region == level).astype(float)
    design["visits"] = fields["visits"]
    return design


@pytest.mark.parametrize(("n_arms", "seed"), [(3, 1), (4, 2), (5, 3)])
def test_pillai_f_test_matches_statsmodels_manova(n_arms: int, seed: int) -> None:
    fields = audience(400, seed)
    arms = np.random.default_rng(seed + 10).integers(0, n_arms, 400)
    design = reference_design(fields)
    formula = " + ".join(design.columns) + " ~ C(arm)"
    reference = MANOVA.from_formula(formula, data=design.assign(arm=arms)).mv_test()
    pillai = reference.results["C(arm)"]["stat"].loc["Pillai's trace"]

    result = check_balance(prepare_covariates(fields), arms, n_arms=n_arms)

    assert result.tested
    assert result.f_statistic == pytest.approx(pillai["F Value"], rel=1e-9)
    assert result.numerator_df == pytest.approx(pillai["Num DF"])
    assert result.denominator_df == pytest.approx(pillai["Den DF"])
    assert result.p_value == pytest.approx(pillai["Pr > F"], rel=1e-7)


def test_two_arm_test_equals_the_ols_f_test_of_arm_on_covariates() -> None:
    fields = audience(250, 4)
    arms = np.random.default_rng(5).integers(0, 2, 250)
    ols = sm.OLS(arms, sm.add_constant(reference_design(fields))).fit()

    result = check_balance(prepare_covariates(fields), arms, n_arms=2)

    assert result.f_statistic == pytest.approx(ols.fvalue, rel=1e-9)
    assert (result.numerator_df, result.denominator_df) == (ols.df_model, ols.df_resid)
    assert result.p_value == pytest.approx(ols.f_pvalue, rel=1e-7)


def test_constant_and_collinear_columns_are_dropped_and_the_test_still_runs() -> None:
    fields = audience(300, 6)
    fields["country"] = np.array(["nl"] * 300, dtype=object)
    fields["visits_twice"] = fields["visits"] * 2 + 1
    arms = np.random.default_rng(7).integers(0, 3, 300)
    plain = check_balance(prepare_covariates(audience(300, 6)), arms, n_arms=3)

    result = check_balance(prepare_covariates(fields), arms, n_arms=3)

    assert result.covariates_dropped == ("visits_twice",)
    assert "country" not in " ".join(result.covariates_tested)
    assert result.f_statistic == pytest.approx(plain.f_statistic, rel=1e-9)
    assert result.p_value == pytest.approx(plain.p_value, rel=1e-7)


def test_balance_table_matches_per_arm_means_computed_directly() -> None:
    fields = audience(200, 8)
    arms = np.random.default_rng(9).integers(0, 3, 200)
    frame = pd.DataFrame({**fields, "arm": arms})

    table = {
        row.covariate: row.arm_means
        for row in check_balance(prepare_covariates(fields), arms, n_arms=3).covariate_means
    }

    by_arm = frame.groupby("arm")
    assert table["age"] == pytest.approx(tuple(by_arm["age"].mean()))  # observed values only
    assert table["age (missing)"] == pytest.approx(
        tuple(by_arm["age"].apply(lambda s: s.isna().mean()))
    )
    assert table["visits"] == pytest.approx(tuple(by_arm["visits"].mean()))
    for level in ["e", "n", "s"]:
        expected = [(frame["region"][frame["arm"] == arm] == level).mean() for arm in range(3)]
        assert table[f"region = {level}"] == pytest.approx(tuple(expected))
    assert table["region = (missing)"] == pytest.approx(
        tuple(by_arm["region"].apply(lambda s: s.isna().mean()))
    )


def test_rejection_rate_under_random_assignment_is_near_the_nominal_level() -> None:
    # 400 seeded audiences, each assigned to three arms at random: the test should reject at 5%
    # about 5% of the time (binomial sd 1.1 points; Pillai's F approximation is close here).
    rejections = 0
    runs = 400
    for seed in range(runs):
        fields = audience(150, 1000 + seed)
        arms = assign_arms(np.zeros(150, dtype=np.intp), weights=[1, 1, 2], seed=seed).arms
        result = check_balance(prepare_covariates(fields), arms, n_arms=3)
        rejections += not result.balance_ok
    assert 0.02 <= rejections / runs <= 0.085


def test_power_to_flag_an_assignment_that_follows_a_covariate() -> None:
    # Arm leans on age: 70% of the older half go to arm 2. The check must flag this nearly always.
    flagged = 0
    runs = 100
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        fields = audience(300, 5000 + seed)
        older = np.nan_to_num(fields["age"], nan=40.0) > 40
        arms = rng.integers(0, 2, 300)
        arms[older & (rng.random(300) < 0.7)] = 2
        flagged += not check_balance(prepare_covariates(fields), arms, n_arms=3).balance_ok
    assert flagged / runs >= 0.95


def test_an_arm_without_participants_is_left_out_and_named() -> None:
    fields = audience(120, 10)
    arms = np.random.default_rng(11).integers(0, 2, 120)  # arm 2 of 3 stays empty
    two_arm = check_balance(prepare_covariates(fields), arms, n_arms=2)

    result = check_balance(prepare_covariates(fields), arms, n_arms=3)

    assert result.tested and result.message is not None and "[2]" in result.message
    assert result.p_value == pytest.approx(two_arm.p_value)
    assert result.covariate_means[0].arm_means[2] is None


@pytest.mark.parametrize(
    ("fields", "arms", "reason"),
    [
        ({"x": np.arange(10.0)}, np.zeros(10, dtype=int), "fewer than two arms"),
        ({"x": np.ones(10)}, np.arange(10) % 2, "no covariate varies"),
        ({}, np.arange(10) % 2, "no covariate varies"),
        ({"x": np.arange(4.0), "y": np.arange(4.0) ** 2}, np.array([0, 1, 0, 1]), "too few"),
    ],
)
def test_degenerate_inputs_report_why_the_test_did_not_run(
    fields: dict[str, np.ndarray], arms: np.ndarray, reason: str
) -> None:
    result = check_balance(prepare_covariates(fields), arms, n_arms=2)

    assert not result.tested and result.balance_ok
    assert result.p_value is None and result.f_statistic is None
    assert result.message is not None and reason in result.message


def test_covariates_that_determine_the_arm_give_p_zero() -> None:
    arms = np.arange(60) % 3
    fields = {"arm_label": np.array(["a", "b", "c"], dtype=object)[arms], "x": np.arange(60.0)}

    result = check_balance(prepare_covariates(fields), arms, n_arms=3)

    assert result.tested and result.p_value == 0.0 and result.f_statistic is None
    assert not result.balance_ok and result.message is not None and "exactly" in result.message


def test_a_field_with_many_levels_keeps_indicators_for_its_most_frequent_ones() -> None:
    rng = np.random.default_rng(12)
    city = rng.integers(0, 200, 5000).astype(str).astype(object)
    covariates = prepare_covariates({"city": city})

    result = check_balance(covariates, rng.integers(0, 2, 5000), n_arms=2)

    assert len(covariates.names) == MAX_COVARIATE_LEVELS - 1
    assert result.tested and result.numerator_df == MAX_COVARIATE_LEVELS - 1
    assert any(row.covariate == "city = (other levels)" for row in result.covariate_means)


def test_threshold_decides_balance_ok() -> None:
    fields = audience(100, 13)
    arms = np.random.default_rng(14).integers(0, 2, 100)
    covariates = prepare_covariates(fields)
    p_value = check_balance(covariates, arms, n_arms=2).p_value
    assert p_value is not None

    assert check_balance(covariates, arms, n_arms=2, p_threshold=p_value).balance_ok
    assert not check_balance(covariates, arms, n_arms=2, p_threshold=p_value + 1e-9).balance_ok


@pytest.mark.parametrize(
    ("arms", "options", "field"),
    [
        (np.zeros(5, dtype=int), {}, "arms"),
        (np.array([0, 1, 2, 0]), {}, "arms"),
        (np.array([0.0, 1, 0, 1]), {}, "arms"),
        (np.array([0, 1, 0, 1]), {"p_threshold": 1.5}, "p_threshold"),
        (np.array([0, 1, 0, 1]), {"n_arms": 0}, "n_arms"),
    ],
)
def test_unusable_balance_input_names_the_field(
    arms: np.ndarray, options: dict[str, object], field: str
) -> None:
    covariates = prepare_covariates({"x": np.arange(4.0)})
    arguments: dict[str, object] = {"n_arms": 2, **options}
    with pytest.raises(StatsInputError) as error:
        check_balance(covariates, arms, **arguments)  # type: ignore[arg-type]
    assert error.value.field == field


def test_covariates_of_different_lengths_are_rejected() -> None:
    with pytest.raises(StatsInputError) as error:
        prepare_covariates({"x": np.arange(3.0), "y": np.arange(4.0)})
    assert error.value.field == "y"
