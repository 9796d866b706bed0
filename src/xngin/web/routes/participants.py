"""Participants: datasources, participant types, and each type's fields with their values."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from xngin.errors import XnginError
from xngin.services import catalog
from xngin.services.fields import FieldRole, describe_fields
from xngin.store import catalog as catalog_repo
from xngin.web.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.web.rendering import render
from xngin.web.views import field_view

router = APIRouter()


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
                runtime, session, principal, participant_type=name, role=role
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
            "fields": [field_view(row, values.get(row.field_name)) for row in sheet.fields],
            "drift": drift,
            "problems": problems,
        },
    )
