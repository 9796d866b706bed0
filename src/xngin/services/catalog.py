"""Datasources and participant types: registering them, and opening them for queries.

A datasource's URL and options are stored as the user wrote them (``=secret:NAME`` included) and
resolved only when an engine is made, so secrets never land in the app database or a response.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.dwh import engines as dwh_engines
from xngin.dwh import introspect
from xngin.dwh.schema import ColumnInfo, TableSchema
from xngin.errors import Conflict, InvalidInput, NotFound, XnginError
from xngin.services.access import Principal
from xngin.services.health import StoreStatus
from xngin.services.runtime import Runtime
from xngin.settings import SECRET_PREFIX, Settings, read_secret
from xngin.sheets import (
    Drift,
    ParticipantSheet,
    SheetProblem,
    SheetRow,
    check_sheet,
    detect_drift,
    is_google_sheet_url,
    load_sheet,
)
from xngin.store import catalog as repo
from xngin.store import organizations as orgs
from xngin.store.models import Datasource, ParticipantType


@dataclass(frozen=True, slots=True)
class DatasourceInfo:
    name: str
    dialect: str
    status: str
    declared: bool


@dataclass(frozen=True, slots=True)
class OpenParticipantType:
    """A participant type ready for queries: its engine, table and sheet."""

    name: str
    engine: sa.Engine
    table: sa.TableClause
    schema: TableSchema
    sheet: ParticipantSheet
    unique_id_field: str


def _resolve(settings: Settings, value: Any, where: str) -> Any:
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        secrets_dir = settings.secrets_dir
        return read_secret(value[len(SECRET_PREFIX) :], secrets_dir, where=where)
    if isinstance(value, dict):
        return {k: _resolve(settings, v, f"{where}.{k}") for k, v in value.items()}
    return value


def _secret_free_url(url: str) -> str:
    """The URL as shown to users: password hidden, =secret: references kept as written."""
    if url.startswith(SECRET_PREFIX):
        return url
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def datasource_engine(runtime: Runtime, ds: Datasource) -> sa.Engine:
    settings = runtime.settings
    try:
        url = _resolve(settings, ds.url, f"datasource {ds.name!r} url")
        options = _resolve(settings, dict(ds.options or {}), f"datasource {ds.name!r} options")
    except XnginError as exc:
        raise InvalidInput(exc.message, field="url") from exc
    return dwh_engines.get_engine(name=ds.name, url=url, options=options)


def _status(runtime: Runtime, ds: Datasource) -> str:
    try:
        engine = datasource_engine(runtime, ds)
        dwh_engines.check_connection(engine, name=ds.name)
    except XnginError as exc:
        return runtime.settings.redact(exc.message)
    return "ok"


def _info(runtime: Runtime, ds: Datasource, *, check: bool) -> DatasourceInfo:
    dialect = ds.url.split(":", 1)[0] if not ds.url.startswith(SECRET_PREFIX) else "secret"
    if not ds.url.startswith(SECRET_PREFIX):
        dialect = sa.make_url(ds.url).get_backend_name()
    return DatasourceInfo(
        name=ds.name,
        dialect=dialect,
        status=_status(runtime, ds) if check else "unchecked",
        declared=ds.declared,
    )


def register_datasource(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    name: str,
    url: str,
    options: Mapping[str, Any],
) -> DatasourceInfo:
    """Add or replace a datasource; a URL that does not parse or whose driver is missing is 422."""
    if not url.startswith(SECRET_PREFIX):
        try:
            sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise InvalidInput(
                f"url is not a SQLAlchemy URL ({_secret_free_url(url)})", field="url"
            ) from exc
    dwh_engines.ensure_dialect_available(
        _resolve(runtime.settings, url, "url") if url.startswith(SECRET_PREFIX) else url
    )
    ds = repo.upsert_datasource(
        session,
        organization_id=principal.organization_id,
        name=name,
        url=url,
        options=dict(options),
    )
    dwh_engines.forget_engine(name=name)
    return _info(runtime, ds, check=True)


def list_datasources(
    runtime: Runtime, session: Session, principal: Principal
) -> list[DatasourceInfo]:
    return [
        _info(runtime, ds, check=False)
        for ds in repo.list_datasources(session, organization_id=principal.organization_id)
    ]


def _get_datasource(session: Session, principal: Principal, name: str, *, field: str) -> Datasource:
    ds = repo.get_datasource(session, organization_id=principal.organization_id, name=name)
    if ds is None:
        raise NotFound(f"datasource {name!r} does not exist", field=field)
    return ds


def delete_datasource(session: Session, principal: Principal, name: str) -> None:
    ds = _get_datasource(session, principal, name, field="name")
    used = repo.count_participant_types_using(session, ds.id)
    if used:
        raise Conflict(
            f"datasource {name!r} is used by {used} participant type(s); delete those first",
            field="name",
        )
    session.delete(ds)
    dwh_engines.forget_engine(name=name)


def sync_declared_datasources(runtime: Runtime) -> None:
    """Copy datasources declared in the settings into the app database (as written)."""
    if not runtime.settings.datasources:
        return
    with runtime.sessions.begin() as session:
        for declared in runtime.settings.datasources:
            org = orgs.get_or_create_organization(session, declared.organization)
            repo.upsert_datasource(
                session,
                organization_id=org.id,
                name=declared.name,
                url=declared.url,
                options=declared.options,
                declared=True,
            )


def check_all_datasources(runtime: Runtime) -> list[StoreStatus]:
    with runtime.sessions() as session:
        rows = session.scalars(sa.select(Datasource).order_by(Datasource.name)).all()
        out = []
        for ds in rows:
            status = _status(runtime, ds)
            out.append(
                StoreStatus(
                    f"datasource {ds.name}",
                    _info(runtime, ds, check=False).dialect,
                    status == "ok",
                    "" if status == "ok" else status,
                )
            )
        return out


# Participant types ------------------------------------------------------------------------------


def table_schema(runtime: Runtime, ds: Datasource, table_name: str) -> TableSchema:
    return introspect.table_schema(datasource_engine(runtime, ds), table_name)


def bootstrap_sheet(
    runtime: Runtime, session: Session, principal: Principal, *, datasource: str, table_name: str
) -> ParticipantSheet:
    from xngin.sheets import bootstrap_sheet as make_sheet

    ds = _get_datasource(session, principal, datasource, field="datasource")
    engine = datasource_engine(runtime, ds)
    schema = introspect.table_schema(engine, table_name)
    candidates = introspect.unique_id_candidates(engine, schema)
    distinct = introspect.distinct_counts(engine, schema)
    return make_sheet(schema, distinct_counts=distinct, unique_id_candidates=candidates)


def register_participant_type(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    name: str,
    datasource: str,
    table_name: str,
    sheet: ParticipantSheet | None = None,
    sheet_url: str | None = None,
    allow_local_sheet: bool = False,
) -> tuple[ParticipantType, list[SheetProblem]]:
    """Check a sheet (given, or read from ``sheet_url``) against the table and save the type.

    Every problem of the sheet is reported at once (``SheetInvalid``); warnings are returned.
    ``allow_local_sheet`` lets the CLI read a CSV path; API callers may only name a Google Sheet
    or a CSV inside ``settings.sheets_dir``, so a request can never read other server files.
    """
    ds = _get_datasource(session, principal, datasource, field="datasource")
    engine = datasource_engine(runtime, ds)
    schema = introspect.table_schema(engine, table_name)
    distinct = introspect.distinct_counts(engine, schema)
    if sheet is not None:
        warnings = check_sheet(sheet, schema, distinct_counts=distinct)
    else:
        if sheet_url is None:
            raise InvalidInput("give the sheet's fields or a sheet_url", field="fields")
        location = _sheet_location(runtime.settings, sheet_url, allow_local=allow_local_sheet)
        checked = load_sheet(
            location,
            schema,
            distinct_counts=distinct,
            credentials_file=runtime.settings.google_credentials_file,
        )
        sheet, warnings = checked.sheet, list(checked.warnings)
    unique_id = sheet.unique_id()
    assert unique_id is not None  # a checked sheet has exactly one
    pt = repo.upsert_participant_type(
        session,
        organization_id=principal.organization_id,
        name=name,
        datasource=ds,
        table_name=table_name,
        unique_id_field=unique_id.field_name,
        fields=[row.model_dump(mode="json") for row in sheet.fields],
        sheet_url=sheet_url,
    )
    return pt, warnings


def _sheet_location(settings: Settings, location: str, *, allow_local: bool) -> str:
    if is_google_sheet_url(location) or allow_local:
        return location
    base = settings.sheets_dir
    if base is not None:
        path = (base / location).resolve()
        if path.is_relative_to(base.resolve()):
            return str(path)
    raise InvalidInput(
        "sheet_url must be a Google Sheet URL"
        + (f" or a CSV file name inside the server's sheets_dir ({base})" if base else "")
        + "; local files are read only by the CLI (`xngin participant-type register`)",
        field="sheet_url",
    )


def get_participant_type(
    session: Session, principal: Principal, name: str, *, field: str = "participant_type"
) -> ParticipantType:
    pt = repo.get_participant_type(session, organization_id=principal.organization_id, name=name)
    if pt is None:
        raise NotFound(f"participant type {name!r} does not exist", field=field)
    return pt


def sheet_of(pt: ParticipantType) -> ParticipantSheet:
    return ParticipantSheet(fields=tuple(SheetRow.model_validate(row) for row in pt.fields))


def participant_type_drift(runtime: Runtime, pt: ParticipantType) -> list[Drift]:
    schema = table_schema(runtime, pt.datasource, pt.table_name)
    return detect_drift(sheet_of(pt), schema)


def open_participant_type(
    runtime: Runtime, session: Session, principal: Principal, name: str
) -> OpenParticipantType:
    """Everything needed to query a participant type; columns come from its sheet (no round trip).

    The sheet was checked against the table when registered; later drift surfaces as a warehouse
    error naming the column, and in GET /v1/participant-types/{name}.
    """
    pt = get_participant_type(session, principal, name)
    engine = datasource_engine(runtime, pt.datasource)
    sheet = sheet_of(pt)
    schema = TableSchema(
        table_name=pt.table_name,
        columns=tuple(
            ColumnInfo(name=row.field_name, data_type=row.data_type) for row in sheet.fields
        ),
    )
    table = sa.table(pt.table_name, *(sa.column(c.name) for c in schema.columns))
    return OpenParticipantType(
        name=pt.name,
        engine=engine,
        table=table,
        schema=schema,
        sheet=sheet,
        unique_id_field=pt.unique_id_field,
    )


@contextmanager
def warehouse_queries(pt: OpenParticipantType) -> Iterator[None]:
    """Turn a query the warehouse refuses (a column dropped or retyped since the sheet was
    saved) into a 409 naming the participant type, instead of an internal error."""
    try:
        yield
    except XnginError:
        raise
    except Exception as exc:
        if not _is_query_error(exc):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        detail = reason[0][:300] if reason else type(exc).__name__
        raise Conflict(
            f"the warehouse refused the query for participant type {pt.name!r} "
            f"(table {pt.table.name!r}): {detail}. The table may have drifted from its sheet; "
            f"GET /v1/participant-types/{pt.name} lists the differences",
            field="participant_type",
            code="warehouse_query_failed",
        ) from exc


def _is_query_error(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return True
    try:
        from clickhouse_driver import errors as ch_errors
        from clickhouse_sqlalchemy import exceptions as ch_sa_errors
    except ImportError:  # pragma: no cover - core dependencies
        return False
    return isinstance(exc, ch_errors.Error | ch_sa_errors.DatabaseException)
