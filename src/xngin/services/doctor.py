"""`xngin doctor`: every store and every datasource, checked like a connection test script would."""

from __future__ import annotations

from xngin.services.health import StoreStatus, check_stores
from xngin.services.runtime import Runtime


def run_checks(runtime: Runtime) -> list[StoreStatus]:
    from xngin.services.catalog import check_all_datasources

    return [*check_stores(runtime), *check_all_datasources(runtime)]
