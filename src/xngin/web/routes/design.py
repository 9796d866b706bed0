"""Design: audience filters with a live count, arms, metrics, strata; power; assignment preview.

One form, several buttons (``op``): add or remove rows, run the power analysis, preview the
assignment, draw again with a new seed, download the preview as CSV, or save the experiment.
The preview and the saved experiment use the same seed and design, so saving assigns exactly
the participants the preview showed.
"""

from __future__ import annotations

import copy
import csv
import io
import re
import secrets
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from xngin.errors import XnginError
from xngin.services import experiments, lifecycle
from xngin.services.access import Principal
from xngin.services.assign import AssignmentOutcome, assign_audience
from xngin.services.audience import audience_size
from xngin.services.catalog import open_participant_type
from xngin.services.fields import FieldRole, describe_fields
from xngin.services.power import analyze_power
from xngin.services.runtime import Runtime
from xngin.store import catalog as catalog_repo
from xngin.web.deps import FormDep, PrincipalDep, RuntimeDep, SessionDep
from xngin.web.errors import FieldErrors, input_id, place_errors
from xngin.web.forms import RELATIONS, DesignForm, DesignRequest, FormInvalid
from xngin.web.rendering import ShowPage, render, secure_headers
from xngin.web.views import arm_sizes_chart, balance_rows, power_view, value_hint

router = APIRouter()

SECTIONS = ("filters", "arms", "metrics", "strata")
#: The form's buttons that do something beyond editing rows.
ACTIONS = frozenset({"power", "assign", "redraw", "download", "save"})
#: Strata rows shown in the preview table (the CSV has every participant).
MAX_STRATA_ROWS = 60
#: Distinct values offered as suggestions in a filter's value input.
MAX_SUGGESTIONS = 200


def _new_seed() -> int:
    return secrets.randbelow(2**62)


class _Sheet:
    """The participant type's fields by role, and the filter fields' values (for hints)."""

    def __init__(
        self, runtime: Runtime, session: Session, principal: Principal, participant_type: str
    ) -> None:
        pt = open_participant_type(runtime, session, principal, participant_type)
        self.name = pt.name
        self.filter_types = {k: str(v) for k, v in pt.sheet.allowed_filter_types().items()}
        self.metrics = [(r.field_name, str(r.data_type)) for r in pt.sheet.metrics()]
        self.strata = [(r.field_name, str(r.data_type)) for r in pt.sheet.strata()]
        self.values: dict[str, Any] = {}
        self.problem = ""
        try:
            described = describe_fields(
                runtime, session, principal, participant_type=pt.name, role=FieldRole.FILTER
            )
            self.values = {d.field_name: d.values for d in described}
        except XnginError as exc:
            self.problem = exc.message

    def filter_fields(self) -> list[dict[str, Any]]:
        out = []
        for name, data_type in self.filter_types.items():
            values = self.values.get(name) or {}
            suggestions = [
                "null" if v["value"] is None else str(v["value"])
                for v in values.get("distinct", [])[:MAX_SUGGESTIONS]
            ]
            out.append(
                {
                    "name": name,
                    "data_type": data_type,
                    "hint": value_hint(values),
                    "suggestions": suggestions,
                }
            )
        return out


def _page(
    request: Request,
    sheet: _Sheet,
    form: DesignForm,
    *,
    errors: FieldErrors | None = None,
    count: int | None = None,
    power: list[dict[str, Any]] | None = None,
    preview: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "design.html",
        {
            "title": f"Design an experiment on {sheet.name}",
            "nav": "design",
            "form": form,
            "sheet": sheet,
            "filter_fields": sheet.filter_fields(),
            "relations": RELATIONS,
            "errors": errors or FieldErrors(),
            "count": count,
            "power": power,
            "preview": preview,
        },
        status=status,
    )


def _errors(form: DesignForm, exc: FormInvalid | XnginError) -> FieldErrors:
    pairs = exc.errors if isinstance(exc, FormInvalid) else [(exc.field, exc.message)]
    return place_errors(pairs, input_names=form.input_names(), sections=SECTIONS)


def _fail(request: Request, sheet: _Sheet, form: DesignForm, exc: Exception) -> ShowPage:
    assert isinstance(exc, FormInvalid | XnginError)
    status = exc.status if isinstance(exc, XnginError) else 422
    return ShowPage(_page(request, sheet, form, errors=_errors(form, exc), status=status))


def _count(
    runtime: Runtime, session: Session, principal: Principal, form: DesignForm, sheet: _Sheet
) -> int | None:
    """The audience size for the page, or None when the filters cannot be counted yet."""
    try:
        # On a copy: reading the filters drops blank rows, which the page should keep showing.
        filters = copy.deepcopy(form).audience_filters(sheet.filter_types)
        return audience_size(
            runtime, session, principal, participant_type=sheet.name, filters=filters
        )
    except (FormInvalid, XnginError):
        return None


@router.get("/design", name="ui_design_start")
def design_start(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    participant_type: str | None = None,
) -> Response:
    if not participant_type:
        types = catalog_repo.list_participant_types(
            session, organization_id=principal.organization_id
        )
        return render(
            request,
            "design_choose.html",
            {"title": "Design an experiment", "nav": "design", "types": [t.name for t in types]},
        )
    sheet = _Sheet(runtime, session, principal, participant_type)
    form = DesignForm.initial(sheet.name, seed=_new_seed())
    count = _count(runtime, session, principal, form, sheet)
    return _page(request, sheet, form, count=count)


