"""Where services meet: commit copies assignments into the event store; arm configs are checked
against feature definitions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from xngin.errors import InvalidInput
from xngin.services import experiments
from xngin.services.access import Principal
from xngin.services.experiment_specs import ExperimentCreate
from xngin.services.features import FeatureCreate, create_feature
from xngin.services.runtime import Runtime
from xngin.store.models import Assignment


def _app_counts(runtime: Runtime, experiment_id: str) -> dict[str, int]:
    with runtime.sessions() as session:
        rows = session.execute(
            sa.select(Assignment.arm_id, sa.func.count())
            .where(Assignment.experiment_id == experiment_id)
            .group_by(Assignment.arm_id)
        ).all()
    return {arm: n for arm, n in rows}


def test_committing_a_preassigned_experiment_mirrors_its_assignment_into_the_event_store(
    runtime: Runtime, make_experiment: Callable[..., str]
) -> None:
    assigned = make_experiment("assigned")
    assert runtime.event_store.arm_participation(assigned) == {}
    committed = make_experiment("committed")
    expected = _app_counts(runtime, committed)
    assert sum(expected.values()) > 0
    mirrored = runtime.event_store.arm_participation(committed)
    assert {arm: p.assigned for arm, p in mirrored.items()} == expected


def test_an_arm_setting_an_undefined_value_of_a_feature_is_refused(
    runtime: Runtime, principal: Principal, make_design: Callable[..., dict]
) -> None:
    spec = FeatureCreate.model_validate(
        {"name": "banner", "type": "string", "allowed_values": ["a", "b"], "default": "a"}
    )
    with runtime.sessions.begin() as session:
        create_feature(session, principal, spec)
    body = make_design(
        arms=[
            {"arm_name": "control"},
            {"arm_name": "new", "config": {"features": {"banner": "zebra"}}},
        ]
    )
    with pytest.raises(InvalidInput) as info, runtime.sessions.begin() as session:
        experiments.create_experiment(
            runtime, session, principal, ExperimentCreate.model_validate(body)
        )
    assert info.value.field == "arms[1].config.features.banner"
