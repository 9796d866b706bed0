"""How many participants match an audience's filters (the design page's live count and
``POST /v1/audience-size``), counted in the warehouse."""

from __future__ import annotations

from sqlalchemy.orm import Session

from xngin.dwh.audience import count_audience
from xngin.services.access import Principal
from xngin.services.catalog import open_participant_type, warehouse_queries
from xngin.services.design import FilterIn, audience_condition
from xngin.services.runtime import Runtime

__all__ = ["audience_size"]


def audience_size(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    participant_type: str,
    filters: list[FilterIn],
) -> int:
    """Participants of ``participant_type`` matching all ``filters`` (counted in the warehouse).

    Raises
    ------
    xngin.errors.InvalidInput
        A filter does not fit the sheet (``field`` names it, e.g. ``filters[0].value``).
    xngin.errors.NotFound, xngin.errors.Unavailable
        Unknown participant type; warehouse unreachable.
    """
    pt = open_participant_type(runtime, session, principal, participant_type)
    condition = audience_condition(pt, filters)
    with warehouse_queries(pt):
        return count_audience(pt.engine, pt.table, condition)