def _preview(outcome: AssignmentOutcome, design: DesignRequest) -> dict[str, Any]:
    names = [a.arm_name for a in design.arms]
    balance = outcome.balance_check
    return {
        "sample_size": outcome.sample_size,
        "arm_names": names,
        "arm_sizes": outcome.arm_sizes,
        "chart": arm_sizes_chart(names, outcome.arm_sizes),
        "balance": balance,
        "balance_rows": balance_rows(balance),
        "strata_counts": outcome.strata_counts[:MAX_STRATA_ROWS],
        "strata_total": len(outcome.strata_counts),
        "strata": design.strata,
    }


def _assign(
    runtime: Runtime, session: Session, principal: Principal, design: DesignRequest
) -> AssignmentOutcome:
    return assign_audience(
        runtime,
        session,
        principal,
        participant_type=design.participant_type,
        filters=design.filters,
        arms=design.arms,
        strata=design.strata,
        desired_n=design.desired_n,
        seed=design.seed,
    )


def _csv(outcome: AssignmentOutcome, design: DesignRequest) -> Iterator[bytes]:
    names = [a.arm_name for a in design.arms]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["participant_id", "arm_name", *design.strata])
    for i, participant_id in enumerate(outcome.participant_ids):
        label = outcome.stratum_labels[outcome.stratum_code[i]] if design.strata else {}
        writer.writerow(
            [participant_id, names[outcome.arm_index[i]], *(label.get(s) for s in design.strata)]
        )
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@router.post("/design", name="ui_design")
def design_action(
    request: Request,
    form_data: FormDep,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    form = DesignForm.from_form(form_data, strata=[str(s) for s in form_data.getlist("strata")])
    op = str(form_data.get("op", ""))
    sheet = _Sheet(runtime, session, principal, form.participant_type)
    if form.apply(op) or op not in ACTIONS:
        # Rows added or removed, or Enter pressed in a field: show the form again.
        return _page(request, sheet, form, count=_count(runtime, session, principal, form, sheet))
    if op == "redraw":
        form.seed = str(_new_seed())
        op = "assign"
    try:
        if op == "save":
            spec = form.to_experiment(sheet.filter_types)
            experiment = experiments.create_experiment(runtime, session, principal, spec)
            if experiment.type == "preassigned":
                lifecycle.perform_action(
                    runtime, session, principal, experiment_id=experiment.id, action="assign"
                )
            url = request.url_for("ui_experiment", experiment_id=experiment.id).path
            response = RedirectResponse(str(url), status_code=303)
            secure_headers(response)
            return response
        design = form.to_design(sheet.filter_types)
        if op == "power":
            if not design.metrics:
                raise FormInvalid([("metrics", "add a metric to run the power analysis")])
            analyses = analyze_power(
                runtime,
                session,
                principal,
                participant_type=design.participant_type,
                filters=design.filters,
                arms=design.arms,
                metrics=design.metrics,
                alpha=design.alpha,
                power=design.power,
                desired_n=design.desired_n,
                multiple_comparison=design.multiple_comparison,
            )
            count = _count(runtime, session, principal, form, sheet)
            return _page(request, sheet, form, count=count, power=[power_view(a) for a in analyses])
        outcome = _assign(runtime, session, principal, design)
        if op == "download":
            download = StreamingResponse(
                _csv(outcome, design),
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="assignment-preview.csv"'},
            )
            secure_headers(download)
            return download
        count = _count(runtime, session, principal, form, sheet)
        return _page(request, sheet, form, count=count, preview=_preview(outcome, design))
    except (FormInvalid, XnginError) as exc:
        raise _fail(request, sheet, form, exc) from exc


def _as_submitted(path: str | None, kept: list[int]) -> str | None:
    """An error's field renumbered to the filter rows as the page has them (blanks included)."""
    match = re.match(r"^filters\[(\d+)\](.*)$", path or "")
    if match is None or int(match.group(1)) >= len(kept):
        return path
    return f"filters[{kept[int(match.group(1))]}]{match.group(2)}"


@router.post("/design/count", name="ui_design_count")
def design_count(
    form_data: FormDep, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> JSONResponse:
    """The audience size for the filters in the form, for the page's live count.

    Answers ``{"count": int, "errors": []}``, or ``{"count": null, "errors": [{"input",
    "message"}]}`` (422) where ``input`` is the id of the input at fault (null: none).
    """
    form = DesignForm.from_form(form_data)
    names = form.input_names()
    kept = form.compact()
    pt = open_participant_type(runtime, session, principal, form.participant_type)
    filter_types = {k: str(v) for k, v in pt.sheet.allowed_filter_types().items()}
    try:
        filters = form.audience_filters(filter_types)
        count = audience_size(
            runtime, session, principal, participant_type=pt.name, filters=filters
        )
    except (FormInvalid, XnginError) as exc:
        pairs = exc.errors if isinstance(exc, FormInvalid) else [(exc.field, exc.message)]
        placed = place_errors(
            [(_as_submitted(f, kept), m) for f, m in pairs], input_names=names, sections=SECTIONS
        )
        errors: list[dict[str, str | None]] = [
            {"input": input_id(name), "message": m}
            for name, messages in placed.by_input.items()
            for m in messages
        ]
        errors += [{"input": None, "message": m} for m in placed.summary]
        errors += [{"input": None, "message": m} for v in placed.by_section.values() for m in v]
        return JSONResponse({"count": None, "errors": errors}, status_code=422)
    return JSONResponse({"count": count, "errors": []})
