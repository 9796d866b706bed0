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


def _act(runtime: Runtime, principal: Principal, experiment_id: str, action: str) -> None:
    from xngin.services import lifecycle

    with runtime.sessions.begin() as session:
        lifecycle.perform_action(
            runtime, session, principal, experiment_id=experiment_id, action=action
        )


@pytest.fixture
def api_key(runtime: Runtime) -> str:
    """A key of the principal's organization ("acme")."""
    from xngin.services.access import issue_api_key

    return issue_api_key(runtime, organization="acme").plaintext


def test_a_state_action_reaches_the_next_lookup_despite_the_cache(
    runtime: Runtime, principal: Principal, make_experiment: Callable[..., str], api_key: str
) -> None:
    from xngin.services.serving import lookup

    experiment_id = make_experiment("running", type="online", filters=[], strata=[])
    first = lookup(runtime, api_key=api_key, experiment_id=experiment_id, participant_id="n1")
    assert first.arm is not None and first.state == "running"
    _act(runtime, principal, experiment_id, "pause")
    newcomer = lookup(runtime, api_key=api_key, experiment_id=experiment_id, participant_id="n2")
    assert (newcomer.state, newcomer.arm, newcomer.reason) == (
        "paused",
        None,
        "experiment_not_running",
    )


def test_an_online_first_assignment_is_mirrored_into_the_event_store(
    runtime: Runtime, make_experiment: Callable[..., str], api_key: str
) -> None:
    from xngin.services.serving import lookup

    experiment_id = make_experiment("running", type="online", filters=[], strata=[])
    status = lookup(runtime, api_key=api_key, experiment_id=experiment_id, participant_id="n1")
    assert status.arm is not None
    mirrored = runtime.event_store.arm_participation(experiment_id)
    assert {arm: p.assigned for arm, p in mirrored.items()} == {status.arm.arm_id: 1}


def test_a_revoked_key_is_refused_by_the_very_next_lookup(
    runtime: Runtime, make_experiment: Callable[..., str], api_key: str
) -> None:
    from xngin.errors import Unauthorized
    from xngin.services.access import revoke_api_key
    from xngin.services.serving import lookup

    experiment_id = make_experiment("running", type="online", filters=[], strata=[])
    lookup(runtime, api_key=api_key, experiment_id=experiment_id, participant_id="n1")
    revoke_api_key(runtime, key_id_or_prefix=api_key[:10])
    with pytest.raises(Unauthorized):
        lookup(runtime, api_key=api_key, experiment_id=experiment_id, participant_id="n1")
