"""Results: per metric, effects with confidence intervals as a forest plot, p-values raw and
adjusted, CUPED variance reduction, always-valid p-values, guardrails and the sample-ratio check.

The analysis is :func:`xngin.services.analysis.analyze`, as ``GET /v1/experiments/{id}/analysis``
computes it; like that endpoint it may stop a running experiment whose guardrail is breached
beyond doubt (an auto-stop guardrail), which the page then says.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from xngin.errors import XnginError
from xngin.services import analysis, experiments
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
        shown = results_view(found, alpha=float(found.get("alpha") or view["alpha"]))
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
