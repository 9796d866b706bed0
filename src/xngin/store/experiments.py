"""Repository for saved experiments, their arms and their audit log."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from xngin.store.models import Arm, AuditEntry, Experiment


def get_experiment(
    session: Session, *, organization_id: str, experiment_id: str, for_update: bool = False
) -> Experiment | None:
    """The experiment with its arms, or None when it does not exist in this organization.

    ``for_update`` locks the row until the transaction ends (PostgreSQL), so two requests acting
    on the same experiment take turns instead of one failing on a stale version.
    """
    query = (
        sa.select(Experiment)
        .where(Experiment.id == experiment_id, Experiment.organization_id == organization_id)
        .options(selectinload(Experiment.arms), selectinload(Experiment.participant_type))
    )
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def list_experiments(
    session: Session,
    *,
    organization_id: str,
    states: Collection[str] = (),
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> Sequence[Experiment]:
    """Experiments newest first (by created_at, then id), at most ``limit`` of them.

    ``after`` is the (created_at, id) of the last experiment of the previous page: keyset paging
    stays stable when experiments are created between two page requests.
    """
    query = (
        sa.select(Experiment)
        .where(Experiment.organization_id == organization_id)
        .options(selectinload(Experiment.arms), selectinload(Experiment.participant_type))
        .order_by(Experiment.created_at.desc(), Experiment.id.desc())
        .limit(limit)
    )
    if states:
        query = query.where(Experiment.state.in_(list(states)))
    if after is not None:
        created_at, experiment_id = after
        query = query.where(
            sa.or_(
                Experiment.created_at < created_at,
                sa.and_(Experiment.created_at == created_at, Experiment.id < experiment_id),
            )
        )
    return session.scalars(query).all()


def arm_ids_in_use(session: Session, arm_ids: Collection[str]) -> set[str]:
    """Which of ``arm_ids`` already name an arm (of any experiment)."""
    if not arm_ids:
        return set()
    return set(session.scalars(sa.select(Arm.id).where(Arm.id.in_(list(arm_ids)))).all())


def move_state(
    session: Session,
    *,
    experiment_id: str,
    expected_state: str,
    new_state: str,
    now: datetime,
) -> bool:
    """Change the state only if it still is ``expected_state``; True when this call changed it.

    One conditional UPDATE: when several API replicas run the scheduler, each tries the same
    move and the database lets exactly one of them match the row. The version column is bumped
    as the ORM would, so a request holding the old version fails instead of overwriting.
    """
    result = session.execute(
        sa.update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.state == expected_state)
        .values(state=new_state, version=Experiment.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def due_starts(session: Session, *, now: datetime) -> Sequence[tuple[str, str, datetime]]:
    """(id, organization_id, start_at) of committed experiments whose start time has come."""
    rows = session.execute(
        sa.select(Experiment.id, Experiment.organization_id, Experiment.start_at)
        .where(
            Experiment.state == "committed",
            Experiment.start_at.is_not(None),
            Experiment.start_at <= now,
        )
        .order_by(Experiment.start_at, Experiment.id)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def due_ends(session: Session, *, now: datetime) -> Sequence[tuple[str, str, str, datetime]]:
    """(id, organization_id, state, end_at) of running/paused experiments whose end has come."""
    rows = session.execute(
        sa.select(Experiment.id, Experiment.organization_id, Experiment.state, Experiment.end_at)
        .where(
            Experiment.state.in_(["running", "paused"]),
            Experiment.end_at.is_not(None),
            Experiment.end_at <= now,
        )
        .order_by(Experiment.end_at, Experiment.id)
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def add_audit_entry(
    session: Session,
    *,
    experiment_id: str,
    actor: str,
    action: str,
    changes: dict[str, Any],
    at: datetime,
) -> AuditEntry:
    entry = AuditEntry(
        experiment_id=experiment_id, actor=actor, action=action, changes=changes, at=at
    )
    session.add(entry)
    return entry


def list_audit_entries(session: Session, *, experiment_id: str) -> Sequence[AuditEntry]:
    """The experiment's audit log, oldest first (insertion order breaks ties in time)."""
    return session.scalars(
        sa.select(AuditEntry)
        .where(AuditEntry.experiment_id == experiment_id)
        .order_by(AuditEntry.id)
    ).all()
