"""Lookups shared by every organization-scoped resource that users address by name
(datasources, participant types, metric definitions, features)."""

from __future__ import annotations

from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.store.models import Base

Named = TypeVar("Named", bound=Base)


def find_named(
    session: Session, model: type[Named], *, organization_id: str, name: str
) -> Named | None:
    """The organization's ``model`` row called ``name``, or None (never another org's)."""
    columns = model.__table__.c
    return session.scalar(
        sa.select(model).where(columns.organization_id == organization_id, columns.name == name)
    )


def list_named(session: Session, model: type[Named], *, organization_id: str) -> list[Named]:
    """The organization's ``model`` rows, ordered by name."""
    columns = model.__table__.c
    return list(
        session.scalars(
            sa.select(model)
            .where(columns.organization_id == organization_id)
            .order_by(columns.name)
        )
    )
