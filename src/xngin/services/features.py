"""Feature definitions, and the value of a feature for one participant.

A feature is a named setting (a flag, a copy text, a price) with a type, optionally a list of
allowed values, and a default. An experiment's arm sets features through its ``config`` payload,
``{"features": {"name": value}}``; :func:`check_arm_features` validates those values against the
defined features.

:func:`feature_value` answers "what does this participant get?": the running experiments of the
organization whose arms set the feature are asked, oldest first (creation time), through the
serving lookup (which assigns online newcomers). The first experiment the participant is in
decides: their arm's value, or the default when their arm does not set the feature (a control
arm keeps the default on purpose; falling through to another experiment would change what the
control group sees). When no running experiment has the participant, the default applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, selectinload

from xngin.errors import Conflict, InvalidInput, NotFound
from xngin.services.access import Principal
from xngin.services.runtime import Runtime
from xngin.store.models import Experiment, Feature
from xngin.store.named import find_named, list_named
from xngin.timestamps import as_utc

FeatureType = Literal["boolean", "string", "number", "json"]
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
MAX_ALLOWED_VALUES = 1000
#: States in which an experiment's arms may be serving feature values.
LIVE_STATES = ("committed", "running", "paused")


class FeatureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="Unique in the organization; letters, digits, _ . and -.",
    )
    description: str = Field(default="", description="What the feature controls.")
    type: FeatureType = Field(description="boolean, string, number or json (any JSON value).")
    allowed_values: list[Any] | None = Field(
        default=None, description="The values arms may set (null: any value of the type)."
    )
    default: Any = Field(description="The value participants get outside any experiment.")


class FeatureUpdate(BaseModel):
    """A PATCH: only the fields given change. Arms of live experiments must still fit."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, description="What the feature controls.")
    type: FeatureType | None = Field(default=None, description="boolean, string, number, json.")
    allowed_values: list[Any] | None = Field(
        default=None, description="The values arms may set; null allows any value of the type."
    )
    default: Any = Field(default=None, description="The value outside any experiment.")


def value_problem(
    value: Any, *, feature_type: str, allowed_values: Sequence[Any] | None
) -> str | None:
    """Why ``value`` is not acceptable for a feature, or None when it is.

    Parameters
    ----------
    value : Any
        A JSON value.
    feature_type : {"boolean", "string", "number", "json"}
        ``number`` accepts finite integers and floats (not booleans); ``json`` any JSON value.
    allowed_values : sequence, optional
        When given, ``value`` must equal one of them (compared as canonical JSON, so ``1`` and
        ``true`` stay different).
    """
    if feature_type == "boolean" and not isinstance(value, bool):
        return f"{_show(value)} is not true or false"
    if feature_type == "string" and not isinstance(value, str):
        return f"{_show(value)} is not a string"
    if feature_type == "number" and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(float(value))
    ):
        return f"{_show(value)} is not a finite number"
    if feature_type == "json":
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return f"{_show(value)} is not a JSON value"
    if allowed_values is not None and _canonical(value) not in {
        _canonical(v) for v in allowed_values
    }:
        listed = ", ".join(_show(v) for v in allowed_values[:20])
        return f"{_show(value)} is not one of the allowed values: {listed}"
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _show(value: Any) -> str:
    text = json.dumps(value) if _is_json(value) else repr(value)
    return text if len(text) <= 60 else text[:45] + f"...({len(text)} chars)"


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _check_definition(feature_type: str, allowed: Sequence[Any] | None, default: Any) -> None:
    if allowed is not None:
        if not allowed or len(allowed) > MAX_ALLOWED_VALUES:
            raise InvalidInput(
                f"allowed_values must list 1 to {MAX_ALLOWED_VALUES} values, or be null for any "
                f"value; got {len(allowed)}",
                field="allowed_values",
            )
        seen: set[str] = set()
        for i, value in enumerate(allowed):
            problem = value_problem(value, feature_type=feature_type, allowed_values=None)
            if problem is not None:
                raise InvalidInput(f"{problem} (type {feature_type})", field=f"allowed_values[{i}]")
            if _canonical(value) in seen:
                raise InvalidInput(f"{_show(value)} is listed twice", field=f"allowed_values[{i}]")
            seen.add(_canonical(value))
    problem = value_problem(default, feature_type=feature_type, allowed_values=allowed)
    if problem is not None:
        raise InvalidInput(f"default {problem} (type {feature_type})", field="default")


