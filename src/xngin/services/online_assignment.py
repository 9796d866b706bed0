"""Online assignment: who of the traffic is included, and in which arm, from hashes alone.

Everything here is a pure function of (experiment seed, participant ID, settings), so every
replica decides the same without talking to the others; the store only records the decision.

* Inclusion: the participant's ``include`` bucket (uniform in [0, 1)) is below the allocation
  percentage / 100. Raising the allocation only ever adds participants.
* Arm: the participant's ``arm`` bucket, a second independent sha256 bucket, falls into the
  cumulative arm weights. It does not depend on the allocation, so a ramp-up never moves anyone.
* Audience filters: evaluated on the ``properties`` the caller sends, with the null rules of
  :mod:`xngin.dwh.filters` (a missing property is null).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from xngin.errors import InvalidInput

__all__ = ["in_allocation", "matches_filters", "online_arm_index", "unit_hash"]


def unit_hash(*, seed: int, purpose: str, participant_id: str) -> float:
    """A uniform number in [0, 1) from sha256 of (seed, purpose, participant ID); 53 bits."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{participant_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) * 2.0**-53


def in_allocation(*, seed: int, participant_id: str, allocation: float) -> bool:
    """Whether a participant falls within ``allocation`` percent (0-100) of traffic.

    Monotone: a participant included at some allocation is included at every higher one.
    """
    return unit_hash(seed=seed, purpose="include", participant_id=participant_id) * 100 < allocation


def online_arm_index(*, seed: int, participant_id: str, weights: Sequence[float]) -> int:
    """The arm of a participant: where their arm bucket falls in the cumulative weights.

    Parameters
    ----------
    seed : int
        The experiment's seed.
    participant_id : str
        The participant.
    weights : sequence of float
        Positive relative weights, one per arm in position order.

    Returns
    -------
    int
        Index into ``weights``; arm ``a`` is chosen with probability ``w_a / sum(w)``.
    """
    u = unit_hash(seed=seed, purpose="arm", participant_id=participant_id) * math.fsum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1  # u * total rounded up to the total: the last arm


_KINDS = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def _kind(value: Any) -> str | None:
    return _KINDS.get(type(value))


def _ordered(value: Any) -> Any:
    """Values as compared by ``between``: ISO date/time strings as UTC datetimes, others as is."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return value


def matches_filters(filters: Sequence[Mapping[str, Any]], properties: Mapping[str, Any]) -> bool:
    """Whether ``properties`` pass every audience filter, with the null rules of dwh.filters.

    ``includes [a, null]`` matches a, null and a missing property; ``excludes [a]`` keeps null
    unless null is listed; ``between [lo, hi]`` is inclusive, null for an open end, and never
    matches null. A property whose type differs from the filter's values (a number where the
    filter lists strings) is an :class:`InvalidInput` naming ``properties.<field>``.
    """
    for f in filters:
        name, relation, values = f["field_name"], f["relation"], list(f["value"])
        value = properties.get(name)
        given = [v for v in values if v is not None]
        if value is not None and given and _kind(value) != _kind(given[0]):
            raise InvalidInput(
                f"properties.{name} must be {_kind(given[0]) or 'a plain value'} to compare "
                f"with the audience filter {relation} {values!r}; got {value!r}",
                field=f"properties.{name}",
            )
        if relation == "includes":
            ok = None in values if value is None else value in given
        elif relation == "excludes":
            ok = None not in values if value is None else value not in given
        elif relation == "between":
            lo, hi = (_ordered(v) for v in (values + [None, None])[:2])
            v = _ordered(value)
            try:
                ok = v is not None and (lo is None or lo <= v) and (hi is None or v <= hi)
            except TypeError:  # e.g. a date bound and a property that is not a date
                raise InvalidInput(
                    f"properties.{name} cannot be compared with the audience filter between "
                    f"{values!r}; got {value!r}",
                    field=f"properties.{name}",
                ) from None
        else:
            raise ValueError(f"audience filter on {name!r} has unknown relation {relation!r}")
        if not ok:
            return False
    return True
