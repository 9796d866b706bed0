"""An experiment's stored assignments for people and files: keyset pages and streamed CSV.

Pages are ordered by participant ID; ``next_cursor`` is the last ID of a page, base64url-encoded so
that any ID travels safely in a query string. The CSV export streams from a server-side cursor, so
its memory use does not grow with the audience.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from xngin.errors import InvalidInput, NotFound
from xngin.services.access import Principal
from xngin.services.runtime import Runtime
from xngin.store import assignments as repo

__all__ = [
    "MAX_PAGE",
    "AssignmentItem",
    "AssignmentPage",
    "decode_cursor",
    "encode_cursor",
    "export_csv",
    "list_assignments",
]

MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class AssignmentItem:
    participant_id: str
    arm_id: str
    arm_name: str
    assigned_at: datetime
    strata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AssignmentPage:
    items: list[AssignmentItem]
    next_cursor: str | None


def _owned_rows(session: Session, principal: Principal, experiment_id: str) -> repo.ServingRows:
    rows = repo.read_serving_rows(session, experiment_id)
    if rows is None or rows.experiment["organization_id"] != principal.organization_id:
        raise NotFound(f"experiment {experiment_id!r} does not exist", field="experiment_id")
    return rows


def encode_cursor(participant_id: str) -> str:
    return base64.urlsafe_b64encode(participant_id.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The participant ID in a cursor; anything :func:`encode_cursor` did not make is refused."""
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode("ascii")
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        if encode_cursor(decoded) == cursor:
            return decoded
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise InvalidInput(
        f"cursor {cursor[:40]!r} is not a cursor from a previous page's next_cursor",
        field="cursor",
    )


class _StrataCache(dict[str | None, dict[str, Any]]):
    """Parsed strata JSON by text: a few distinct texts serve millions of rows."""

    def __missing__(self, text: str | None) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(text) if text else {}
        self[text] = value
        return value


def list_assignments(
    session: Session, principal: Principal, *, experiment_id: str, cursor: str | None, limit: int
) -> AssignmentPage:
    """One page of an experiment's assignments ordered by participant ID.

    Parameters
    ----------
    session, principal
        The request's session and caller; another organization's experiment is 404.
    experiment_id : str
        The experiment.
    cursor : str or None
        ``next_cursor`` of the previous page; None for the first page.
    limit : int
        Page size, 1 to 10,000.

    Returns
    -------
    AssignmentPage
        ``next_cursor`` is None when this page is the last.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}; got {limit}", field="limit")
    rows = _owned_rows(session, principal, experiment_id)
    names = {a["id"]: a["name"] for a in rows.arms}
    strata = _StrataCache()
    page = repo.list_assignments(
        session,
        experiment_id=experiment_id,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    items = [
        AssignmentItem(
            r.participant_id, r.arm_id, names.get(r.arm_id, ""), r.assigned_at, strata[r.strata]
        )
        for r in page
    ]
    last = encode_cursor(items[-1].participant_id) if len(items) == limit else None
    return AssignmentPage(items=items, next_cursor=last)


def export_csv(
    runtime: Runtime, session: Session, principal: Principal, *, experiment_id: str
) -> Iterator[bytes]:
    """All assignments as CSV chunks: ``participant_id,arm_id,arm_name,<strata fields...>``.

    The experiment is checked now (404 before any byte is sent); the rows are then read from a
    server-side cursor on a connection of their own while the caller consumes the iterator, so
    memory stays at one chunk for any number of participants.
    """
    rows = _owned_rows(session, principal, experiment_id)
    names = {a["id"]: a["name"] for a in rows.arms}
    fields = [str(f) for f in (rows.experiment["design"] or {}).get("strata") or []]

    def cell(value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else value

    def chunks() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["participant_id", "arm_id", "arm_name", *fields])
        strata = _StrataCache()
        with runtime.app_engine.connect() as conn:
            for chunk in repo.iter_assignment_chunks(conn, experiment_id=experiment_id):
                for pid, arm_id, _, text in chunk:
                    values = strata[text]
                    writer.writerow(
                        [pid, arm_id, names.get(arm_id, ""), *(cell(values.get(f)) for f in fields)]
                    )
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue().encode()

    return chunks()
