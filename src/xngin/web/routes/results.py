"""Results: per metric, effects with confidence intervals as a forest plot, p-values raw and
adjusted, CUPED variance reduction, always-valid p-values, and the sample-ratio check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from xngin.errors import XnginError
from xngin.services import experiments
from xngin.services.access import Principal
from xngin.services.runtime import Runtime
from xngin.web.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.web.rendering import render
from xngin.web.views import results_view

router = APIRouter()


def _analysis(
    runtime: Runtime, session: Session, principal: Principal, experiment_id: str
) -> Any | None:
    """The analysis service's answer, or None in a build without it (it ships separately)."""
    import importlib

    try:
        analysis = importlib.import_module("xngin.services.analysis")
    except ModuleNotFoundError as exc:
        if exc.name != "xngin.services.analysis":
            raise
        return None
    return analysis.analyze_experiment(runtime, session, principal, experiment_id=experiment_id)


@router.get("/experiments/{experiment_id}/results", name="ui_results")
def results(
    experiment_id: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    view = experiments.describe(experiments.get_experiment(session, principal, experiment_id))
    problem = ""
    shown = None
    try:
        found = _analysis(runtime, session, principal, experiment_id)
        if found is None:
            problem = "The analysis service is not part of this build yet."
        else:
            shown = results_view(found, alpha=float(view.get("alpha") or 0.05))
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
        },
    )
