"""Repository for datasources and participant types (what lives in which warehouse table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.store.models import Datasource, ParticipantType
from xngin.store.named import find_named, list_named


def get_datasource(session: Session, *, organization_id: str, name: str) -> Datasource | None:
    return find_named(session, Datasource, organization_id=organization_id, name=name)


def list_datasources(session: Session, *, organization_id: str) -> Sequence[Datasource]:
    return list_named(session, Datasource, organization_id=organization_id)


def upsert_datasource(
    session: Session,
    *,
    organization_id: str,
    name: str,
    url: str,
    options: dict[str, Any],
    declared: bool = False,
) -> Datasource:
    ds = get_datasource(session, organization_id=organization_id, name=name)
    if ds is None:
        ds = Datasource(organization_id=organization_id, name=name)
        session.add(ds)
    ds.url, ds.options, ds.declared = url, options, declared
    session.flush()
    return ds


def count_participant_types_using(session: Session, datasource_id: str) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count()).where(ParticipantType.datasource_id == datasource_id)
        )
        or 0
    )


def get_participant_type(
    session: Session, *, organization_id: str, name: str
) -> ParticipantType | None:
    return find_named(session, ParticipantType, organization_id=organization_id, name=name)


def list_participant_types(session: Session, *, organization_id: str) -> Sequence[ParticipantType]:
    return list_named(session, ParticipantType, organization_id=organization_id)


def upsert_participant_type(
    session: Session,
    *,
    organization_id: str,
    name: str,
    datasource: Datasource,
    table_name: str,
    unique_id_field: str,
    fields: list[dict[str, Any]],
    sheet_url: str | None,
) -> ParticipantType:
    pt = get_participant_type(session, organization_id=organization_id, name=name)
    if pt is None:
        pt = ParticipantType(organization_id=organization_id, name=name)
        session.add(pt)
    pt.datasource_id = datasource.id
    pt.table_name = table_name
    pt.unique_id_field = unique_id_field
    pt.fields = fields
    pt.sheet_url = sheet_url
    session.flush()
    return pt
