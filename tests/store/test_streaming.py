"""Streaming an experiment's assignments leaves the connection usable for writes afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from xngin.services.runtime import Runtime
from xngin.store.assignments import iter_assignment_chunks
from xngin.store.models import Experiment


def test_a_write_after_streaming_assignments_on_the_same_connection_works(
    runtime: Runtime,
) -> None:
    with runtime.sessions.begin() as session:
        connection = session.connection()
        list(iter_assignment_chunks(connection, experiment_id="none", chunk_size=10))
        # PostgreSQL would refuse this if the streaming options had stuck to the connection.
        connection.execute(
            sa.update(Experiment)
            .where(Experiment.id == "none")
            .values(updated_at=datetime.now(UTC))
        )
