"""Power analysis of a design: baselines from the warehouse (one query), formulas from stats."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from sqlalchemy.orm import Session

from xngin.dwh.baselines import metric_baselines
from xngin.dwh.schema import DataType
from xngin.services.access import Principal
from xngin.services.catalog import open_participant_type, warehouse_queries
from xngin.services.design import (
    ArmIn,
    FilterIn,
    MetricTargetIn,
    audience_condition,
    check_arms,
    sheet_fields,
    stats_input_errors,
)
from xngin.services.runtime import Runtime
from xngin.stats.power import MetricType, PowerDesign
from xngin.stats.power_report import analyze_metric_power


def analyze_power(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    participant_type: str,
    filters: list[FilterIn],
    arms: list[ArmIn],
    metrics: list[MetricTargetIn],
    alpha: float,
    power: float,
    desired_n: int | None,
    multiple_comparison: Literal["none", "bonferroni"] = "none",
) -> list[dict[str, Any]]:
    """Per metric: baseline, required n per arm and total, sufficiency, MDEs and a power curve.

    Returns plain dicts shaped as API.md's ``analyses`` items, so they can be stored with an
    experiment as they are.
    """
    check_arms(arms)
    pt = open_participant_type(runtime, session, principal, participant_type)
    columns = sheet_fields(pt, [m.field_name for m in metrics], role="metric", field="metrics")
    condition = audience_condition(pt, filters)
    with stats_input_errors():
        design = PowerDesign(
            alpha=alpha,
            power=power,
            arm_weights=tuple(a.weight for a in arms),
            multiple_comparison=multiple_comparison,
        )
    with warehouse_queries(pt):
        baselines = metric_baselines(pt.engine, pt.table, columns, filters=condition)
    analyses = []
    for i, (metric, column) in enumerate(zip(metrics, columns, strict=True)):
        b = baselines[column.name]
        metric_type: MetricType = "binary" if column.data_type is DataType.BOOLEAN else "numeric"
        with stats_input_errors():
            result = analyze_metric_power(
                metric_type=metric_type,
                mean=b.mean,
                stddev=b.stddev,
                count=b.available_n,
                nonnull_count=b.available_nonnull_n,
                metric_target=metric.metric_target,
                metric_pct_change=metric.metric_pct_change,
                design=design,
                desired_n=desired_n,
                metric_field_prefix=f"metrics[{i}].",
            )
        analyses.append(
            {
                "field_name": column.name,
                "metric_type": result.metric_type,
                "baseline": result.baseline,
                "stddev": result.stddev,
                "available_n": result.available_n,
                "available_nonnull_n": result.available_nonnull_n,
                "target": result.target,
                "effect": result.effect,
                "target_n": result.target_n,
                "n_per_arm": list(result.n_per_arm) if result.n_per_arm else None,
                "sufficient_n": result.sufficient_n,
                "target_possible": result.target_possible,
                "mde_available_n": result.mde_available_n.effect
                if result.mde_available_n
                else None,
                "mde_available_n_target": (
                    result.mde_available_n.target if result.mde_available_n else None
                ),
                "mde_desired_n": result.mde_desired_n.effect if result.mde_desired_n else None,
                "messages": list(result.messages),
                "power_curve": [asdict(p) for p in result.power_curve],
            }
        )
    return analyses
