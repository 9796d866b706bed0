"""Treatment status by participant ID: cached lookups, online assignment, cache invalidation.

What a lookup answers is decided in :mod:`xngin.services.serving_policy`; this module brings the
cache (Redis in production, in-process by default) and the app database, which stays the source
of truth. Online newcomers are assigned by hashes alone (:mod:`xngin.services.online_assignment`),
stored with ``INSERT ... ON CONFLICT DO NOTHING`` and read back, so concurrent first lookups agree
and one row is stored.

Cache keys:

* ``xngin:serve:cfg:{experiment}``: the experiment's serving config (state, type, seed,
  allocation and ramp, filters, arms with config and weight). :func:`invalidate_experiment`
  replaces it with a tombstone that lives 2 s, and loaders only fill an *absent* key, so a loader
  that read the old state just before a change (or before the change's transaction commits)
  cannot put it back. Time to live: 300 s on Redis, 2 s in-process (an in-process cache is not
  shared by several workers; use Redis for more than one).
* ``xngin:serve:asg:{experiment}:{participant}``: ``arm_id<TAB>assigned_at``, or ``-`` for "not
  stored". Written only after commit, when arms are final. A stored arm overwrites ``-``, and
  ``-`` never overwrites anything, so a racing reader cannot hide a stored assignment.
* A hit costs one round trip: one MGET of the config key, the participant's key and the API-key
  revocation epoch ``xngin:auth:epoch`` (on the event loop, concurrent lookups share MGETs).

API keys are checked against the app database every 5 s per process and key (during the next 5 s
a lookup still uses the known answer while one refresh runs). A cached key is re-checked at once
when the revocation epoch moved (:func:`note_api_key_revoked`, shared through Redis); without
Redis, other processes notice a revocation within 10 s.

Concurrent misses for the same thing (a config after invalidation, an API key to re-check) are
loaded once per event loop and shared, so a burst of lookups never becomes a burst of queries.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from xngin.errors import InvalidInput, NotFound, Unauthorized
from xngin.services.access import Principal, authenticate
from xngin.services.online_assignment import in_allocation, matches_filters, online_arm_index
from xngin.services.runtime import Runtime
from xngin.services.serving_policy import (
    NOT_STORED,
    UNCOMMITTED_STATES,
    ServingArm,
    ServingConfig,
    TreatmentStatus,
    answer_from_cache,
    encode_entry,
)
from xngin.store import assignments as repo
from xngin.store.organizations import hash_api_key
from xngin.timestamps import as_utc

__all__ = [
    "AUTH_EPOCH_KEY",
    "ToThread",
    "TreatmentStatus",
    "assignment_key",
    "config_key",
    "invalidate_experiment",
    "lookup",
    "lookup_async",
    "note_api_key_revoked",
    "warm_cache",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Runs a blocking function in a worker thread (the API passes Starlette's run_in_threadpool).
ToThread = Callable[[Callable[[], Any]], Awaitable[Any]]

CONFIG_PREFIX = "xngin:serve:cfg:"
ASSIGNMENT_PREFIX = "xngin:serve:asg:"
AUTH_EPOCH_KEY = "xngin:auth:epoch"
CONFIG_TTL = {"redis": 300.0, "memory": 2.0}
TOMBSTONE = b"!"
TOMBSTONE_TTL = 2.0
ASSIGNMENT_TTL = 24 * 3600.0
NOT_STORED_TTL = 3600.0
PRINCIPAL_TTL = 5.0
PRINCIPAL_GRACE = 5.0
MAX_PRINCIPALS = 10_000
MAX_PARTICIPANT_ID = 200  # the assignments.participant_id column


def config_key(experiment_id: str) -> str:
    return CONFIG_PREFIX + experiment_id


def assignment_key(experiment_id: str, participant_id: str) -> str:
    return f"{ASSIGNMENT_PREFIX}{experiment_id}:{participant_id}"


def invalidate_experiment(runtime: Runtime, experiment_id: str) -> None:
    """Make the next lookup of an experiment, on every replica, read its config from the store.

    Call after any change to an experiment's state, allocation, ramp, filters or arms; calling
    it before the change's transaction commits is fine (see the module docstring).
    """
    runtime.cache.set(config_key(experiment_id), TOMBSTONE, ttl=TOMBSTONE_TTL)


# Per-process state ------------------------------------------------------------------------------


@dataclass
class _KnownKey:
    principal: Principal
    epoch: bytes | None
    checked_at: float


@dataclass
class _ProcessState:
    """Per runtime: API keys checked recently (by hash), and loads in flight per event loop."""

    keys: dict[str, _KnownKey] = field(default_factory=dict)
    flights: dict[tuple[int, Hashable], asyncio.Task[Any]] = field(default_factory=dict)

    async def once(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """Run ``load`` unless the same key is loading on this loop; share its result."""
        task = self.start(key, load)
        return await asyncio.shield(task)

    def start(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        loop = asyncio.get_running_loop()
        full = (id(loop), key)
        task = self.flights.get(full)
        if task is None:

            def done(finished: asyncio.Task[Any]) -> None:
                self.flights.pop(full, None)
                if not finished.cancelled():
                    finished.exception()  # retrieved: a failed background refresh is no news

            task = loop.create_task(load())  # type: ignore[arg-type]
            task.add_done_callback(done)
            self.flights[full] = task
        return task


_states: dict[int, _ProcessState] = {}


def _state(runtime: Runtime) -> _ProcessState:
    found = _states.get(id(runtime))
    if found is None:
        found = _states[id(runtime)] = _ProcessState()
        weakref.finalize(runtime, _states.pop, id(runtime), None)
    return found


# API keys ---------------------------------------------------------------------------------------


def note_api_key_revoked(runtime: Runtime) -> None:
    """Forget this process's checked API keys and tell other replicas (through the shared cache).

    Call after revoking a key (``access.revoke_api_key``).
    """
    _state(runtime).keys.clear()
    runtime.cache.incr(AUTH_EPOCH_KEY)


def _check_key(runtime: Runtime, api_key: str, key_hash: str, epoch: bytes | None) -> Principal:
    """Ask the app database; remember the answer (or forget the key when it is refused)."""
    keys = _state(runtime).keys
    try:
        principal = authenticate(runtime, api_key)
    except Unauthorized:
        keys.pop(key_hash, None)
        raise
    if len(keys) >= MAX_PRINCIPALS:  # a flood of distinct keys must not grow memory forever
        keys.clear()
    keys[key_hash] = _KnownKey(principal, epoch, time.monotonic())
    return principal


def _known_key(runtime: Runtime, key_hash: str, epoch: bytes | None) -> tuple[Principal, float]:
    """A remembered principal and its age in seconds, or raise KeyError."""
    known = _state(runtime).keys[key_hash]
    if known.epoch != epoch:
        raise KeyError(key_hash)
    return known.principal, time.monotonic() - known.checked_at


def _authenticate(runtime: Runtime, api_key: str, epoch: bytes | None) -> Principal:
    key_hash = hash_api_key(api_key)
    try:
        principal, age = _known_key(runtime, key_hash, epoch)
    except KeyError:
        age = float("inf")
    if age < PRINCIPAL_TTL:
        return principal
    return _check_key(runtime, api_key, key_hash, epoch)


async def _authenticate_async(
    runtime: Runtime, api_key: str, epoch: bytes | None, to_thread: ToThread
) -> Principal:
    key_hash = hash_api_key(api_key)
    try:
        principal, age = _known_key(runtime, key_hash, epoch)
    except KeyError:
        age = float("inf")
    if age < PRINCIPAL_TTL:
        return principal

    async def check() -> Principal:
        call = functools.partial(_check_key, runtime, api_key, key_hash, epoch)
        return await to_thread(call)  # type: ignore[no-any-return]

    state = _state(runtime)
    if age < PRINCIPAL_TTL + PRINCIPAL_GRACE:
        state.start(("key", key_hash), check)  # refresh in the background, answer now
        return principal
    return await state.once(("key", key_hash), check)


# Lookups ----------------------------------------------------------------------------------------


def _keys(experiment_id: str, participant_id: str) -> tuple[str, str, str]:
    if not participant_id or len(participant_id) > MAX_PARTICIPANT_ID:
        raise InvalidInput(
            f"participant_id must have 1 to {MAX_PARTICIPANT_ID} characters; "
            f"got {len(participant_id)}",
            field="participant_id",
        )
    return config_key(experiment_id), assignment_key(experiment_id, participant_id), AUTH_EPOCH_KEY


def _not_found(experiment_id: str) -> NotFound:
    return NotFound(f"experiment {experiment_id!r} does not exist", field="experiment_id")


def _load_config(runtime: Runtime, experiment_id: str, *, fill: bool) -> ServingConfig | None:
    """The serving config from the app database; cached when ``fill`` (no tombstone was seen)."""
    with runtime.app_engine.connect() as conn:
        rows = repo.read_serving_rows(conn, experiment_id)
    if rows is None:
        return None
    config = ServingConfig.from_rows(rows)
    if fill:
        ttl = CONFIG_TTL.get(runtime.cache.kind, 2.0)
        runtime.cache.add(config_key(experiment_id), config.to_bytes(), ttl=ttl)
    return config


def _owned(config: ServingConfig | None, principal: Principal, experiment_id: str) -> ServingConfig:
    if config is None or config.organization_id != principal.organization_id:
        raise _not_found(experiment_id)
    return config


def _lookup_in_store(
    runtime: Runtime,
    config: ServingConfig,
    participant_id: str,
    properties: Mapping[str, Any] | None,
    now: datetime,
) -> TreatmentStatus:
    """The stored arm, assigning an eligible online newcomer first; fills the cache."""
    cache = runtime.cache
    entry_key = assignment_key(config.experiment_id, participant_id)

    def status(arm: ServingArm | None, at: datetime | None, reason: str | None) -> TreatmentStatus:
        iso = at.isoformat() if at is not None else None
        eid = config.experiment_id
        return TreatmentStatus(eid, participant_id, config.state, arm, iso, reason)

    with runtime.app_engine.connect() as conn:
        stored = repo.get_assignment(
            conn, experiment_id=config.experiment_id, participant_id=participant_id
        )
        if stored is None and config.type == "online" and config.state == "running":
            allocation = config.allocation_at(now)
            if not in_allocation(
                seed=config.seed, participant_id=participant_id, allocation=allocation
            ):
                cache.add(entry_key, NOT_STORED, ttl=NOT_STORED_TTL)
                return status(None, None, "outside_traffic_allocation")
            if not matches_filters(config.filters, properties or {}):
                # Not cached: another lookup may send properties that pass.
                return status(None, None, "audience_filters_not_met")
            weights = [a.weight for a in config.arms]
            arm = config.arms[
                online_arm_index(seed=config.seed, participant_id=participant_id, weights=weights)
            ]
            # READ COMMITTED (PostgreSQL), or no read transaction left open (SQLite): a losing
            # insert waits for the winner's commit and the read back sees the winner's row.
            stored = repo.insert_assignment_if_absent(
                conn,
                experiment_id=config.experiment_id,
                participant_id=participant_id,
                arm_id=arm.arm_id,
                assigned_at=now,
            )
            conn.commit()
            if stored == (arm.arm_id, now):  # this lookup made the assignment: mirror it
                from xngin.services.events import mirror_new_assignment

                mirror_new_assignment(
                    runtime,
                    experiment_id=config.experiment_id,
                    participant_id=participant_id,
                    arm_id=arm.arm_id,
                    assigned_at=now,
                )
    if stored is None:
        cache.add(entry_key, NOT_STORED, ttl=NOT_STORED_TTL)
        online = config.type == "online"
        return status(None, None, "experiment_not_running" if online else "not_in_experiment")
    arm_id, assigned_at = stored
    cache.set(entry_key, encode_entry(arm_id, assigned_at), ttl=ASSIGNMENT_TTL)
    return status(config.arms_by_id.get(arm_id), assigned_at, None)


def lookup(
    runtime: Runtime,
    *,
    api_key: str,
    experiment_id: str,
    participant_id: str,
    properties: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> TreatmentStatus:
    """The treatment status of a participant; assigns online newcomers of running experiments.

    Parameters
    ----------
    runtime : Runtime
        Its cache is read and filled; its app database is the source of truth.
    api_key : str
        The caller's API key (:class:`Unauthorized` when wrong or revoked).
    experiment_id : str
        An experiment of the caller's organization (:class:`NotFound` otherwise).
    participant_id : str
        1 to 200 characters (:class:`InvalidInput` otherwise).
    properties : mapping, optional
        The participant's attributes, checked against an online experiment's audience filters
        when the participant is new; a property whose type does not fit a filter is
        :class:`InvalidInput`.
    now : datetime, optional
        The time the traffic allocation is taken at and a newcomer is assigned at (default now).

    Returns
    -------
    TreatmentStatus
        See :mod:`xngin.services.serving_policy` for what is answered when.
    """
    cache = runtime.cache
    keys = _keys(experiment_id, participant_id)
    raw, entry, epoch = cache.mget(*keys)
    principal = _authenticate(runtime, api_key, epoch)
    if raw is not None and raw != TOMBSTONE:
        config: ServingConfig | None = ServingConfig.from_bytes(raw)
    else:
        config = _load_config(runtime, experiment_id, fill=raw is None)
    config = _owned(config, principal, experiment_id)
    now = as_utc(now or datetime.now(UTC))
    answer = answer_from_cache(config, participant_id, entry, now)
    return answer or _lookup_in_store(runtime, config, participant_id, properties, now)


async def lookup_async(
    runtime: Runtime,
    *,
    api_key: str,
    experiment_id: str,
    participant_id: str,
    to_thread: ToThread,
    properties: Mapping[str, Any] | None = None,
) -> TreatmentStatus:
    """:func:`lookup` for the event loop: a cache hit never leaves it; database work runs through
    ``to_thread``, and concurrent loads of one config or API key share one query."""
    keys = _keys(experiment_id, participant_id)
    raw, entry, epoch = await runtime.cache.amget(*keys)
    principal = await _authenticate_async(runtime, api_key, epoch, to_thread)
    if raw is not None and raw != TOMBSTONE:
        config: ServingConfig | None = ServingConfig.from_bytes(raw)
    else:
        load = functools.partial(_load_config, runtime, experiment_id, fill=raw is None)

        async def load_in_thread() -> ServingConfig | None:
            return await to_thread(load)  # type: ignore[no-any-return]

        config = await _state(runtime).once(("config", experiment_id), load_in_thread)
    config = _owned(config, principal, experiment_id)
    now = datetime.now(UTC)
    answer = answer_from_cache(config, participant_id, entry, now)
    if answer is not None:
        return answer
    call = functools.partial(_lookup_in_store, runtime, config, participant_id, properties, now)
    return await to_thread(call)  # type: ignore[no-any-return]


def warm_cache(runtime: Runtime, experiment_id: str, *, chunk_size: int = 10_000) -> int:
    """Copy a committed experiment's stored assignments into the cache; returns how many.

    Worth running after commit for a large preassigned audience, so that first lookups are hits.
    Experiments not yet committed are skipped (their arms may still change): returns 0.
    """
    written = 0
    with runtime.app_engine.connect() as conn:
        rows = repo.read_serving_rows(conn, experiment_id)
        if rows is None or rows.experiment["state"] in UNCOMMITTED_STATES:
            return 0
        for chunk in repo.iter_assignment_chunks(
            conn, experiment_id=experiment_id, chunk_size=chunk_size
        ):
            runtime.cache.set_many(
                (
                    (assignment_key(experiment_id, pid), encode_entry(arm, at))
                    for pid, arm, at, _ in chunk
                ),
                ttl=ASSIGNMENT_TTL,
            )
            written += len(chunk)
    return written
