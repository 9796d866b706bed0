"""Repository for analysis looks: the sequential statistics of a started experiment over time.

Each call of the analysis on a started experiment may record one look per (metric, arm)
comparison; the latest look is passed back to the statistics as ``previous`` so that the
always-valid p-value never rises and the confidence sequence only narrows. Every function takes
the caller's session and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.store.models import AnalysisLook

__all__ = ["LookRow", "add_looks", "latest_look_at", "latest_looks", "list_looks"]

_TABLE: sa.Table = AnalysisLook.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class LookRow:
    """One stored look at one comparison, as plain values (``at`` in UTC)."""

    metric_name: str
    arm_id: str
    at: datetime
    n: int
    baseline_n: int
    effect: float
    std_error: float
    always_valid_p_value: float
    cs_lower: float
    cs_upper: float
    tau2: float


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _row(look: AnalysisLook) -> LookRow:
    return LookRow(
        metric_name=look.metric_name,
        arm_id=look.arm_id,
        at=_aware(look.at),
        n=look.n,
        baseline_n=look.baseline_n,
        effect=look.effect,
        std_error=look.std_error,
        always_valid_p_value=look.always_valid_p_value,
        cs_lower=look.cs_lower,
        cs_upper=look.cs_upper,
        tau2=look.tau2,
    )


def add_looks(session: Session, *, experiment_id: str, looks: Iterable[LookRow]) -> int:
    """Record looks of an experiment in the caller's transaction; returns how many."""
    rows = [
        {
            "experiment_id": experiment_id,
            "at": look.at,
            "metric_name": look.metric_name,
            "arm_id": look.arm_id,
            "n": look.n,
            "baseline_n": look.baseline_n,
            "effect": look.effect,
            "std_error": look.std_error,
            "always_valid_p_value": look.always_valid_p_value,
            "cs_lower": look.cs_lower,
            "cs_upper": look.cs_upper,
            "tau2": look.tau2,
        }
        for look in looks
    ]
    if rows:
        session.connection().execute(sa.insert(_TABLE), rows)
    return len(rows)


def latest_looks(session: Session, experiment_id: str) -> dict[tuple[str, str], LookRow]:
    """The most recent look per (metric name, arm id) of an experiment."""
    newest = (
        sa.select(
            _TABLE.c.metric_name,
            _TABLE.c.arm_id,
            sa.func.max(_TABLE.c.at).label("at"),
        )
        .where(_TABLE.c.experiment_id == experiment_id)
        .group_by(_TABLE.c.metric_name, _TABLE.c.arm_id)
        .subquery()
    )
    query = (
        sa.select(AnalysisLook)
        .join(
            newest,
            sa.and_(
                AnalysisLook.metric_name == newest.c.metric_name,
                AnalysisLook.arm_id == newest.c.arm_id,
                AnalysisLook.at == newest.c.at,
            ),
        )
        .where(AnalysisLook.experiment_id == experiment_id)
        .order_by(AnalysisLook.id)
    )
    # Two looks with the same time (not expected) resolve to the later row.
    return {(r.metric_name, r.arm_id): _row(r) for r in session.scalars(query)}


def latest_look_at(session: Session, experiment_id: str) -> datetime | None:
    """When the experiment's most recent look was recorded, or None before the first."""
    value = session.scalar(
        sa.select(sa.func.max(_TABLE.c.at)).where(_TABLE.c.experiment_id == experiment_id)
    )
    return _aware(value) if value is not None else None


def list_looks(session: Session, experiment_id: str) -> list[LookRow]:
    """Every look of an experiment, oldest first (ties in recording order)."""
    query = (
        sa.select(AnalysisLook)
        .where(AnalysisLook.experiment_id == experiment_id)
        .order_by(AnalysisLook.at, AnalysisLook.id)
    )
    return [_row(r) for r in session.scalars(query)]
