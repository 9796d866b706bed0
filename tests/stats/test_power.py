"""Power analysis checked against statsmodels, Cohen's published tables and its own inverse.

References are computed in the test from statsmodels 0.15 (``TTestIndPower``, ``NormalIndPower``,
``zt_ind_solve_power``, ``proportion_effectsize``), which implement the formulas independently of
our scipy-based solver. Published values are from Cohen (1988), Statistical Power Analysis for the
Behavioral Sciences, 2nd ed.: Table 2.4.1 (t-test, n per group) and Table 6.4.1 (arcsine h).
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import chi2, norm
from scipy.stats import t as t_dist
from statsmodels.stats.power import NormalIndPower, TTestIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from xngin.stats.errors import StatsInputError
from xngin.stats.power import (
    MetricBaseline,
    PowerDesign,
    comparison_power,
    minimum_detectable_effect,
    power_curve,
    required_sample_size,
    standardized_effect,
)
from xngin.stats.power_report import analyze_metric_power

WEIGHTS = [(1, 1), (1, 2), (2, 1), (2, 1, 1), (1, 1, 1, 1), (3, 1, 2, 1, 1)]
ALPHA_POWER = [(0.05, 0.8), (0.01, 0.9), (0.1, 0.7)]
ADJUSTMENTS = ["none", "bonferroni"]


def sm_comparison_alpha(alpha: float, weights: tuple[float, ...], adjustment: str) -> float:
    return alpha / (len(weights) - 1) if adjustment == "bonferroni" else alpha


def sm_power(metric_type: str, effect_size: float, n0: float, n1: float, alpha: float) -> float:
    """Power of one comparison according to statsmodels."""
    engine = NormalIndPower() if metric_type == "binary" else TTestIndPower()
    power = float(engine.power(effect_size=effect_size, nobs1=n0, alpha=alpha, ratio=n1 / n0))
    if math.isnan(power) and metric_type == "numeric":
        # statsmodels inherits nan from scipy's noncentral t far in its tails. Integrate over the
        # normal part instead: |Z + nc| > c sqrt(V / df)  <=>  V < df ((Z + nc) / c)^2.
        df = n0 + n1 - 2
        shift = abs(effect_size) * math.sqrt(n0 * n1 / (n0 + n1))
        crit = float(t_dist.isf(alpha / 2, df))
        power = quad(
            lambda z: norm.pdf(z) * chi2.cdf(df * ((z + shift) / crit) ** 2, df),
            -12,
            12,
            epsabs=1e-12,
        )[0]
    return power


def sm_required_total(
    metric_type: str, effect_size: float, weights: tuple[float, ...], alpha: float, power: float
) -> float:
    """Largest total over the treatment-vs-control comparisons, each solved by statsmodels."""
    totals = []
    for w in weights[1:]:
        ratio = w / weights[0]
        if metric_type == "binary":
            n0 = zt_ind_solve_power(effect_size=effect_size, alpha=alpha, power=power, ratio=ratio)
        else:
            n0 = TTestIndPower().solve_power(
                effect_size=effect_size, alpha=alpha, power=power, ratio=ratio
            )
        totals.append(float(n0) * sum(weights) / weights[0])
    return max(totals)


# ---------------------------------------------------------------- agreement with statsmodels


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize(("alpha", "power"), ALPHA_POWER)
@pytest.mark.parametrize("adjustment", ADJUSTMENTS)
@pytest.mark.parametrize("d", [0.1, 0.3, 0.8])
def test_numeric_sample_size_matches_statsmodels_ttestindpower(
    weights, alpha, power, adjustment, d
):
    design = PowerDesign(
        alpha=alpha, power=power, arm_weights=weights, multiple_comparison=adjustment
    )
    baseline = MetricBaseline("numeric", 10.0, 2.5)
    size = required_sample_size(baseline=baseline, target=10.0 - d * 2.5, design=design)

    expected = sm_required_total(
        "numeric", d, weights, sm_comparison_alpha(alpha, weights, adjustment), power
    )
    assert size.total_exact == pytest.approx(expected, rel=0.01)
    shares = [w / sum(weights) for w in weights]
    for n, share in zip(size.n_per_arm, shares, strict=True):
        assert n == pytest.approx(expected * share, rel=0.01, abs=1)
    assert size.total == sum(size.n_per_arm)


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize(("alpha", "power"), ALPHA_POWER)
@pytest.mark.parametrize("adjustment", ADJUSTMENTS)
@pytest.mark.parametrize(("p1", "p2"), [(0.05, 0.06), (0.3, 0.25), (0.5, 0.6), (0.9, 0.95)])
def test_binary_sample_size_matches_statsmodels_cohens_h(weights, alpha, power, adjustment, p1, p2):
    design = PowerDesign(
        alpha=alpha, power=power, arm_weights=weights, multiple_comparison=adjustment
    )
    size = required_sample_size(baseline=MetricBaseline("binary", p1), target=p2, design=design)

    h = float(proportion_effectsize(p2, p1))
    assert size.effect_size == pytest.approx(h, rel=1e-12)
    expected = sm_required_total(
        "binary", h, weights, sm_comparison_alpha(alpha, weights, adjustment), power
    )
    assert size.total_exact == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("metric_type", ["numeric", "binary"])
@pytest.mark.parametrize(("n0", "n1"), [(5, 5), (20, 60), (300, 100), (4000, 4000)])
@pytest.mark.parametrize("effect_size", [0.05, 0.2, -0.5, 1.3])
@pytest.mark.parametrize("alpha", [0.05, 0.005])
def test_comparison_power_matches_statsmodels(metric_type, n0, n1, effect_size, alpha):
    ours = comparison_power(
        metric_type=metric_type, effect_size=effect_size, n_control=n0, n_treatment=n1, alpha=alpha
    )
    assert ours == pytest.approx(sm_power(metric_type, effect_size, n0, n1, alpha), abs=1e-7)


@pytest.mark.parametrize("shift", [36.0, 40.0, 45.0])
def test_t_power_where_scipy_nct_fails_matches_two_df_closed_form(shift):
    # With df = 2, V ~ chi2(2) is exponential, so P(T > c | Z) = 1 - exp(-((Z + shift) / c)^2):
    # an integral over the normal Z alone, independent of the noncentral t machinery.
    alpha = 1e-5
    crit = float(t_dist.isf(alpha / 2, 2))
    expected = quad(
        lambda z: norm.pdf(z) * -math.expm1(-(((z + shift) / crit) ** 2)), -12, 12, epsabs=1e-13
    )[0]
    ours = comparison_power(
        metric_type="numeric", effect_size=shift, n_control=2, n_treatment=2, alpha=alpha
    )
    assert ours == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (3, 1, 2), (1, 1, 1, 1, 1)])
@pytest.mark.parametrize("adjustment", ADJUSTMENTS)
@pytest.mark.parametrize("n_total", [60, 1000, 50_000])
def test_numeric_mde_matches_statsmodels_effect_size(weights, adjustment, n_total):
    design = PowerDesign(arm_weights=weights, multiple_comparison=adjustment)
    baseline = MetricBaseline("numeric", 3.0, 0.5)
    mde = minimum_detectable_effect(baseline=baseline, n_total=n_total, design=design)

    alpha = sm_comparison_alpha(0.05, weights, adjustment)
    expected = max(
        TTestIndPower().solve_power(
            nobs1=n_total * weights[0] / sum(weights), alpha=alpha, power=0.8, ratio=w / weights[0]
        )
        for w in weights[1:]
    )
    assert mde is not None
    assert mde.effect_size == pytest.approx(expected, rel=0.01)
    assert mde.effect == pytest.approx(expected * 0.5, rel=0.01)
    assert mde.target == pytest.approx(3.0 + mde.effect, rel=1e-12)


@pytest.mark.parametrize("p1", [0.02, 0.2, 0.5, 0.85])
@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("weights", [(1, 1), (2, 1, 1)])
def test_binary_mde_matches_statsmodels_normalindpower(p1, direction, weights):
    n_total = 20_000
    mde = minimum_detectable_effect(
        baseline=MetricBaseline("binary", p1),
        n_total=n_total,
        design=PowerDesign(arm_weights=weights),
        direction=direction,
    )
    h = max(
        NormalIndPower().solve_power(
            nobs1=n_total * weights[0] / sum(weights), alpha=0.05, power=0.8, ratio=w / weights[0]
        )
        for w in weights[1:]
    )
    assert mde is not None
    assert math.copysign(1, mde.effect) == direction
    assert abs(mde.effect_size) == pytest.approx(h, rel=0.01)
    # Converting back to Cohen's h with statsmodels recovers the effect size
    assert float(proportion_effectsize(mde.target, p1)) == pytest.approx(mde.effect_size, rel=1e-9)


# ---------------------------------------------------------------- published values


@pytest.mark.parametrize(
    ("d", "power", "published_n"),
    # Cohen 1988, Table 2.4.1, two-tailed alpha = .05
    [(0.2, 0.8, 393), (0.5, 0.8, 64), (0.8, 0.8, 26), (0.5, 0.9, 86), (0.2, 0.9, 526)],
)
def test_numeric_n_per_arm_matches_cohen_table(d, power, published_n):
    size = required_sample_size(
        baseline=MetricBaseline("numeric", 0.0, 1.0), target=d, design=PowerDesign(power=power)
    )
    # Cohen rounds his approximation to the nearest integer, we round the exact t solution up
    assert abs(size.n_per_arm[0] - published_n) <= 1
    assert size.n_per_arm[0] == size.n_per_arm[1]


def test_binary_n_per_arm_matches_cohen_table_for_h_02():
    # Cohen 1988, Table 6.4.1: h = .20, two-tailed alpha = .05, power .80 -> n = 392 per group.
    # p = 0.5 -> 0.5 + x with 2 asin(sqrt(p2)) - pi/2 = 0.2  =>  p2 = sin(pi/4 + 0.1)^2
    p2 = math.sin(math.pi / 4 + 0.1) ** 2
    size = required_sample_size(
        baseline=MetricBaseline("binary", 0.5), target=p2, design=PowerDesign()
    )
    assert size.effect_size == pytest.approx(0.2)
    assert abs(size.n_per_arm[0] - 392) <= 1


def test_design_accepts_a_list_of_weights_and_freezes_it():
    design = PowerDesign(arm_weights=[2, 1, 1])  # type: ignore[arg-type]
    assert design.arm_weights == (2, 1, 1)
    assert design.fractions == (0.5, 0.25, 0.25)
    assert hash(design) == hash(PowerDesign(arm_weights=(2, 1, 1)))


def test_bonferroni_three_arms_equals_two_arms_at_half_alpha():
    baseline = MetricBaseline("numeric", 0.0, 1.0)
    three = PowerDesign(arm_weights=(1, 1, 1), multiple_comparison="bonferroni")
    two = PowerDesign(alpha=0.025)
    n3 = required_sample_size(baseline=baseline, target=0.3, design=three)
    n2 = required_sample_size(baseline=baseline, target=0.3, design=two)
    assert n3.n_per_arm == (n2.n_per_arm[0],) * 3


# ---------------------------------------------------------------- round trips


def _grid_round_trip_cases():
    for metric_type, weights, (alpha, power), adjustment in itertools.product(
        ["numeric", "binary"], WEIGHTS, ALPHA_POWER[:2], ADJUSTMENTS
    ):
        yield metric_type, weights, alpha, power, adjustment


@pytest.mark.parametrize(
    ("metric_type", "weights", "alpha", "power", "adjustment"), list(_grid_round_trip_cases())
)
def test_sample_size_reaches_power_and_one_fewer_per_arm_does_not(
    metric_type, weights, alpha, power, adjustment
):
    design = PowerDesign(
        alpha=alpha, power=power, arm_weights=weights, multiple_comparison=adjustment
    )
    if metric_type == "binary":
        baseline, target = MetricBaseline("binary", 0.2), 0.23
        effect_size = float(proportion_effectsize(target, 0.2))
    else:
        baseline, target = MetricBaseline("numeric", 100.0, 15.0), 104.0
        effect_size = 4 / 15
    size = required_sample_size(baseline=baseline, target=target, design=design)
    comparison_alpha = sm_comparison_alpha(alpha, weights, adjustment)
    n0 = size.n_per_arm[0]

    powers = [
        sm_power(metric_type, effect_size, n0, n1, comparison_alpha) for n1 in size.n_per_arm[1:]
    ]
    assert min(powers) >= power
    fewer = [
        sm_power(metric_type, effect_size, n0 - 1, n1 - 1, comparison_alpha)
        for n1 in size.n_per_arm[1:]
    ]
    assert min(fewer) < power


@pytest.mark.parametrize("metric_type", ["numeric", "binary"])
@pytest.mark.parametrize("weights", [(1, 1), (1, 4), (2, 1, 1), (1, 1, 1, 1, 1)])
@pytest.mark.parametrize("adjustment", ADJUSTMENTS)
@pytest.mark.parametrize("n_total", [40, 777, 123_456])
def test_mde_is_inverse_of_sample_size(metric_type, weights, adjustment, n_total):
    baseline = (
        MetricBaseline("binary", 0.4)
        if metric_type == "binary"
        else MetricBaseline("numeric", 5, 2)
    )
    design = PowerDesign(arm_weights=weights, multiple_comparison=adjustment)
    mde = minimum_detectable_effect(baseline=baseline, n_total=n_total, design=design)
    assert mde is not None
    size = required_sample_size(baseline=baseline, target=mde.target, design=design)
    assert size.total_exact == pytest.approx(n_total, rel=1e-6)


@settings(max_examples=40, deadline=None, derandomize=True)
@example(d=1.0, weights=[1.0, 2.0, 1.0], alpha=0.001953125, power=0.9375)  # scipy nct gives nan
@given(
    d=st.floats(0.02, 3.0),
    weights=st.lists(st.floats(0.2, 5.0), min_size=2, max_size=5),
    alpha=st.floats(0.001, 0.2),
    power=st.floats(0.5, 0.99),
)
def test_numeric_sample_size_reaches_power_for_any_design(d, weights, alpha, power):
    design = PowerDesign(alpha=alpha, power=power, arm_weights=tuple(weights))
    size = required_sample_size(
        baseline=MetricBaseline("numeric", 0.0, 1.0), target=d, design=design
    )
    n0 = size.n_per_arm[0]
    assert min(sm_power("numeric", d, n0, n1, alpha) for n1 in size.n_per_arm[1:]) >= power - 1e-9


# ---------------------------------------------------------------- extremes do not break solvers


@pytest.mark.parametrize("metric_type", ["numeric", "binary"])
def test_tiny_effect_gives_huge_but_finite_n(metric_type):
    if metric_type == "binary":
        baseline, target = MetricBaseline("binary", 0.5), 0.5001
    else:
        baseline, target = MetricBaseline("numeric", 0.0, 1.0), 1e-4
    size = required_sample_size(baseline=baseline, target=target, design=PowerDesign())
    expected = sm_required_total(metric_type, size.effect_size, (1, 1), 0.05, 0.8)
    assert size.total_exact == pytest.approx(expected, rel=0.01)
    assert size.total > 1e8


def test_huge_effect_stops_at_two_participants_per_arm():
    size = required_sample_size(
        baseline=MetricBaseline("numeric", 0.0, 1.0), target=50.0, design=PowerDesign()
    )
    assert size.n_per_arm == (2, 2)


def test_mde_needs_two_participants_in_smallest_arm():
    baseline = MetricBaseline("numeric", 0.0, 1.0)
    design = PowerDesign(arm_weights=(8, 1))
    assert minimum_detectable_effect(baseline=baseline, n_total=17, design=design) is None
    assert minimum_detectable_effect(baseline=baseline, n_total=18, design=design) is not None


def test_binary_mde_is_none_when_even_reaching_one_is_not_detectable():
    baseline = MetricBaseline("binary", 0.9)
    assert minimum_detectable_effect(baseline=baseline, n_total=6, design=PowerDesign()) is None
    down = minimum_detectable_effect(
        baseline=baseline, n_total=60, design=PowerDesign(), direction=-1
    )
    assert down is not None and 0 < down.target < 0.9


# ---------------------------------------------------------------- power curve


def test_power_curve_spans_tenth_to_double_the_target_and_falls_with_effect():
    baseline = MetricBaseline("numeric", 50.0, 10.0)
    design = PowerDesign(arm_weights=(2, 1, 1))
    curve = power_curve(baseline=baseline, reference_effect=-2.0, design=design)
    assert len(curve) == 20
    assert curve[0].effect == pytest.approx(-0.2)
    assert curve[-1].effect == pytest.approx(-4.0)
    assert all(a.n > b.n for a, b in itertools.pairwise(curve))
    at_target = next(p for p in curve if p.effect == pytest.approx(-2.0))
    assert at_target.n == required_sample_size(baseline=baseline, target=48.0, design=design).total
    assert at_target.target == pytest.approx(48.0)


def test_binary_power_curve_leaves_out_impossible_targets():
    curve = power_curve(
        baseline=MetricBaseline("binary", 0.6), reference_effect=0.3, design=PowerDesign()
    )
    assert curve and all(0 < p.target < 1 for p in curve)
    assert len(curve) == 13  # 0.6 + 0.03 * m < 1 for m = 1..13


# ---------------------------------------------------------------- design and input errors


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"power": 1.0}, "power"),
        ({"power": -0.1}, "power"),
        ({"alpha": 0.5, "power": 0.4}, "power"),
        ({"arm_weights": (1.0,)}, "arms"),
        ({"arm_weights": ()}, "arms"),
        ({"arm_weights": (1.0, 0.0)}, "arms[1].weight"),
        ({"arm_weights": (-1.0, 1.0, 1.0)}, "arms[0].weight"),
        ({"arm_weights": (1.0, float("inf"))}, "arms[1].weight"),
        ({"multiple_comparison": "holm"}, "multiple_comparison"),
    ],
)
def test_invalid_design_names_the_field(kwargs, field):
    with pytest.raises(StatsInputError) as raised:
        PowerDesign(**kwargs)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("binary", 0.0), "baseline"),
        (("binary", 1.0), "baseline"),
        (("binary", 1.3), "baseline"),
        (("numeric", 5.0, 0.0), "stddev"),
        (("numeric", 5.0, None), "stddev"),
        (("numeric", float("inf"), 1.0), "baseline"),
        (("count", 5.0, 1.0), "metric_type"),
    ],
)
def test_invalid_baseline_names_the_field(args, field):
    with pytest.raises(StatsInputError) as raised:
        MetricBaseline(*args)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("baseline", "target"),
    [
        (MetricBaseline("binary", 0.3), 1.2),
        (MetricBaseline("binary", 0.3), 0.0),
        (MetricBaseline("binary", 0.3), 0.3),
        (MetricBaseline("numeric", 3.0, 1.0), 3.0),
        (MetricBaseline("numeric", 3.0, 1.0), float("nan")),
    ],
)
def test_unreachable_or_zero_target_is_rejected(baseline, target):
    with pytest.raises(StatsInputError) as raised:
        required_sample_size(baseline=baseline, target=target, design=PowerDesign())
    assert raised.value.field == "metric_target"
    assert str(target) in raised.value.message


def test_standardized_effect_is_cohens_d_and_h():
    assert standardized_effect(MetricBaseline("numeric", 10.0, 4.0), 11.0) == 0.25
    h = standardized_effect(MetricBaseline("binary", 0.4), 0.5)
    assert h == pytest.approx(float(proportion_effectsize(0.5, 0.4)), rel=1e-12)


# ---------------------------------------------------------------- analyze_metric_power


def analyze(**overrides):
    kwargs = {
        "metric_type": "numeric",
        "mean": 20.0,
        "stddev": 5.0,
        "count": 1_500,
        "nonnull_count": 1_200,
        "metric_pct_change": 0.05,
        "design": PowerDesign(),
    }
    kwargs.update(overrides)
    return analyze_metric_power(**kwargs)


def test_analyze_turns_relative_change_into_target_and_warns_about_nulls():
    result = analyze()
    expected = required_sample_size(
        baseline=MetricBaseline("numeric", 20.0, 5.0), target=21.0, design=PowerDesign()
    )
    assert result.target_possible
    assert result.target == pytest.approx(21.0)
    assert result.effect == pytest.approx(1.0)
    assert (result.baseline, result.stddev) == (20.0, 5.0)
    assert (result.available_n, result.available_nonnull_n) == (1_500, 1_200)
    assert result.n_per_arm == expected.n_per_arm == (394, 394)  # d = 0.2, Cohen: 393
    assert result.target_n == 788
    assert result.sufficient_n
    assert "the audience has 1,200 non-null values, enough for the 788" in result.messages
    assert any("300 of 1,500 participants (20%) have no value" in m for m in result.messages)


def test_analyze_sufficient_audience_and_mdes():
    result = analyze(
        nonnull_count=1_200,
        count=1_200,
        metric_target=22.0,
        metric_pct_change=None,
        desired_n=5_000,
    )
    assert result.sufficient_n and result.target_possible
    assert not any("no value" in m for m in result.messages)
    design = PowerDesign()
    baseline = MetricBaseline("numeric", 20.0, 5.0)
    assert result.mde_available_n == minimum_detectable_effect(
        baseline=baseline, n_total=1_200, design=design
    )
    assert result.mde_desired_n == minimum_detectable_effect(
        baseline=baseline, n_total=5_000, design=design
    )
    assert result.mde_desired_n.effect < result.mde_available_n.effect < 2.0
    assert len(result.power_curve) == 20
    assert any(
        p.n == result.target_n and p.effect == pytest.approx(2.0) for p in result.power_curve
    )


def test_analyze_message_when_audience_too_small():
    result = analyze(count=1_200, nonnull_count=1_200, metric_pct_change=0.02)
    assert not result.sufficient_n
    assert f"the audience has 1,200 non-null values but needs {result.target_n:,}" in (
        result.messages
    )


def test_analyze_decrease_reports_mde_downward():
    result = analyze(metric_type="binary", mean=0.3, stddev=None, metric_pct_change=-0.1)
    assert result.target == pytest.approx(0.27)
    assert result.stddev == pytest.approx(math.sqrt(0.21))
    assert result.mde_available_n is not None and result.mde_available_n.effect < 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"metric_target": 21.0}, "metrics[2].metric_target"),
        ({"metric_pct_change": None}, "metrics[2].metric_target"),
        ({"metric_pct_change": 0.0}, "metrics[2].metric_pct_change"),
        ({"metric_pct_change": float("nan")}, "metrics[2].metric_pct_change"),
        (
            {"metric_type": "binary", "mean": 0.4, "metric_target": 1.5, "metric_pct_change": None},
            "metrics[2].metric_target",
        ),
        ({"metric_type": "ratio"}, "metrics[2].metric_type"),
        ({"desired_n": 0}, "desired_n"),
        ({"count": -1}, "available_n"),
        ({"count": 10, "nonnull_count": 11}, "available_nonnull_n"),
    ],
)
def test_analyze_rejects_request_errors_with_prefixed_field(overrides, field):
    with pytest.raises(StatsInputError) as raised:
        analyze(metric_field_prefix="metrics[2].", **overrides)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"count": 0, "nonnull_count": 0, "mean": None, "stddev": None}, "no non-null values"),
        ({"count": 50, "nonnull_count": 0, "mean": None, "stddev": None}, "no non-null values"),
        ({"stddev": 0.0}, "does not vary"),
        ({"nonnull_count": 1, "stddev": None}, "does not vary"),
        (
            {"metric_type": "binary", "mean": 0.0, "stddev": 0.0},
            "every participant has the value 0",
        ),
        (
            {"metric_type": "binary", "mean": 1.0, "stddev": 0.0},
            "every participant has the value 1",
        ),
        ({"metric_type": "binary", "mean": 3.5}, "not a proportion"),
    ],
)
def test_analyze_data_without_baseline_gives_impossible_target(overrides, says):
    result = analyze(**overrides)
    assert not result.target_possible and not result.sufficient_n
    assert result.target_n is None and result.n_per_arm is None
    assert result.mde_available_n is None and result.power_curve == ()
    assert any(says in m for m in result.messages)


def test_analyze_relative_change_beyond_one_keeps_mde_and_curve():
    result = analyze(metric_type="binary", mean=0.6, stddev=None, metric_pct_change=1.0)
    assert not result.target_possible and result.target_n is None
    assert result.target == pytest.approx(1.2)
    assert any("outside the proportions 0 to 1" in m for m in result.messages)
    assert result.mde_available_n is not None and result.mde_available_n.effect > 0
    assert result.power_curve and all(0 < p.target < 1 for p in result.power_curve)


def test_analyze_target_equal_to_baseline_is_impossible():
    result = analyze(metric_target=20.0, metric_pct_change=None)
    assert not result.target_possible
    assert any("equals the baseline" in m for m in result.messages)
    assert result.mde_available_n is not None


def test_analyze_multi_arm_bonferroni_uses_the_design():
    design = PowerDesign(arm_weights=(2, 1, 1, 1), multiple_comparison="bonferroni")
    result = analyze(design=design, nonnull_count=100_000, count=100_000)
    expected = required_sample_size(
        baseline=MetricBaseline("numeric", 20.0, 5.0), target=21.0, design=design
    )
    assert result.n_per_arm == expected.n_per_arm and len(result.n_per_arm) == 4
    assert result.sufficient_n
