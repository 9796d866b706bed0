"""POST /v1/events: exposures and outcome events, in batches, idempotent by event_id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES, ErrorResponse
from xngin.services.events import EventBatch, record_events

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    422: {
        "model": ErrorResponse,
        "description": "Some events are not acceptable; the message lists every problem as "
        "events[i].field, the field names the first. Nothing was stored.",
    },
    503: {
        "model": ErrorResponse,
        "description": "The event store cannot be reached; nothing was stored, retry the batch.",
    },
}

router = APIRouter(tags=["events"], responses=RESPONSES)


class IngestOut(BaseModel):
    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(
        description="Events already stored (same event_id), or repeated within the batch."
    )


@router.post(
    "/events",
    summary="Record exposures and outcome events (a batch, all or nothing)",
    description="Exposures record the arm the participant is assigned to (looked up, never "
    "taken from the request); an exposure of a participant not assigned in the experiment is "
    "refused. Resending a batch is safe: known event ids count as duplicates.",
)
def post_events(
    body: EventBatch, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> IngestOut:
    result = record_events(runtime, session, principal, body.events)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)
