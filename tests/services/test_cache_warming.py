"""With a shared Redis cache, committing a preassigned experiment copies its assignment into the
cache in the background, so that first lookups are hits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from xngin.services.runtime import Runtime
from xngin.services.serving import assignment_key
from xngin.settings import Settings
from xngin.store.db import upgrade
from xngin.store.models import Assignment


@pytest.fixture
def runtime(app_database_url: str, tmp_path: Path, redis_url: str) -> Iterator[Runtime]:
    upgrade(app_database_url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=app_database_url,
        event_store_url=f"duckdb:///{tmp_path / 'events.duckdb'}",
        cache_url=redis_url,
    )
    rt = Runtime.start(settings)
    yield rt
    rt.close()


def test_commit_warms_the_shared_cache_with_every_assignment(
    runtime: Runtime, make_experiment: Callable[..., str]
) -> None:
    experiment_id = make_experiment("committed")
    with runtime.sessions() as session:
        stored = session.scalars(
            sa.select(Assignment.participant_id).where(Assignment.experiment_id == experiment_id)
        ).all()
    assert stored
    keys = [assignment_key(experiment_id, pid) for pid in stored]
    deadline = time.monotonic() + 10
    while True:
        cached = runtime.cache.mget(*keys)
        if all(v is not None for v in cached) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert all(v is not None for v in cached)


def test_an_assigned_but_uncommitted_experiment_is_not_cached(
    runtime: Runtime, make_experiment: Callable[..., str]
) -> None:
    experiment_id = make_experiment("assigned")
    with runtime.sessions() as session:
        pid = session.scalars(
            sa.select(Assignment.participant_id).where(Assignment.experiment_id == experiment_id)
        ).first()
    time.sleep(0.3)
    assert runtime.cache.mget(assignment_key(experiment_id, pid)) == [None]