def _find(session: Session, principal: Principal, name: str) -> Feature | None:
    return find_named(session, Feature, organization_id=principal.organization_id, name=name)


def get_feature(session: Session, principal: Principal, name: str) -> Feature:
    """The caller's feature ``name``, or 404."""
    found = _find(session, principal, name)
    if found is None:
        raise NotFound(f"feature {name!r} does not exist", field="name")
    return found


def list_features(session: Session, principal: Principal) -> list[Feature]:
    """The caller's features by name."""
    return list_named(session, Feature, organization_id=principal.organization_id)


def create_feature(session: Session, principal: Principal, spec: FeatureCreate) -> Feature:
    """Validate and save a feature (422 naming ``default`` or ``allowed_values[i]``; 409 when
    the name is taken)."""
    if _find(session, principal, spec.name) is not None:
        raise Conflict(
            f"a feature named {spec.name!r} already exists; change it with PATCH", field="name"
        )
    _check_definition(spec.type, spec.allowed_values, spec.default)
    now = datetime.now(UTC)
    feature = Feature(
        organization_id=principal.organization_id,
        name=spec.name,
        description=spec.description,
        type=spec.type,
        allowed_values=spec.allowed_values,
        default_value={"value": spec.default},
        created_at=now,
        updated_at=now,
    )
    session.add(feature)
    session.flush()
    return feature


def _live_settings(
    session: Session, principal: Principal, name: str, states: Sequence[str] = LIVE_STATES
) -> list[tuple[Experiment, int, str, Any]]:
    """(experiment, arm position, arm name, value) for every arm of the organization's
    experiments in ``states`` that sets feature ``name``, oldest experiment first."""
    experiments = session.scalars(
        sa.select(Experiment)
        .where(
            Experiment.organization_id == principal.organization_id,
            Experiment.state.in_(list(states)),
        )
        .options(selectinload(Experiment.arms))
        .order_by(Experiment.created_at, Experiment.id)
    ).all()
    found = []
    for experiment in experiments:
        for arm in experiment.arms:
            features = arm_features(arm.config)
            if name in features:
                found.append((experiment, arm.position, arm.name, features[name]))
    return found


