"""Admin endpoints: datasources, config sheets and participant types of an organization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, model_validator

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES
from xngin.services import catalog
from xngin.sheets import ParticipantSheet, SheetRow
from xngin.store import catalog as repo

router = APIRouter(tags=["admin"], responses=ERROR_RESPONSES)


# Datasources ------------------------------------------------------------------------------------


class DatasourceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Name participant types refer to.")
    url: str = Field(
        min_length=1,
        description="SQLAlchemy URL of the warehouse, e.g. postgresql+psycopg://user@host/db; "
        "may be written =secret:NAME to read it from the server's secrets.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Engine options: connect_args, pool_size, schema. Values may be =secret:NAME.",
    )


class DatasourceOut(BaseModel):
    name: str = Field(description="Datasource name.")
    dialect: str = Field(description="SQLAlchemy dialect (duckdb, postgresql, clickhouse, ...).")
    status: str = Field(description="'ok', 'unchecked', or why the warehouse cannot be reached.")
    declared: bool = Field(description="Declared in the server's settings, not through the API.")


class DatasourceList(BaseModel):
    items: list[DatasourceOut]


def _datasource_out(info: catalog.DatasourceInfo) -> DatasourceOut:
    return DatasourceOut(
        name=info.name, dialect=info.dialect, status=info.status, declared=info.declared
    )


@router.post("/datasources", summary="Register or replace a datasource", status_code=201)
def create_datasource(
    body: DatasourceCreate, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> DatasourceOut:
    info = catalog.register_datasource(
        runtime, session, principal, name=body.name, url=body.url, options=body.options
    )
    return _datasource_out(info)


@router.get("/datasources", summary="List datasources")
def list_datasources(
    principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> DatasourceList:
    return DatasourceList(
        items=[_datasource_out(i) for i in catalog.list_datasources(runtime, session, principal)]
    )


@router.delete("/datasources/{name}", summary="Delete a datasource", status_code=204)
def delete_datasource(name: str, principal: PrincipalDep, session: SessionDep) -> Response:
    catalog.delete_datasource(session, principal, name)
    return Response(status_code=204)


# Sheets -----------------------------------------------------------------------------------------


class SheetBootstrapRequest(BaseModel):
    datasource: str = Field(description="Datasource holding the table.")
    table_name: str = Field(min_length=1, description="Table or view, one row per participant.")


class SheetOut(BaseModel):
    fields: list[SheetRow] = Field(description="One row per column, roles proposed.")


@router.post("/sheets/bootstrap", summary="Propose a config sheet from a table's schema")
def bootstrap_sheet(
    body: SheetBootstrapRequest, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> SheetOut:
    sheet = catalog.bootstrap_sheet(
        runtime, session, principal, datasource=body.datasource, table_name=body.table_name
    )
    return SheetOut(fields=list(sheet.fields))


# Participant types ------------------------------------------------------------------------------


class ParticipantTypeCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Participant type name.")
    datasource: str = Field(description="Datasource holding the table.")
    table_name: str = Field(min_length=1, description="Table or view, one row per participant.")
    fields: list[SheetRow] | None = Field(
        default=None, description="The config sheet's rows (or give sheet_url)."
    )
    sheet_url: str | None = Field(
        default=None,
        description="A Google Sheet URL, or a CSV file name inside the server's sheets_dir.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ParticipantTypeCreate:
        if (self.fields is None) == (self.sheet_url is None):
            raise ValueError("give exactly one of fields or sheet_url")
        return self


class ParticipantTypeSummary(BaseModel):
    name: str = Field(description="Participant type name used by every other endpoint.")
    datasource: str = Field(description="Datasource holding the table.")
    table_name: str = Field(description="Warehouse table, one row per participant.")
    unique_id_field: str = Field(description="Column that identifies a participant.")


class DriftOut(BaseModel):
    kind: str = Field(description="column_dropped, type_changed or column_added.")
    field_name: str = Field(description="The column concerned.")
    severity: str = Field(description="error, warning or info.")
    message: str = Field(description="What changed and what to do.")


class SheetWarning(BaseModel):
    row: int | None = Field(description="Sheet row (1 = first row under the header).")
    field: str | None = Field(description="Column name concerned.")
    message: str = Field(description="What to look at.")


class ParticipantTypeOut(ParticipantTypeSummary):
    fields: list[SheetRow] = Field(description="The config sheet's rows.")
    sheet_url: str | None = Field(description="Where the sheet was read from, if anywhere.")
    drift: list[DriftOut] = Field(description="Differences between the sheet and the table now.")
    warnings: list[SheetWarning] = Field(
        default_factory=list, description="Sheet warnings found when it was registered."
    )


class ParticipantTypeList(BaseModel):
    items: list[ParticipantTypeSummary]


def _participant_type_out(
    runtime: Any, pt: Any, *, warnings: list[Any] | None = None
) -> ParticipantTypeOut:
    drift = catalog.participant_type_drift(runtime, pt)
    return ParticipantTypeOut(
        name=pt.name,
        datasource=pt.datasource.name,
        table_name=pt.table_name,
        unique_id_field=pt.unique_id_field,
        fields=list(catalog.sheet_of(pt).fields),
        sheet_url=pt.sheet_url,
        drift=[
            DriftOut(kind=d.kind, field_name=d.field_name, severity=d.severity, message=d.message)
            for d in drift
        ],
        warnings=[
            SheetWarning(row=w.row, field=w.field, message=w.message) for w in warnings or []
        ],
    )


@router.post("/participant-types", summary="Register a participant type", status_code=201)
def create_participant_type(
    body: ParticipantTypeCreate, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ParticipantTypeOut:
    sheet = ParticipantSheet(fields=tuple(body.fields)) if body.fields is not None else None
    pt, warnings = catalog.register_participant_type(
        runtime,
        session,
        principal,
        name=body.name,
        datasource=body.datasource,
        table_name=body.table_name,
        sheet=sheet,
        sheet_url=body.sheet_url,
    )
    return _participant_type_out(runtime, pt, warnings=warnings)


@router.get("/participant-types", summary="List participant types")
def list_participant_types(principal: PrincipalDep, session: SessionDep) -> ParticipantTypeList:
    rows = repo.list_participant_types(session, organization_id=principal.organization_id)
    return ParticipantTypeList(
        items=[
            ParticipantTypeSummary(
                name=pt.name,
                datasource=pt.datasource.name,
                table_name=pt.table_name,
                unique_id_field=pt.unique_id_field,
            )
            for pt in rows
        ]
    )


@router.get("/participant-types/{name}", summary="A participant type with its sheet and drift")
def get_participant_type(
    name: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ParticipantTypeOut:
    pt = catalog.get_participant_type(session, principal, name, field="name")
    return _participant_type_out(runtime, pt)
