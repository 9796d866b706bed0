"""Looks of a running experiment's analysis: stored sequential results, passed back as
``previous`` so that always-valid p-values never rise and confidence sequences nest, and read
back as the sequential view over time (``GET /v1/experiments/{id}/analysis/history``).

A look is recorded only when the last one is at least :data:`LOOK_INTERVAL` old, which keeps
repeated GETs cheap and the history readable; skipping looks costs nothing statistically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from xngin.services.access import Principal
from xngin.services.lifecycle import load_experiment
from xngin.stats.analysis import MetricAnalysis
from xngin.stats.sequential import SequentialResult
from xngin.store import analysis_looks as look_repo

__all__ = ["LOOK_INTERVAL", "analysis_history", "look_due", "looks_of", "previous_from_looks"]

LOOK_INTERVAL = timedelta(minutes=1)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def previous_from_looks(
    latest: Mapping[tuple[str, str], look_repo.LookRow],
) -> dict[tuple[str, str], SequentialResult]:
    """The latest look per (metric, arm) in the form ``analyze_experiment`` takes as previous."""
    return {key: _sequential_of(look) for key, look in latest.items()}


def _sequential_of(look: look_repo.LookRow) -> SequentialResult:
    return SequentialResult(
        always_valid_p_value=look.always_valid_p_value,
        ci_lower=look.cs_lower,
        ci_upper=look.cs_upper,
        tau2=look.tau2,
    )


def look_due(latest: dict[tuple[str, str], look_repo.LookRow], now: datetime) -> bool:
    last = max((look.at for look in latest.values()), default=None)
    return last is None or now - last >= LOOK_INTERVAL


def looks_of(metrics: Sequence[MetricAnalysis], at: datetime) -> list[look_repo.LookRow]:
    """This analysis's sequential results as looks, one per comparison that has one."""
    looks = []
    for metric in metrics:
        baseline_n = metric.arms[0].n
        for arm in metric.arms[1:]:
            sequential, effect, std_error = arm.sequential, arm.effect, arm.effect_std_error
            if sequential is None or effect is None or std_error is None:
                continue
            values = (effect, std_error, sequential.always_valid_p_value, sequential.tau2)
            if not all(math.isfinite(v) for v in values):
                continue
            looks.append(
                look_repo.LookRow(
                    metric_name=metric.metric_name, arm_id=arm.arm_id, at=at, n=arm.n,
                    baseline_n=baseline_n, effect=effect, std_error=std_error,
                    always_valid_p_value=sequential.always_valid_p_value,
                    cs_lower=sequential.ci_lower, cs_upper=sequential.ci_upper,
                    tau2=sequential.tau2,
                )
            )  # fmt: skip
    return looks


def analysis_history(session: Session, principal: Principal, experiment_id: str) -> dict[str, Any]:
    """The stored looks of an experiment per metric and arm, oldest first.

    Parameters
    ----------
    session, principal
        The request's transaction (read only) and the caller.
    experiment_id : str
        The caller's experiment (404 otherwise); before it has started it has no looks.

    Returns
    -------
    dict
        ``{"experiment_id", "items": [{"metric_name", "arm_id", "arm_name", "looks": [{"at",
        "n", "baseline_n", "effect", "std_error", "always_valid_p_value", "cs_lower",
        "cs_upper"}]}]}``, items in the order of their first look.
    """
    experiment = load_experiment(session, principal, experiment_id)
    names = {arm.id: arm.name for arm in experiment.arms}
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for look in look_repo.list_looks(session, experiment.id):
        item = items.setdefault(
            (look.metric_name, look.arm_id),
            {"metric_name": look.metric_name, "arm_id": look.arm_id,
             "arm_name": names.get(look.arm_id), "looks": []},
        )  # fmt: skip
        item["looks"].append(
            {"at": look.at.isoformat(), "n": look.n, "baseline_n": look.baseline_n,
             "effect": look.effect, "std_error": look.std_error,
             "always_valid_p_value": look.always_valid_p_value,
             "cs_lower": _finite(look.cs_lower), "cs_upper": _finite(look.cs_upper)}
        )  # fmt: skip
    return {"experiment_id": experiment.id, "items": list(items.values())}
