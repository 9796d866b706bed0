"""Participants: datasources, participant types, and each type's fields with their values."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from xngin.errors import XnginError
from xngin.services import catalog
from xngin.services.fields import FieldRole, describe_fields
from xngin.store import catalog as catalog_repo
from xngin.web.charts import histogram_chart
from xngin.web.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.web.rendering import render
from xngin.web.svg import fmt_tick
from xngin.web.views import CARD_CHART_WIDTH, FieldView, field_view

router = APIRouter()

_EPOCH = dt.datetime(1970, 1, 1)


def _epoch_label(unit: str | None) -> Callable[[float], str]:
    """How an x tick of a histogram reads: dates for dates and timestamps, else a number."""
    if unit not in ("epoch_days", "epoch_seconds"):
        return fmt_tick
    seconds_per_unit = 86400.0 if unit == "epoch_days" else 1.0

    def label(value: float) -> str:
        try:
            return (_EPOCH + dt.timedelta(seconds=value * seconds_per_unit)).date().isoformat()
        except OverflowError:  # past year 9999: the number says more than no label
            return fmt_tick(value)

    return label


def with_histogram(view: FieldView, values: Mapping[str, Any] | None) -> FieldView:
    """The field card with its histogram drawn instead of the bare range, when it has one.

    Parameters
    ----------
    view : FieldView
        The card as :func:`xngin.web.views.field_view` made it.
    values : mapping, optional
        ``describe_fields``' values of the field; a ``"histogram"`` entry (``edges``,
        ``counts``, optional ``unit``) is drawn, anything else leaves ``view`` as it is.
    """
    histogram = (values or {}).get("histogram")
    if not histogram or not histogram.get("counts"):
        return view
    chart = histogram_chart(
        [float(e) for e in histogram["edges"]],
        [int(c) for c in histogram["counts"]],
        title=f"Distribution of {view.field_name}",
        description=f"Participants per bin of {view.field_name}, {view.summary}.",
        width=CARD_CHART_WIDTH,
        tick_format=_epoch_label(histogram.get("unit")),
    )
    return dataclasses.replace(view, chart=chart)


@router.get("/participants", name="ui_participants")
def participants(
    request: Request, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    datasources = catalog.list_datasources(runtime, session, principal)
    # Listing is a plain read, done by the repository as GET /v1/participant-types does.
    types = catalog_repo.list_participant_types(session, organization_id=principal.organization_id)
    return render(
        request,
        "participants.html",
        {
            "title": "Participants",
            "nav": "participants",
            "datasources": datasources,
            "participant_types": [
                {
                    "name": pt.name,
                    "datasource": pt.datasource.name,
                    "table_name": pt.table_name,
                    "unique_id_field": pt.unique_id_field,
                    "field_count": len(pt.fields or []),
                }
                for pt in types
            ],
        },
    )


@router.get("/participants/{name}", name="ui_participant_type")
def participant_type(
    name: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    pt = catalog.get_participant_type(session, principal, name, field="name")
    sheet = catalog.sheet_of(pt)
    problems: list[str] = []
    try:
        drift = catalog.participant_type_drift(runtime, pt)
    except XnginError as exc:
        drift = []
        problems.append(f"Could not compare the sheet with the table: {exc.message}")
    values: dict[str, Any] = {}
    broken = sorted({d.field_name for d in drift if d.severity == "error"})
    if broken:
        # Querying columns the table lost fails in the warehouse; show the sheet without values.
        problems.append(
            f"Values are not shown until the sheet matches the table again ({', '.join(broken)})."
        )
    for role in FieldRole if not broken else ():
        try:
            described = describe_fields(
                runtime, session, principal, participant_type=name, role=role, histograms=True
            )
        except XnginError as exc:
            problems.append(f"Could not read the {role} fields' values: {exc.message}")
            continue
        values.update({d.field_name: d.values for d in described})
    return render(
        request,
        "participant_type.html",
        {
            "title": f"Participant type {pt.name}",
            "nav": "participants",
            "pt": pt,
            "fields": [
                with_histogram(
                    field_view(row, values.get(row.field_name)), values.get(row.field_name)
                )
                for row in sheet.fields
            ],
            "drift": drift,
            "problems": problems,
        },
    )