def arm_features(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``features`` object of an arm's config ({} when there is none)."""
    features = (config or {}).get("features")
    return dict(features) if isinstance(features, Mapping) else {}


def update_feature(
    session: Session, principal: Principal, name: str, changes: FeatureUpdate
) -> Feature:
    """Change the given fields. A change that would make a value set by an arm of a committed,
    running or paused experiment unacceptable is refused (409 naming the field)."""
    feature = get_feature(session, principal, name)
    given = changes.model_fields_set
    if "type" in given and changes.type is None:
        raise InvalidInput("type cannot be null; leave it out to keep it", field="type")
    feature_type = changes.type if changes.type is not None else feature.type
    allowed = changes.allowed_values if "allowed_values" in given else feature.allowed_values
    default = changes.default if "default" in given else feature.default_value["value"]
    _check_definition(feature_type, allowed, default)
    for experiment, position, arm_name, value in _live_settings(session, principal, name):
        problem = value_problem(value, feature_type=feature_type, allowed_values=allowed)
        if problem is not None:
            field = "type" if "type" in given else "allowed_values"
            raise Conflict(
                f"arm {arm_name!r} (position {position}) of experiment {experiment.id!r} "
                f"({experiment.state}) sets {name} to a value this change would refuse: "
                f"{problem}",
                field=field,
            )
    feature.type = feature_type
    feature.allowed_values = allowed
    feature.default_value = {"value": default}
    if changes.description is not None:
        feature.description = changes.description
    feature.updated_at = datetime.now(UTC)
    session.flush()
    return feature


def delete_feature(session: Session, principal: Principal, name: str) -> None:
    """Delete a feature no committed, running or paused experiment sets (409 otherwise)."""
    feature = get_feature(session, principal, name)
    users = sorted({e.id for e, *_ in _live_settings(session, principal, name)})
    if users:
        raise Conflict(
            f"feature {name!r} is set by arms of live experiment(s) {', '.join(users)}; stop "
            "them first",
            field="name",
        )
    session.delete(feature)
    session.flush()


def describe_feature(feature: Feature) -> dict[str, Any]:
    """The feature as plain JSON values (the API's reply)."""
    return {
        "name": feature.name,
        "description": feature.description,
        "type": feature.type,
        "allowed_values": feature.allowed_values,
        "default": feature.default_value.get("value"),
        "created_at": as_utc(feature.created_at).isoformat(),
        "updated_at": as_utc(feature.updated_at).isoformat(),
    }


def check_arm_features(
    session: Session,
    principal: Principal,
    configs: Sequence[Mapping[str, Any] | None],
    *,
    field: str = "arms",
) -> None:
    """Check the feature values arms set in their config against the defined features.

    Parameters
    ----------
    session, principal
        The request's transaction and the caller.
    configs : sequence of mapping or None
        Each arm's ``config``, in arm order. ``features`` must be an object when present; a value
        for a defined feature must fit its type and allowed values; undefined names are accepted
        (features may be defined later).
    field : str
        Prefix of the error field, e.g. ``arms`` gives ``arms[1].config.features.banner``.

    Raises
    ------
    xngin.errors.InvalidInput
        Naming the first bad value.
    """
    names: set[str] = set()
    for i, config in enumerate(configs):
        raw = (config or {}).get("features")
        if raw is not None and not isinstance(raw, Mapping):
            raise InvalidInput(
                'config.features must be an object {"feature name": value}',
                field=f"{field}[{i}].config.features",
            )
        names.update(arm_features(config))
    if not names:
        return
    defined = {
        f.name: f
        for f in session.scalars(
            sa.select(Feature).where(
                Feature.organization_id == principal.organization_id, Feature.name.in_(names)
            )
        )
    }
    for i, config in enumerate(configs):
        for name, value in arm_features(config).items():
            feature = defined.get(name)
            if feature is None:
                continue
            problem = value_problem(
                value, feature_type=feature.type, allowed_values=feature.allowed_values
            )
            if problem is not None:
                raise InvalidInput(
                    f"feature {name!r}: {problem}", field=f"{field}[{i}].config.features.{name}"
                )


@dataclass(frozen=True, slots=True)
class FeatureValue:
    """What a participant gets for a feature, and what decided it.

    ``source`` is ``"experiment"`` when an arm set the value, ``"default"`` otherwise; the
    experiment and arm are given whenever an experiment had the participant (also when their arm
    keeps the default).
    """

    feature: str
    participant_id: str
    value: Any
    source: Literal["experiment", "default"]
    experiment_id: str | None = None
    arm_id: str | None = None
    arm_name: str | None = None


def feature_value(
    runtime: Runtime,
    session: Session,
    principal: Principal,
    *,
    api_key: str,
    name: str,
    participant_id: str,
    properties: Mapping[str, Any] | None = None,
) -> FeatureValue:
    """The value of feature ``name`` for ``participant_id`` (see the module docstring).

    Parameters
    ----------
    runtime, session, principal
        The process runtime, the request's session and the caller.
    api_key : str
        The caller's key, passed on to the serving lookup.
    name : str
        A feature of the caller's organization (404 otherwise).
    participant_id : str
        1 to 200 characters.
    properties : mapping, optional
        The participant's attributes, for online experiments' audience filters.

    Returns
    -------
    FeatureValue
    """
    from xngin.services.serving import lookup

    feature = get_feature(session, principal, name)
    default = feature.default_value.get("value")
    checked: set[str] = set()
    for experiment, _, _, _ in _live_settings(session, principal, name, states=("running",)):
        if experiment.id in checked:
            continue
        checked.add(experiment.id)
        status = lookup(
            runtime,
            api_key=api_key,
            experiment_id=experiment.id,
            participant_id=participant_id,
            properties=properties,
        )
        if status.arm is None or status.state != "running":
            continue
        arm = status.arm
        features = arm_features(arm.config)
        value, source = default, "default"
        if name in features:
            problem = value_problem(
                features[name], feature_type=feature.type, allowed_values=feature.allowed_values
            )
            # A value the feature no longer accepts is not served; the default is safe.
            if problem is None:
                value, source = features[name], "experiment"
        return FeatureValue(
            feature=name,
            participant_id=participant_id,
            value=value,
            source=source,  # type: ignore[arg-type]
            experiment_id=experiment.id,
            arm_id=arm.arm_id,
            arm_name=arm.arm_name,
        )
    return FeatureValue(
        feature=name, participant_id=participant_id, value=default, source="default"
    )
