"""The app database's tables (SQLAlchemy ORM). Never exposed through the API: see api/schemas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Constraint names are fixed so that migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    # sha256 of the key: keys are 256-bit random, so a slow hash would add nothing but latency.
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    organization: Mapped[Organization] = relationship()


class Datasource(Base):
    __tablename__ = "datasources"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    # As written by the user: may be "=secret:NAME", resolved only when an engine is made.
    url: Mapped[str] = mapped_column(sa.Text)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    declared: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class ParticipantType(Base):
    __tablename__ = "participant_types"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    datasource_id: Mapped[str] = mapped_column(
        sa.ForeignKey("datasources.id", ondelete="RESTRICT"), index=True
    )
    table_name: Mapped[str] = mapped_column(sa.String(500))
    unique_id_field: Mapped[str] = mapped_column(sa.String(200))
    # The config sheet's rows (field_name, data_type, description, is_* flags, extra).
    fields: Mapped[list[Any]] = mapped_column(default=list)
    sheet_url: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    datasource: Mapped[Datasource] = relationship()


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    participant_type_id: Mapped[str] = mapped_column(
        sa.ForeignKey("participant_types.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(300))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    hypothesis: Mapped[str] = mapped_column(sa.Text, default="")
    type: Mapped[str] = mapped_column(sa.String(20))  # preassigned | online
    state: Mapped[str] = mapped_column(sa.String(20), index=True)
    # The design as submitted: filters, metrics, strata, alpha, power, desired_n.
    design: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    start_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    traffic_allocation: Mapped[float] = mapped_column(default=100.0)
    ramp_schedule: Mapped[list[Any]] = mapped_column(default=list)
    power_analyses: Mapped[list[Any]] = mapped_column(default=list)
    assign_summary: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    stop_reason: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # Bumped on every change; optimistic concurrency for PATCH and state actions.
    version: Mapped[int] = mapped_column(default=1)

    participant_type: Mapped[ParticipantType] = relationship()
    arms: Mapped[list[Arm]] = relationship(
        order_by="Arm.position", cascade="all, delete-orphan", back_populates="experiment"
    )

    __mapper_args__ = {"version_id_col": version}


class Arm(Base):
    __tablename__ = "arms"
    __table_args__ = (sa.UniqueConstraint("experiment_id", "position"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    experiment_id: Mapped[str] = mapped_column(
        sa.ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    weight: Mapped[float] = mapped_column(default=1.0)
    config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    experiment: Mapped[Experiment] = relationship(back_populates="arms")


class Assignment(Base):
    """Which arm a participant is in. One row per (experiment, participant), ever."""

    __tablename__ = "assignments"

    experiment_id: Mapped[str] = mapped_column(
        sa.ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    participant_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    arm_id: Mapped[str] = mapped_column(sa.String(32))
    assigned_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # Strata values at assignment time (JSON text), for exports and per-stratum analysis.
    strata: Mapped[str | None] = mapped_column(sa.Text)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    experiment_id: Mapped[str] = mapped_column(
        sa.ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(50))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MetricDefinition(Base):
    """A named way to measure participants: an event aggregate, a ratio of two, or a sheet column.

    ``source`` is the definition's JSON as validated by ``services.metrics`` (``kind`` "event",
    "ratio" or "sheet" and its fields); experiments refer to definitions by ``name``.
    """

    __tablename__ = "metric_definitions"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    unit: Mapped[str] = mapped_column(sa.String(50), default="")
    type: Mapped[str] = mapped_column(sa.String(20))  # binary | mean | count | ratio
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Adjust with the same events before each participant's anchor (CUPED); event sources only.
    cuped: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Feature(Base):
    """A feature flag or setting whose value experiments' arms may set (``config.features``)."""

    __tablename__ = "features"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    type: Mapped[str] = mapped_column(sa.String(20))  # boolean | string | number | json
    # None: any value of the type; else the list of accepted values.
    allowed_values: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    # Wrapped as {"value": ...} so that a JSON null default stays distinguishable from SQL NULL.
    default_value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ExperimentMetric(Base):
    """A metric an experiment is analyzed on, with its role (primary, secondary, guardrail)."""

    __tablename__ = "experiment_metrics"

    experiment_id: Mapped[str] = mapped_column(
        sa.ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    metric_name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    position: Mapped[int] = mapped_column()
    role: Mapped[str] = mapped_column(sa.String(20))  # primary | secondary | guardrail
    # {"threshold", "direction", "relative", "auto_stop"} for guardrails, else None.
    guardrail: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


class AnalysisLook(Base):
    """One look at one comparison of a started experiment: a (metric, arm) against the baseline.

    Holds what the next look needs to keep the always-valid p-value non-increasing and the
    confidence sequence nested (``always_valid_p_value``, ``cs_lower``, ``cs_upper``, ``tau2``),
    plus what the sequential view over time draws (``at``, ``n``, ``effect``, ``std_error``).
    """

    __tablename__ = "analysis_looks"
    __table_args__ = (sa.Index(None, "experiment_id", "metric_name", "arm_id", "at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(sa.ForeignKey("experiments.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    metric_name: Mapped[str] = mapped_column(sa.String(200))
    arm_id: Mapped[str] = mapped_column(sa.String(32))
    # Participants with a value of the metric in the arm and in the baseline at this look.
    n: Mapped[int] = mapped_column()
    baseline_n: Mapped[int] = mapped_column()
    effect: Mapped[float] = mapped_column(sa.Float)
    std_error: Mapped[float] = mapped_column(sa.Float)
    always_valid_p_value: Mapped[float] = mapped_column(sa.Float)
    cs_lower: Mapped[float] = mapped_column(sa.Float)
    cs_upper: Mapped[float] = mapped_column(sa.Float)
    # Mixing variance on the effect's scale (SequentialResult.tau2).
    tau2: Mapped[float] = mapped_column(sa.Float)
