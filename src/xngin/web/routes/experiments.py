"""Experiments: the list, one experiment's page (design, lifecycle, audit log, participant
lookup), confirmation of stop and abandon, and the assignments as CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from xngin.errors import InvalidInput, XnginError
from xngin.services import assignment_export, experiments, lifecycle, serving
from xngin.services.access import Principal
from xngin.store import assignments as assignment_repo
from xngin.store.models import Experiment
from xngin.web.deps import FormDep, PrincipalDep, RuntimeDep, SessionDep
from xngin.web.errors import FieldErrors
from xngin.web.rendering import ShowPage, render, secure_headers
from xngin.web.views import arm_sizes_chart, balance_rows, power_view

router = APIRouter()

#: Actions that end or discard an experiment: asked for again on a page of their own.
CONFIRMED_ACTIONS = frozenset({"stop", "abandon"})
#: States from which there is something to analyze.
ANALYZABLE_STATES = frozenset({"committed", "running", "paused", "completed", "stopped"})
PAGE_SIZE = 50
MAX_PARTICIPANT_ID = 200

ACTION_LABELS = {
    "assign": "Assign again",
    "commit": "Commit (freeze the design)",
    "start": "Start",
    "pause": "Pause",
    "resume": "Resume",
    "stop": "Stop…",
    "abandon": "Abandon…",
}


@router.get("/experiments", name="ui_experiments")
def experiment_list(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    cursor: str | None = None,
    state: str | None = None,
) -> Response:
    states = [state] if state else []
    page, next_cursor = experiments.list_experiments(
        session, principal, states=states, limit=PAGE_SIZE, cursor=cursor
    )
    return render(
        request,
        "experiments.html",
        {
            "title": "Experiments",
            "nav": "experiments",
            "items": [experiments.describe(e) for e in page],
            "next_cursor": next_cursor,
            "state": state or "",
            "states": [s.value for s in lifecycle.State],
        },
    )


def _lookup(session: Session, experiment: Experiment, participant_id: str) -> dict[str, Any] | None:
    """Which arm a participant is stored in, read-only.

    Unlike the API's lookup this never assigns an online newcomer: looking someone up in the
    UI must not change the experiment.
    """
    participant_id = participant_id.strip()
    if not participant_id:
        return None
    if len(participant_id) > MAX_PARTICIPANT_ID:
        raise InvalidInput(
            f"a participant ID has at most {MAX_PARTICIPANT_ID} characters; "
            f"got {len(participant_id)}",
            field="participant_id",
        )
    stored = assignment_repo.get_assignment(
        session, experiment_id=experiment.id, participant_id=participant_id
    )
    arms = {a.id: a for a in experiment.arms}
    if stored is None:
        return {"participant_id": participant_id, "arm": None, "assigned_at": None}
    arm = arms.get(stored[0])
    return {
        "participant_id": participant_id,
        "arm": {"arm_id": stored[0], "arm_name": arm.name if arm else stored[0],
                "config": arm.config if arm else None},
        "assigned_at": stored[1],
    }  # fmt: skip


def _detail_context(
    session: Session,
    principal: Principal,
    experiment_id: str,
    *,
    participant_id: str = "",
) -> dict[str, Any]:
    experiment = experiments.get_experiment(session, principal, experiment_id)
    view = experiments.describe(experiment)
    summary = view.get("assign_summary")
    assignment = None
    if summary:
        names = [a["arm_name"] for a in summary.get("arm_sizes", [])]
        sizes = [int(a["size"]) for a in summary.get("arm_sizes", [])]
        assignment = {
            **summary,
            "chart": arm_sizes_chart(names, sizes),
            "arm_names": names,
            "balance_rows": balance_rows(summary.get("balance_check") or {}),
        }
    lookup_errors = FieldErrors()
    lookup = None
    try:
        lookup = _lookup(session, experiment, participant_id)
    except XnginError as exc:
        lookup_errors = FieldErrors(by_input={"participant_id": [exc.message]})
    return {
        "title": view["name"],
        "nav": "experiments",
        "experiment": view,
        "actions": [
            {
                "name": a,
                "label": "Assign participants"
                if a == "assign" and view["state"] == "draft"
                else ACTION_LABELS.get(a, a),
                "confirm": a in CONFIRMED_ACTIONS,
            }
            for a in view["allowed_actions"]
        ],
        "power": [power_view(a) for a in view.get("power_analyses") or []],
        "assignment": assignment,
        "audit": experiments.audit_log(session, principal, experiment_id),
        "analyzable": view["state"] in ANALYZABLE_STATES,
        "participant_id": participant_id,
        "lookup": lookup,
        "lookup_errors": lookup_errors,
        "errors": FieldErrors(),
    }


@router.get("/experiments/{experiment_id}", name="ui_experiment")
def experiment_detail(
    experiment_id: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    participant_id: str = "",
) -> Response:
    context = _detail_context(session, principal, experiment_id, participant_id=participant_id)
    status = 422 if context["lookup_errors"] else 200
    return render(request, "experiment.html", context, status=status)


@router.get("/experiments/{experiment_id}/confirm/{action}", name="ui_experiment_confirm")
def confirm_action(
    experiment_id: str,
    action: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
) -> Response:
    if action not in CONFIRMED_ACTIONS:
        raise InvalidInput(f"{action!r} needs no confirmation", field="action")
    view = experiments.describe(experiments.get_experiment(session, principal, experiment_id))
    return render(
        request,
        "confirm_action.html",
        {
            "title": f"{action.capitalize()} {view['name']}?",
            "nav": "experiments",
            "experiment": view,
            "action": action,
            "errors": FieldErrors(),
            "reason": "",
        },
    )


@router.post("/experiments/{experiment_id}/actions/{action}", name="ui_experiment_action")
def experiment_action(
    experiment_id: str,
    action: str,
    request: Request,
    form: FormDep,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    reason = str(form.get("reason", "")) or None
    try:
        if action in CONFIRMED_ACTIONS and form.get("confirmed") != "yes":
            raise InvalidInput(f"confirm that the experiment should {action}", field="confirmed")
        lifecycle.perform_action(
            runtime,
            session,
            principal,
            experiment_id=experiment_id,
            action=action,
            reason=reason,
        )
    except XnginError as exc:
        if action in CONFIRMED_ACTIONS:
            view = experiments.describe(
                experiments.get_experiment(session, principal, experiment_id)
            )
            page = render(
                request,
                "confirm_action.html",
                {
                    "title": f"{action.capitalize()} {view['name']}?",
                    "nav": "experiments",
                    "experiment": view,
                    "action": action,
                    "reason": reason or "",
                    "errors": FieldErrors(
                        by_input={exc.field or "reason": [exc.message]}
                        if exc.field in ("reason", "confirmed")
                        else {},
                        summary=[] if exc.field in ("reason", "confirmed") else [exc.message],
                    ),
                },
                status=exc.status,
            )
        else:
            context = _detail_context(session, principal, experiment_id)
            context["errors"] = FieldErrors(summary=[exc.message])
            page = render(request, "experiment.html", context, status=exc.status)
        raise ShowPage(page) from exc
    # Lookups are served from a cache: drop this experiment's entry now that its state moved.
    serving.invalidate_experiment(runtime, experiment_id)
    url = request.url_for("ui_experiment", experiment_id=experiment_id).path
    response = RedirectResponse(str(url), status_code=303)
    secure_headers(response)
    return response


@router.get("/experiments/{experiment_id}/assignments.csv", name="ui_assignments_csv")
def assignments_csv(
    experiment_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    chunks = assignment_export.export_csv(runtime, session, principal, experiment_id=experiment_id)
    response = StreamingResponse(
        chunks,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="assignments-{experiment_id}.csv"'},
    )
    secure_headers(response)
    return response
