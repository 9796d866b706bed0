"""Results: per metric, effects with confidence intervals as a forest plot, p-values raw and
adjusted, CUPED variance reduction, always-valid p-values, guardrails and the sample-ratio check.

The analysis is :func:`xngin.services.analysis.analyze`, as ``GET /v1/experiments/{id}/analysis``
computes it; like that endpoint it may stop a running experiment whose guardrail is breached
beyond doubt (an auto-stop guardrail), which the page then says.

Once the experiment has started, the analysis records a look (at most one a minute) and the page
adds the sequential view over time from :func:`xngin.services.analysis_looks.analysis_history`: per
metric and arm, the confidence sequence as a band (from the first look on) and the always-valid
p-value (from the second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from xngin.errors import XnginError
from xngin.services import analysis, experiments
from xngin.services.analysis_looks import analysis_history
from xngin.web.charts import SequenceLook, sequence_chart
from xngin.web.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.web.rendering import render
from xngin.web.views import results_view

router = APIRouter()

CORRECTIONS = {
    "holm": "Holm",
    "bh": "Benjamini-Hochberg",
    "bonferroni": "Bonferroni",
    "none": "none",
}
METHODS = {"auto": "per-arm tests (Welch, proportions, CUPED)", "regression": "regression"}


@router.get("/experiments/{experiment_id}/results", name="ui_results")
def results(
    experiment_id: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    correction: Literal["holm", "bh", "bonferroni", "none"] = "holm",
    method: Literal["auto", "regression"] = "auto",
) -> Response:
    view = experiments.describe(experiments.get_experiment(session, principal, experiment_id))
    problem = ""
    shown = None
    try:
        found = analysis.analyze(
            runtime,
            session,
            principal,
            experiment_id=experiment_id,
            correction=correction,
            method=method,
        )
        history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        if found.get("experiment_state") in analysis.STARTED_STATES:
            items = analysis_history(session, principal, experiment_id)["items"]
            history = {(i["metric_name"], i["arm_id"]): i["looks"] for i in items}
            for metric in found["metrics"]:
                for arm in metric["arms"]:
                    arm["history"] = history.get((metric["metric_name"], arm["arm_id"]), [])
        shown = results_view(found, alpha=float(found.get("alpha") or view["alpha"]))
        for metric in shown["metrics"]:
            bands = [
                _sequence_band(metric["metric_name"], arm)
                for arm in metric["arms"]
                if arm.get("history")
            ]
            metric["histories"] = [*bands, *metric.get("histories", [])]
    except XnginError as exc:
        problem = exc.message
    return render(
        request,
        "results.html",
        {
            "title": f"Results of {view['name']}",
            "nav": "experiments",
            "experiment": view,
            "analysis": shown,
            "problem": problem,
            "correction": correction,
            "method": method,
            "corrections": CORRECTIONS,
            "methods": METHODS,
        },
    )


def _days_since(at: str, first: datetime) -> float:
    return (datetime.fromisoformat(at) - first).total_seconds() / 86400


def _sequence_band(metric_name: str, arm: Mapping[str, Any]) -> Any:
    """The arm's confidence sequence over the looks, x in days since the first look."""
    looks: Sequence[Mapping[str, Any]] = arm["history"]
    first = datetime.fromisoformat(looks[0]["at"])
    points = [
        SequenceLook(
            x=_days_since(look["at"], first),
            estimate=look["effect"],
            lower=look["cs_lower"] if look["cs_lower"] is not None else float("nan"),
            upper=look["cs_upper"] if look["cs_upper"] is not None else float("nan"),
        )
        for look in looks
    ]
    return sequence_chart(
        points,
        title=f"Always-valid interval over time, {arm.get('arm_name')} on {metric_name}",
        description="The effect against the baseline at each analysis with its confidence "
        "sequence, which only narrows and stays valid however often it is looked at.",
        x_label="days since the first analysis",
        y_label=f"effect on {metric_name}",
    )
