"""What a treatment-status lookup answers: the serving config of an experiment, and the rules.

By experiment type and state (``assignment`` null always comes with a ``reason``):

=====================================  ==========================================================
draft, assigned, abandoned             null, ``experiment_not_committed``: before commit a
                                       preassigned audience may still be redrawn
committed, running, paused,            the stored arm, whatever the state; ``state`` is in every
stopped, completed                     answer, so clients decide what a paused or stopped
                                       experiment means to them (arms never change after commit)
preassigned, not in the audience       null, ``not_in_experiment``
online newcomer, state running         assigned now, or null with ``outside_traffic_allocation``
                                       or ``audience_filters_not_met``
online newcomer, any other state       null, ``experiment_not_running``: no new assignments
=====================================  ==========================================================

A stored participant keeps their arm even if the allocation is later lowered. Everything here is
pure: :mod:`xngin.services.serving` brings the cache and the store.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from xngin.services.online_assignment import in_allocation
from xngin.store.assignments import ServingRows
from xngin.timestamps import as_utc

__all__ = [
    "NOT_STORED",
    "UNCOMMITTED_STATES",
    "ServingArm",
    "ServingConfig",
    "TreatmentStatus",
    "answer_from_cache",
    "encode_entry",
]

UNCOMMITTED_STATES = frozenset({"draft", "assigned", "abandoned"})
#: The cached entry of a participant who had no stored assignment when last looked up.
NOT_STORED = b"-"


@dataclass(frozen=True, slots=True)
class ServingArm:
    arm_id: str
    arm_name: str
    weight: float
    config: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """What a lookup needs to know about an experiment, as cached."""

    experiment_id: str
    organization_id: str
    type: str
    state: str
    seed: int
    traffic_allocation: float
    ramp_schedule: tuple[tuple[datetime, float], ...]
    filters: tuple[dict[str, Any], ...]
    arms: tuple[ServingArm, ...]
    arms_by_id: dict[str, ServingArm] = field(compare=False, repr=False)

    @classmethod
    def from_rows(cls, rows: ServingRows) -> ServingConfig:
        exp = rows.experiment
        ramp = sorted(
            (as_utc(_parse_time(step["at"])), float(step["allocation"]))
            for step in exp["ramp_schedule"] or []
        )
        arms = tuple(
            ServingArm(a["id"], a["name"], float(a["weight"]), a["config"]) for a in rows.arms
        )
        return cls(
            experiment_id=exp["id"],
            organization_id=exp["organization_id"],
            type=exp["type"],
            state=exp["state"],
            seed=int(exp["seed"]),
            traffic_allocation=float(exp["traffic_allocation"]),
            ramp_schedule=tuple(ramp),
            filters=tuple((exp["design"] or {}).get("filters") or ()),
            arms=arms,
            arms_by_id={a.arm_id: a for a in arms},
        )

    def to_bytes(self) -> bytes:
        return json.dumps(
            [
                self.experiment_id,
                self.organization_id,
                self.type,
                self.state,
                self.seed,
                self.traffic_allocation,
                [[at.isoformat(), pct] for at, pct in self.ramp_schedule],
                list(self.filters),
                [[a.arm_id, a.arm_name, a.weight, a.config] for a in self.arms],
            ],
            separators=(",", ":"),
        ).encode()

    @staticmethod
    @functools.lru_cache(maxsize=512)
    def from_bytes(raw: bytes) -> ServingConfig:
        """Decode a cached config; memoized by content, as every lookup brings the same bytes."""
        eid, org, kind, state, seed, alloc, ramp, filters, arm_rows = json.loads(raw)
        arms = tuple(ServingArm(*row) for row in arm_rows)
        return ServingConfig(
            experiment_id=eid,
            organization_id=org,
            type=kind,
            state=state,
            seed=seed,
            traffic_allocation=alloc,
            ramp_schedule=tuple((datetime.fromisoformat(at), pct) for at, pct in ramp),
            filters=tuple(filters),
            arms=arms,
            arms_by_id={a.arm_id: a for a in arms},
        )

    def allocation_at(self, now: datetime) -> float:
        """Percent of traffic included at ``now`` (0-100).

        Without a ramp, ``traffic_allocation``; with one, the last step reached and the first
        step's before that (the rule of ``lifecycle.current_allocation``).
        """
        return ramp_allocation(
            self.ramp_schedule, traffic_allocation=self.traffic_allocation, now=now
        )


def ramp_allocation(
    steps: Sequence[tuple[datetime, float]], *, traffic_allocation: float, now: datetime
) -> float:
    """The share of traffic (0-100) included at ``now``: with no ramp ``traffic_allocation``;
    with one (times ascending), the last step reached, and the first step's before that (a
    ramp starts at its smallest share rather than jumping to the full one)."""
    if not steps:
        return float(traffic_allocation)
    current = float(steps[0][1])
    for at, pct in steps:
        if at > now:
            break
        current = float(pct)
    return current


def _parse_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class TreatmentStatus:
    """A lookup's answer: the arm (with when it was assigned), or None and why not."""

    experiment_id: str
    participant_id: str
    state: str
    arm: ServingArm | None
    assigned_at: str | None
    reason: str | None

    def to_json(self) -> bytes:
        """The API's JSON body (built here: a pydantic model would cost more than the lookup)."""
        assignment = None
        if self.arm is not None:
            assignment = {
                "arm_id": self.arm.arm_id,
                "arm_name": self.arm.arm_name,
                "config": self.arm.config,
                "assigned_at": self.assigned_at,
            }
        body = {
            "experiment_id": self.experiment_id,
            "participant_id": self.participant_id,
            "state": self.state,
            "assignment": assignment,
            "reason": self.reason,
        }
        return json.dumps(body, separators=(",", ":")).encode()


def encode_entry(arm_id: str, assigned_at: datetime) -> bytes:
    """A stored assignment as cached: ``arm_id<TAB>assigned_at``."""
    return f"{arm_id}\t{as_utc(assigned_at).isoformat()}".encode()


def answer_from_cache(
    config: ServingConfig, participant_id: str, entry: bytes | None, now: datetime
) -> TreatmentStatus | None:
    """The answer the config and the participant's cached entry give, or None to ask the store.

    ``entry`` is the participant's cache entry: an encoded assignment, :data:`NOT_STORED`, or
    None when absent. None comes back for a participant the cache knows nothing about, and for
    an eligible newcomer to a running online experiment (the store assigns them).
    """

    def status(arm: ServingArm | None, at: str | None, reason: str | None) -> TreatmentStatus:
        return TreatmentStatus(config.experiment_id, participant_id, config.state, arm, at, reason)

    if config.state in UNCOMMITTED_STATES:
        return status(None, None, "experiment_not_committed")
    if entry is None:
        return None
    if entry != NOT_STORED:
        arm_id, _, at = entry.decode().partition("\t")
        arm = config.arms_by_id.get(arm_id)
        return None if arm is None else status(arm, at, None)
    if config.type != "online":
        return status(None, None, "not_in_experiment")
    if config.state != "running":
        return status(None, None, "experiment_not_running")
    allocation = config.allocation_at(now)
    if not in_allocation(seed=config.seed, participant_id=participant_id, allocation=allocation):
        return status(None, None, "outside_traffic_allocation")
    return None
