"""Treatment-status lookups: policy by state, online assignment, cache use and invalidation, Redis
outages and API-key revocation, on SQLite and PostgreSQL with the in-process cache and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from xngin.cache import MemoryCache, RedisCache
from xngin.errors import InvalidInput, NotFound, Unauthorized
from xngin.services import serving
from xngin.services.access import issue_api_key, revoke_api_key
from xngin.services.online_assignment import in_allocation, online_arm_index
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store import assignments as repo
from xngin.store.db import upgrade
from xngin.store.models import Arm, Assignment, Datasource, Experiment, ParticipantType
from xngin.store.organizations import get_or_create_organization

WHEN = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ARMS = (("control", 1.0, None), ("treatment", 3.0, {"color": "red"}))


def start_runtime(url: str, tmp_path: Path, cache_url: str = "memory://") -> Runtime:
    return Runtime.start(
        Settings(
            data_dir=tmp_path,
            database_url=url,
            event_store_url=f"duckdb:///{tmp_path / 'events.duckdb'}",
            cache_url=cache_url,
        )
    )


@pytest.fixture
def db_url(app_database_url: str) -> str:
    upgrade(app_database_url)
    return app_database_url


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = start_runtime(db_url, tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[tuple[str, list[str]]]:
    """The test Redis and a list to put experiment IDs in; their serving keys are deleted after."""
    experiments: list[str] = []
    yield redis_url, experiments
    client = redis.Redis.from_url(redis_url)
    for experiment_id in experiments:
        keys = list(client.scan_iter(match=f"xngin:serve:*{experiment_id}*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def create_experiment(
    runtime: Runtime,
    *,
    organization: str = "acme",
    type: str = "preassigned",
    state: str = "committed",
    arms: Sequence[tuple[str, float, dict[str, Any] | None]] = ARMS,
    filters: Sequence[dict[str, Any]] = (),
    traffic_allocation: float = 100.0,
    seed: int = 2026,
) -> tuple[str, list[str]]:
    """An experiment with arms, straight through the ORM; returns (id, arm ids by position)."""
    with runtime.sessions.begin() as session:
        org = get_or_create_organization(session, organization)
        ds = Datasource(organization_id=org.id, name=uuid.uuid4().hex, url="unused")
        session.add(ds)
        session.flush()
        pt = ParticipantType(
            organization_id=org.id,
            datasource_id=ds.id,
            name=uuid.uuid4().hex,
            table_name="people",
            unique_id_field="id",
        )
        session.add(pt)
        session.flush()
        exp = Experiment(
            organization_id=org.id,
            participant_type_id=pt.id,
            name="exp",
            type=type,
            state=state,
            seed=seed,
            traffic_allocation=traffic_allocation,
            design={"filters": list(filters)},
            arms=[Arm(position=i, name=n, weight=w, config=c) for i, (n, w, c) in enumerate(arms)],
        )
        session.add(exp)
        session.flush()
        return exp.id, [a.id for a in exp.arms]


def store(runtime: Runtime, experiment_id: str, pairs: dict[str, str]) -> None:
    with runtime.sessions.begin() as session:
        repo.replace_assignments(
            session,
            experiment_id=experiment_id,
            participant_ids=list(pairs),
            arm_ids=list(pairs.values()),
            strata_json=None,
            assigned_at=WHEN,
        )


def update_experiment(runtime: Runtime, experiment_id: str, **values: Any) -> None:
    with runtime.sessions.begin() as session:
        session.execute(sa.update(Experiment).where(Experiment.id == experiment_id).values(values))


def stored(runtime: Runtime, experiment_id: str) -> dict[str, str]:
    with runtime.sessions() as session:
        rows = session.execute(
            sa.select(Assignment.participant_id, Assignment.arm_id).where(
                Assignment.experiment_id == experiment_id
            )
        )
        return dict(rows.tuples().all())


def key_for(runtime: Runtime, organization: str = "acme") -> str:
    return issue_api_key(runtime, organization=organization).plaintext


def look(runtime: Runtime, key: str, experiment_id: str, participant_id: str, **kw: Any) -> Any:
    return serving.lookup(
        runtime, api_key=key, experiment_id=experiment_id, participant_id=participant_id, **kw
    )


def arm_name(status: serving.TreatmentStatus) -> str | None:
    return None if status.arm is None else status.arm.arm_name


# Preassigned experiments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "answered"),
    [
        ("draft", False),
        ("assigned", False),
        ("abandoned", False),
        ("committed", True),
        ("running", True),
        ("paused", True),
        ("stopped", True),
        ("completed", True),
    ],
)
def test_preassigned_lookup_answers_the_stored_arm_from_commit_on(
    rt: Runtime, state: str, answered: bool
) -> None:
    key = key_for(rt)
    exp, (control, treatment) = create_experiment(rt, state=state)
    store(rt, exp, {"p1": treatment, "p2": control})
    status = look(rt, key, exp, "p1")
    assert (status.experiment_id, status.participant_id, status.state) == (exp, "p1", state)
    if answered:
        assert status.arm is not None and status.reason is None
        assert (status.arm.arm_id, status.arm.config) == (treatment, {"color": "red"})
        assert datetime.fromisoformat(status.assigned_at) == WHEN
    else:
        assert (status.arm, status.reason) == (None, "experiment_not_committed")


def test_preassigned_lookup_of_someone_outside_the_audience_says_so(rt: Runtime) -> None:
    key = key_for(rt)
    exp, (control, _) = create_experiment(rt, state="running")
    store(rt, exp, {"p1": control})
    for _ in range(2):  # from the store, then from the cache
        status = look(rt, key, exp, "stranger")
        assert (status.arm, status.reason) == (None, "not_in_experiment")
    assert stored(rt, exp) == {"p1": control}


def test_a_second_lookup_is_served_from_the_cache(rt: Runtime) -> None:
    key = key_for(rt)
    exp, (_, treatment) = create_experiment(rt, state="running")
    store(rt, exp, {"p1": treatment})
    assert arm_name(look(rt, key, exp, "p1")) == "treatment"
    store(rt, exp, {})  # behind the cache's back: only a cached answer still knows p1
    assert arm_name(look(rt, key, exp, "p1")) == "treatment"


def test_warm_cache_fills_committed_experiments_only(rt: Runtime) -> None:
    key = key_for(rt)
    exp, (control, treatment) = create_experiment(rt, state="running")
    draft, (draft_arm, _) = create_experiment(rt, state="assigned")
    store(rt, exp, {"a": control, "b": treatment})
    store(rt, draft, {"a": draft_arm})
    assert serving.warm_cache(rt, exp, chunk_size=1) == 2
    assert serving.warm_cache(rt, draft) == 0
    store(rt, exp, {})
    assert [arm_name(look(rt, key, exp, p)) for p in ("a", "b")] == ["control", "treatment"]


def test_another_organizations_experiment_is_not_found_even_when_cached(rt: Runtime) -> None:
    ours, theirs = key_for(rt, "acme"), key_for(rt, "globex")
    exp, (control, _) = create_experiment(rt, organization="acme", state="running")
    store(rt, exp, {"p1": control})
    look(rt, ours, exp, "p1")  # config and entry now cached
    with pytest.raises(NotFound) as caught:
        look(rt, theirs, exp, "p1")
    assert caught.value.field == "experiment_id"
    with pytest.raises(NotFound):
        look(rt, ours, "no-such-experiment", "p1")


def test_wrong_key_and_wrong_participant_id_are_refused(rt: Runtime) -> None:
    exp, _ = create_experiment(rt)
    with pytest.raises(Unauthorized):
        look(rt, "xk_not-a-key", exp, "p1")
    for bad in ("", "x" * 201):
        with pytest.raises(InvalidInput) as caught:
            look(rt, key_for(rt), exp, bad)
        assert caught.value.field == "participant_id"


# Online experiments -----------------------------------------------------------------------------


def test_online_newcomer_is_assigned_by_the_hash_rule_and_stored(rt: Runtime) -> None:
    key = key_for(rt)
    exp, arm_ids = create_experiment(rt, type="online", state="running", seed=77)
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    answers = {p: look(rt, key, exp, p, now=now) for p in (f"u{i}" for i in range(40))}
    expected = {
        p: arm_ids[online_arm_index(seed=77, participant_id=p, weights=[1.0, 3.0])] for p in answers
    }
    assert {p: s.arm.arm_id for p, s in answers.items()} == expected
    assert stored(rt, exp) == expected
    assert {datetime.fromisoformat(s.assigned_at) for s in answers.values()} == {now}


def test_fifty_concurrent_first_lookups_agree_and_store_one_row(rt: Runtime) -> None:
    key = key_for(rt)
    exp, _ = create_experiment(rt, type="online", state="running")
    look(rt, key, exp, "warm-up")  # the API key and config are cached: the race is the insert
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: look(rt, key, exp, "newcomer"), range(50)))
    assert len({(s.arm.arm_id, s.assigned_at) for s in answers}) == 1
    with rt.sessions() as session:
        count = session.scalar(
            sa.select(sa.func.count()).where(
                Assignment.experiment_id == exp, Assignment.participant_id == "newcomer"
            )
        )
    assert count == 1


def test_raising_the_allocation_keeps_everyone_in_their_arm(rt: Runtime) -> None:
    key = key_for(rt)
    exp, _ = create_experiment(rt, type="online", state="running", traffic_allocation=20.0)
    people = [f"u{i}" for i in range(300)]

    def arms_now() -> dict[str, str | None]:
        return {p: arm_name(look(rt, key, exp, p)) for p in people}

    at_20 = arms_now()
    included_20 = {p for p, a in at_20.items() if a is not None}
    assert included_20 == {
        p for p in people if in_allocation(seed=2026, participant_id=p, allocation=20.0)
    }
    update_experiment(rt, exp, traffic_allocation=60.0)
    serving.invalidate_experiment(rt, exp)
    at_60 = arms_now()
    assert all(at_60[p] == at_20[p] for p in included_20)
    assert len([a for a in at_60.values() if a]) > len(included_20)
    update_experiment(rt, exp, traffic_allocation=5.0)
    serving.invalidate_experiment(rt, exp)
    assert arms_now() == at_60  # lowering stops newcomers only; stored participants stay


@pytest.mark.parametrize("state", ["committed", "paused", "stopped", "completed"])
def test_online_experiment_assigns_newcomers_only_while_running(rt: Runtime, state: str) -> None:
    key = key_for(rt)
    exp, _ = create_experiment(rt, type="online", state="running")
    first = look(rt, key, exp, "early")
    update_experiment(rt, exp, state=state)
    serving.invalidate_experiment(rt, exp)
    late = look(rt, key, exp, "late")
    assert (late.arm, late.reason, late.state) == (None, "experiment_not_running", state)
    again = look(rt, key, exp, "early")
    assert (again.arm, again.state) == (first.arm, state)
    assert set(stored(rt, exp)) == {"early"}


def test_online_audience_filters_are_checked_against_properties(rt: Runtime) -> None:
    key = key_for(rt)
    filters = [
        {"field_name": "country", "relation": "includes", "value": ["US", None]},
        {"field_name": "age", "relation": "between", "value": [18, None]},
    ]
    exp, _ = create_experiment(rt, type="online", state="running", filters=filters)
    refused = look(rt, key, exp, "p1", properties={"country": "FR", "age": 30})
    assert (refused.arm, refused.reason) == (None, "audience_filters_not_met")
    assert stored(rt, exp) == {}
    accepted = look(rt, key, exp, "p1", properties={"age": 30})  # missing country is null
    assert accepted.arm is not None
    # Once in, always in: later lookups need no (or other) properties.
    assert look(rt, key, exp, "p1").arm == accepted.arm
    assert look(rt, key, exp, "p1", properties={"country": "FR"}).arm == accepted.arm
    with pytest.raises(InvalidInput) as caught:
        look(rt, key, exp, "p2", properties={"age": "thirty"})
    assert caught.value.field == "properties.age"


def test_a_ramp_schedule_sets_the_allocation_at_lookup_time(rt: Runtime) -> None:
    key = key_for(rt)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ramp = [
        {"at": start.isoformat(), "allocation": 10.0},
        {"at": (start + timedelta(days=7)).isoformat(), "allocation": 50.0},
    ]
    exp, _ = create_experiment(rt, type="online", state="running", traffic_allocation=50.0)
    update_experiment(rt, exp, ramp_schedule=ramp)
    people = [f"u{i}" for i in range(200)]
    # Candidates only between 10% and 50%: out in the first week, in after it.
    middle = [
        p
        for p in people
        if in_allocation(seed=2026, participant_id=p, allocation=50.0)
        and not in_allocation(seed=2026, participant_id=p, allocation=10.0)
    ]
    assert middle
    week_one = [look(rt, key, exp, p, now=start + timedelta(days=1)) for p in middle]
    assert {s.reason for s in week_one} == {"outside_traffic_allocation"}
    week_two = [look(rt, key, exp, p, now=start + timedelta(days=8)) for p in middle]
    assert all(s.arm is not None for s in week_two)


# Cache invalidation and races -------------------------------------------------------------------


def test_an_invalidation_before_commit_is_not_undone_by_a_concurrent_lookup(rt: Runtime) -> None:
    key = key_for(rt)
    exp, (control, _) = create_experiment(rt, state="running")
    store(rt, exp, {"p1": control})
    assert look(rt, key, exp, "p1").state == "running"
    with rt.sessions() as session, session.begin():
        session.execute(sa.update(Experiment).where(Experiment.id == exp).values(state="paused"))
        serving.invalidate_experiment(rt, exp)
        # A lookup in between still reads the committed state and must not cache it ...
        assert look(rt, key, exp, "p1").state == "running"
    # ... so the first lookup after the commit sees the change.
    assert look(rt, key, exp, "p1").state == "paused"


def test_a_state_change_reaches_another_replica_on_its_next_lookup(
    postgres_url: str, shared_redis: tuple[str, list[str]], tmp_path: Path
) -> None:
    redis_url, created = shared_redis
    upgrade(postgres_url)
    a = start_runtime(postgres_url, tmp_path / "a", redis_url)
    b = start_runtime(postgres_url, tmp_path / "b", redis_url)
    try:
        key = key_for(a)
        exp, _ = create_experiment(a, type="online", state="running")
        created.append(exp)
        before = look(b, key, exp, "p1")
        assert before.arm is not None and before.state == "running"
        # Without invalidation replica b keeps answering from the shared cache ...
        update_experiment(a, exp, state="paused")
        assert look(b, key, exp, "p2").state == "running"
        # ... and with it, b's very next lookup follows the store.
        serving.invalidate_experiment(a, exp)
        after = look(b, key, exp, "p1")
        assert (after.arm, after.state) == (before.arm, "paused")
        assert look(b, key, exp, "p3").reason == "experiment_not_running"
        update_experiment(a, exp, state="running", traffic_allocation=0.0)
        serving.invalidate_experiment(a, exp)
        assert look(b, key, exp, "p4").reason == "outside_traffic_allocation"
        assert set(stored(a, exp)) == {"p1", "p2"}
    finally:
        a.close()
        b.close()


def test_a_revoked_key_is_refused_on_another_replica_at_once(
    postgres_url: str, shared_redis: tuple[str, list[str]], tmp_path: Path
) -> None:
    redis_url, created = shared_redis
    upgrade(postgres_url)
    a = start_runtime(postgres_url, tmp_path / "a", redis_url)
    b = start_runtime(postgres_url, tmp_path / "b", redis_url)
    try:
        issued = issue_api_key(a, organization="acme")
        exp, (control, _) = create_experiment(a, state="running")
        created.append(exp)
        store(a, exp, {"p1": control})
        assert look(b, issued.plaintext, exp, "p1").arm is not None  # b now knows the key
        revoke_api_key(a, key_id_or_prefix=issued.key_id)
        serving.note_api_key_revoked(a)
        with pytest.raises(Unauthorized):
            look(b, issued.plaintext, exp, "p1")
    finally:
        a.close()
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_lookups_succeed_from_the_store_when_redis_is_unreachable(
    db_url: str, tmp_path: Path
) -> None:
    runtime = start_runtime(db_url, tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    try:
        key = key_for(runtime)
        exp, (control, _) = create_experiment(runtime, state="running")
        online, _ = create_experiment(runtime, type="online", state="running")
        store(runtime, exp, {"p1": control})
        assert look(runtime, key, exp, "p1").arm.arm_id == control
        assert look(runtime, key, exp, "p2").reason == "not_in_experiment"
        assert look(runtime, key, online, "p1").arm is not None
        status = asyncio.run(
            serving.lookup_async(
                runtime,
                api_key=key,
                experiment_id=exp,
                participant_id="p1",
                to_thread=asyncio.to_thread,
            )
        )
        assert status.arm.arm_id == control
    finally:
        runtime.close()


def stop_redis(port: int) -> None:
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "shutdown", "nosave"],
        capture_output=True,
        timeout=10,
    )


@contextlib.contextmanager
def own_redis_server(tmp_path: Path) -> Iterator[int]:
    """A Redis server of our own on a free loopback port, without persistence; shut down after."""
    port = free_port()
    subprocess.run(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--dir",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    try:
        for _ in range(100):
            if (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            ):
                break
            time.sleep(0.05)
        yield port
    finally:
        stop_redis(port)  # a no-op when the test stopped it already


def test_lookups_keep_working_when_redis_goes_away(postgres_url: str, tmp_path: Path) -> None:
    upgrade(postgres_url)
    with own_redis_server(tmp_path) as port:
        runtime = start_runtime(postgres_url, tmp_path, f"redis://127.0.0.1:{port}/0")
        try:
            key = key_for(runtime)
            exp, (control, treatment) = create_experiment(runtime, state="running")
            store(runtime, exp, {"p1": control, "p2": treatment})
            assert look(runtime, key, exp, "p1").arm.arm_id == control
            client = redis.Redis(port=port)
            cached = client.get(serving.assignment_key(exp, "p1"))
            client.close()
            assert cached is not None and cached.startswith(control.encode())
            stop_redis(port)
            assert look(runtime, key, exp, "p2").arm.arm_id == treatment
            status = asyncio.run(
                serving.lookup_async(
                    runtime,
                    api_key=key,
                    experiment_id=exp,
                    participant_id="p1",
                    to_thread=asyncio.to_thread,
                )
            )
            assert status.arm.arm_id == control
        finally:
            runtime.close()


# The event-loop path ----------------------------------------------------------------------------


def test_async_lookups_match_sync_ones_and_share_one_config_load(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_for(rt)
    exp, (control, treatment) = create_experiment(rt, state="running")
    people = {f"p{i}": (control, treatment)[i % 2] for i in range(20)}
    store(rt, exp, people)
    loads: list[str] = []
    real = repo.read_serving_rows

    def counting(db: Any, experiment_id: str) -> Any:
        loads.append(experiment_id)
        return real(db, experiment_id)

    monkeypatch.setattr(repo, "read_serving_rows", counting)

    async def all_at_once() -> list[serving.TreatmentStatus]:
        return await asyncio.gather(
            *(
                serving.lookup_async(
                    rt,
                    api_key=key,
                    experiment_id=exp,
                    participant_id=p,
                    to_thread=asyncio.to_thread,
                )
                for p in [*people, "stranger"]
            )
        )

    answers = asyncio.run(all_at_once())
    assert loads == [exp]
    assert [s.arm.arm_id if s.arm else s.reason for s in answers] == [
        *people.values(),
        "not_in_experiment",
    ]
    assert answers == [look(rt, key, exp, p) for p in [*people, "stranger"]]


# The cache operations serving relies on -------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryCache()
        return
    url = request.getfixturevalue("redis_url")
    found = RedisCache(url)
    yield found
    found.delete(*[f"xngin:test:{request.node.name}:{k}" for k in "abcde"])
    found.close()


def test_cache_mget_add_and_set_many_behave_alike(
    cache: Any, request: pytest.FixtureRequest
) -> None:
    k: Callable[[str], str] = lambda name: f"xngin:test:{request.node.name}:{name}"  # noqa: E731
    cache.delete(*(k(n) for n in "abcde"))
    assert cache.mget(k("a"), k("b")) == [None, None]
    assert cache.add(k("a"), b"1", ttl=60)
    assert not cache.add(k("a"), b"2", ttl=60)
    cache.set_many([(k("b"), b"x"), (k("c"), b"y")], ttl=60)
    assert cache.mget(k("a"), k("b"), k("c"), k("d")) == [b"1", b"x", b"y", None]
    assert asyncio.run(cache.amget(k("c"), k("d"), k("a"))) == [b"y", None, b"1"]
    cache.set(k("e"), b"short", ttl=0.05)
    time.sleep(0.1)
    assert cache.mget(k("e")) == [None]
    assert cache.add(k("e"), b"again", ttl=60)
