"""The size of an audience, for the design page's live count.

This is the one use case the UI needs that no service offers yet; it only combines service and
warehouse functions (open the participant type, compile its filters, count in the warehouse)
and belongs in :mod:`xngin.services.design` once a JSON endpoint needs it too.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from xngin.dwh.audience import count_audience
from xngin.services.access import Principal
from xngin.services.catalog import open_participant_type
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
    return count_audience(pt.engine, pt.table, audience_condition(pt, filters))
