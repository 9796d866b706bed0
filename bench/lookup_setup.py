"""Set up and tear down the data behind bench/lookup.sh.

``setup REDIS_URL N [cold]``: a new PostgreSQL database of its own (migrated), an organization with
an API key, a running preassigned experiment of N participants (``p0000000``...) stored through
``replace_assignments``, and its assignments copied into the cache with ``warm_cache`` (unless
``cold``). Prints shell assignments (``DB_NAME=...``) for the script to source.

``teardown DB_NAME``: drops that database.

``bare_app``: the baseline, a bare FastAPI endpoint returning a small JSON object.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from fastapi import FastAPI

from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime
from xngin.services.serving import warm_cache
from xngin.settings import Settings
from xngin.store.assignments import replace_assignments
from xngin.store.db import upgrade
from xngin.store.models import Arm, Datasource, Experiment, ParticipantType
from xngin.testing.servers import POSTGRES_ADMIN_URL


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup(redis_url: str, n: int, *, warm: bool) -> None:
    admin_url = sa.make_url(POSTGRES_ADMIN_URL)
    name = f"xngin_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    # Printed first, so that the caller's trap can drop the database even if the rest fails.
    print(f"DB_NAME={name}", flush=True)
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    print(f"DB_URL='{url}'", flush=True)
    upgrade(url)
    settings = Settings(
        data_dir=tempfile.mkdtemp(prefix="xngin-bench-"), database_url=url, cache_url=redis_url
    )
    runtime = Runtime.start(settings)
    try:
        key = issue_api_key(runtime, organization="bench").plaintext
        with runtime.sessions.begin() as session:
            org_id = session.scalar(sa.text("SELECT id FROM organizations WHERE name = 'bench'"))
            ds = Datasource(organization_id=org_id, name="wh", url="unused")
            session.add(ds)
            session.flush()
            pt = ParticipantType(
                organization_id=org_id,
                datasource_id=ds.id,
                name="people",
                table_name="people",
                unique_id_field="id",
            )
            session.add(pt)
            session.flush()
            exp = Experiment(
                organization_id=org_id,
                participant_type_id=pt.id,
                name="lookup bench",
                type="preassigned",
                state="running",
                seed=7,
                arms=[
                    Arm(position=i, name=name, config={"variant": name})
                    for i, name in enumerate(["control", "treatment a", "treatment b"])
                ],
            )
            session.add(exp)
            session.flush()
            arm_ids = np.asarray([a.id for a in exp.arms], dtype=object)
            rng = np.random.default_rng(7)
            start = time.perf_counter()
            replace_assignments(
                session,
                experiment_id=exp.id,
                participant_ids=[f"p{i:07d}" for i in range(n)],
                arm_ids=arm_ids[rng.integers(0, 3, n)].tolist(),
                strata_json=None,
                assigned_at=datetime.now(UTC),
            )
            experiment_id = exp.id
        log(f"stored {n:,} assignments in {time.perf_counter() - start:.1f} s")
        if warm:
            start = time.perf_counter()
            warmed = warm_cache(runtime, experiment_id)
            seconds = time.perf_counter() - start
            log(f"copied {warmed:,} assignments into the cache in {seconds:.1f} s")
    finally:
        runtime.close()
    print(f"API_KEY={key}")
    print(f"EXPERIMENT_ID={experiment_id}")


bare_app = FastAPI()


@bare_app.get("/v1/ping/{participant_id}")
async def ping(participant_id: str) -> dict[str, str]:
    return {"participant_id": participant_id, "arm_id": "control"}


def teardown(name: str) -> None:
    if not name.startswith("xngin_bench_"):
        raise SystemExit(f"refusing to drop {name!r}: not a bench database")
    admin = sa.create_engine(sa.make_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


if __name__ == "__main__":
    if sys.argv[1:2] == ["setup"]:
        setup(sys.argv[2], int(sys.argv[3]), warm=sys.argv[4:5] != ["cold"])
    elif sys.argv[1:2] == ["teardown"]:
        teardown(sys.argv[2])
    else:
        raise SystemExit("usage: lookup_setup.py setup REDIS_URL N [cold] | teardown DB_NAME")
