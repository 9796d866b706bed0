"""The whole analysis from sufficient statistics, checked field by field against references."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from xngin.stats.analysis import (
    ArmSpec,
    GuardrailSpec,
    MetricInput,
    analyze_experiment,
)
from xngin.stats.errors import StatsInputError
from xngin.stats.regression import ParticipantRows, arm_regression
from xngin.stats.sufficient import CupedStats, MeanStats, RatioStats

ARMS = (
    ArmSpec("control", "Control", 2.0),
    ArmSpec("sms", "SMS reminder", 1.0),
    ArmSpec("call", "Phone call", 1.0),
)
SIZES = {"control": 2000, "sms": 1000, "call": 1000}


def _raw_data(seed: int = 80) -> dict[str, dict[str, np.ndarray]]:
    """Per arm: attendance (0/1), spend, spend before the experiment, orders, order value."""
    rng = np.random.default_rng(seed)
    lifts = {"control": 0.0, "sms": 0.05, "call": 0.12}
    data = {}
    for arm, n in SIZES.items():
        before = rng.gamma(2.0, 10.0, n)
        orders = rng.poisson(1.5, n).astype(float)
        data[arm] = {
            "attended": (rng.uniform(size=n) < 0.30 + lifts[arm]).astype(float),
            "spend": 5.0 + 20 * lifts[arm] + 0.7 * before + rng.normal(0, 6, n),
            "before": before,
            "orders": orders,
            "value": orders * rng.gamma(3.0, 4.0 + 10 * lifts[arm], n),
        }
    return data


def _metrics(data: dict[str, dict[str, np.ndarray]]) -> list[MetricInput]:
    return [
        MetricInput(
            "attended",
            "binary",
            {a: MeanStats.from_values(d["attended"]) for a, d in data.items()},
        ),
        MetricInput(
            "spend", "numeric", {a: MeanStats.from_values(d["spend"]) for a, d in data.items()}
        ),
        MetricInput(
            "spend_cuped",
            "numeric",
            {a: CupedStats.from_values(d["spend"], d["before"]) for a, d in data.items()},
        ),
        MetricInput(
            "value_per_order",
            "ratio",
            {a: RatioStats.from_values(d["value"], d["orders"]) for a, d in data.items()},
        ),
    ]


def _arm(analysis, metric: str, arm: str):  # type: ignore[no-untyped-def]
    found = next(m for m in analysis.metrics if m.metric_name == metric)
    return next(a for a in found.arms if a.arm_id == arm)


def test_every_method_matches_its_reference_inside_the_full_analysis() -> None:
    data = _raw_data()
    analysis = analyze_experiment(
        arms=ARMS, assigned_counts=SIZES, metrics=_metrics(data), always_valid=False
    )
    assert analysis.baseline_arm_id == "control"
    assert [m.method for m in analysis.metrics] == ["proportion", "welch", "cuped", "delta"]
    for arm in ("sms", "call"):
        spend = scipy_stats.ttest_ind(data[arm]["spend"], data["control"]["spend"], equal_var=False)
        assert _arm(analysis, "spend", arm).p_value == pytest.approx(spend.pvalue, rel=1e-8)
        counts = (data[arm]["attended"].sum(), SIZES[arm], data["control"]["attended"].sum(), 2000)
        wald = sm_proportion.test_proportions_2indep(*counts, method="wald", correction=False)
        assert _arm(analysis, "attended", arm).p_value == pytest.approx(wald.pvalue, rel=1e-8)
    # CUPED in the analysis shares theta over all three arms: the 3-arm OLS coefficients.
    y = np.concatenate([data[a]["spend"] for a in SIZES])
    x = np.concatenate([data[a]["before"] for a in SIZES])
    arm_index = np.repeat([0, 1, 2], list(SIZES.values()))
    design = sm.add_constant(
        np.column_stack([arm_index == 1, arm_index == 2, x - x.mean()]).astype(float)
    )
    fit = sm.OLS(y, design).fit(cov_type="HC1")
    for column, arm in ((1, "sms"), (2, "call")):
        cuped = _arm(analysis, "spend_cuped", arm)
        assert cuped.effect == pytest.approx(fit.params[column], rel=1e-9)
        assert cuped.effect_std_error == pytest.approx(fit.bse[column], rel=2e-3)
    assert _arm(analysis, "spend_cuped", "control").mean == pytest.approx(fit.params[0], rel=1e-10)
    cuped_metric = analysis.metrics[2]
    assert cuped_metric.variance_reduction is not None and cuped_metric.variance_reduction > 0.5
    # Ratio metric means are sum(value) / sum(orders).
    ratio = _arm(analysis, "value_per_order", "call")
    assert ratio.mean == pytest.approx(data["call"]["value"].sum() / data["call"]["orders"].sum())


def test_adjusted_p_values_form_one_family_over_metrics_and_arms() -> None:
    analysis = analyze_experiment(
        arms=ARMS, assigned_counts=SIZES, metrics=_metrics(_raw_data()), correction="bh"
    )
    treated = [a for m in analysis.metrics for a in m.arms if not a.is_baseline]
    assert len(treated) == 8
    expected = multipletests([a.p_value for a in treated], method="fdr_bh")[1]
    np.testing.assert_allclose([a.p_value_adjusted for a in treated], expected, rtol=1e-12)


def test_baseline_arm_is_marked_and_carries_no_effect() -> None:
    analysis = analyze_experiment(
        arms=ARMS, assigned_counts=SIZES, metrics=_metrics(_raw_data()), baseline_arm_id="sms"
    )
    for metric in analysis.metrics:
        baseline = [a for a in metric.arms if a.is_baseline]
        assert [a.arm_id for a in baseline] == ["sms"]
        assert baseline[0].effect is None and baseline[0].p_value is None
        assert baseline[0].n == 1000 and baseline[0].std_error is not None
        assert [a.arm_id for a in metric.arms] == ["control", "sms", "call"]
    spend = _raw_data()["sms"]["spend"]
    baseline_spend = _arm(analysis, "spend", "sms")
    assert baseline_spend.mean == pytest.approx(spend.mean())
    assert baseline_spend.std_error == pytest.approx(scipy_stats.sem(spend))


def test_srm_uses_the_weights_and_assigned_counts() -> None:
    counts = {"control": 2000, "sms": 1100, "call": 900}
    analysis = analyze_experiment(arms=ARMS, assigned_counts=counts, metrics=[])
    expected = scipy_stats.chi2.sf((0 / 2000) + 100**2 / 1000 + 100**2 / 1000, df=2)
    assert analysis.srm.p_value == pytest.approx(expected, rel=1e-10)
    assert analysis.srm.expected == pytest.approx((2000.0, 1000.0, 1000.0))
    assert not analysis.srm.ok


def test_bad_metrics_yield_arm_errors_without_sinking_the_analysis() -> None:
    data = _raw_data()
    metrics = _metrics(data) + [
        MetricInput(
            "refund_rate",
            "ratio",
            {a: RatioStats(SIZES[a], 0.0, 0.0, 0.0, 0.0, 0.0) for a in SIZES},
        ),
        MetricInput("survey", "numeric", {"control": MeanStats.from_values([3.0, 4.0, 5.0])}),
        MetricInput("constant", "numeric", {a: MeanStats(SIZES[a], 0.0, 0.0) for a in SIZES}),
    ]
    analysis = analyze_experiment(arms=ARMS, assigned_counts=SIZES, metrics=metrics)
    assert _arm(analysis, "refund_rate", "sms").error_code == "zero_denominator"
    assert _arm(analysis, "survey", "call").error_code == "no_data"
    assert _arm(analysis, "survey", "control").mean == pytest.approx(4.0)
    assert _arm(analysis, "constant", "sms").error_code == "zero_variance"
    assert _arm(analysis, "constant", "sms").p_value_adjusted is None
    # The failed comparisons are not in the family: Holm over the eight good ones.
    good = [a for m in analysis.metrics[:4] for a in m.arms if not a.is_baseline]
    expected = multipletests([a.p_value for a in good], method="holm")[1]
    np.testing.assert_allclose([a.p_value_adjusted for a in good], expected, rtol=1e-12)


def test_precomputed_regression_effects_flow_into_the_analysis() -> None:
    data = _raw_data()
    y = np.concatenate([data[a]["spend"] for a in SIZES])
    arm_index = np.repeat([0, 1, 2], list(SIZES.values()))
    stratum = (np.concatenate([data[a]["before"] for a in SIZES]) > 20).astype(int)
    regression = arm_regression(ParticipantRows(y, arm_index, stratum), n_arms=3)
    metric = MetricInput(
        "spend_ols",
        "numeric",
        {a: MeanStats.from_values(data[a]["spend"]) for a in SIZES},
        effects={"sms": regression.effects[0], "call": regression.effects[1]},
    )
    analysis = analyze_experiment(arms=ARMS, assigned_counts=SIZES, metrics=[metric])
    assert analysis.metrics[0].method == "ols_hc1"
    assert _arm(analysis, "spend_ols", "call").effect == regression.effects[1].effect
    assert _arm(analysis, "spend_ols", "control").mean == regression.effects[0].baseline_mean


def test_guardrail_metrics_are_judged_per_arm() -> None:
    data = _raw_data()
    metric = MetricInput(
        "spend",
        "numeric",
        {a: MeanStats.from_values(d["spend"]) for a, d in data.items()},
        guardrail=GuardrailSpec(bad_direction="increase", threshold=0.0),
    )
    analysis = analyze_experiment(arms=ARMS, assigned_counts=SIZES, metrics=[metric])
    call = _arm(analysis, "spend", "call")
    assert call.guardrail is not None
    assert call.guardrail.significantly_worse == (call.ci_lower is not None and call.ci_lower > 0)
    assert _arm(analysis, "spend", "control").guardrail is None


def test_always_valid_p_values_never_increase_across_looks() -> None:
    data = _raw_data()
    previous = None
    last: dict[str, float] = {}
    for share in (0.25, 0.5, 0.75, 1.0):
        metrics = [
            MetricInput(
                "spend",
                "numeric",
                {
                    a: MeanStats.from_values(d["spend"][: int(share * SIZES[a])])
                    for a, d in data.items()
                },
            )
        ]
        analysis = analyze_experiment(
            arms=ARMS, assigned_counts=SIZES, metrics=metrics, previous=previous
        )
        fresh = analyze_experiment(arms=ARMS, assigned_counts=SIZES, metrics=metrics)
        previous = {
            ("spend", a.arm_id): a.sequential for a in analysis.metrics[0].arms if a.sequential
        }
        for arm in ("sms", "call"):
            current = _arm(analysis, "spend", arm)
            assert current.always_valid_p_value is not None
            assert 0.0 <= current.always_valid_p_value <= 1.0
            assert current.always_valid_p_value <= last.get(arm, 1.0)
            fresh_p = _arm(fresh, "spend", arm).always_valid_p_value
            assert current.always_valid_p_value == min(fresh_p, last.get(arm, 1.0))
            last[arm] = current.always_valid_p_value


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arms": [ArmSpec("a", "A")]}, "arms"),
        ({"arms": [ArmSpec("a", "A"), ArmSpec("a", "B")]}, "arms"),
        ({"baseline_arm_id": "nobody"}, "baseline_arm_id"),
        ({"assigned_counts": {"ghost": 3}}, "assigned_counts"),
        (
            {"metrics": [MetricInput("m", "numeric", {"ghost": MeanStats(3, 3.0, 5.0)})]},
            "metrics[0].arm_stats",
        ),
        (
            {
                "metrics": [
                    MetricInput(
                        "m",
                        "numeric",
                        {"control": MeanStats(3, 3.0, 5.0), "sms": RatioStats(3, 1, 1, 1, 1, 1)},
                    )
                ]
            },
            "metrics[0].arm_stats",
        ),
        (
            {
                "metrics": [
                    MetricInput("m", "numeric", {"control": MeanStats(3, 3.0, 5.0)}, method="delta")
                ]
            },
            "metrics[0].method",
        ),
        ({"alpha": 1.5}, "alpha"),
        (
            {
                "metrics": [
                    MetricInput("m", "numeric", {"control": MeanStats(3, 3.0, 5.0)}),
                    MetricInput("m", "binary", {"control": MeanStats(3, 1.0, 1.0)}),
                ]
            },
            "metrics",
        ),
    ],
)
def test_caller_mistakes_raise_with_the_field_named(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"arms": ARMS, "assigned_counts": SIZES, "metrics": []}
    arguments.update(kwargs)
    with pytest.raises(StatsInputError) as raised:
        analyze_experiment(**arguments)  # type: ignore[arg-type]
    assert raised.value.field == field
