"""Is every store reachable? Used by GET /health and `xngin doctor`."""

from __future__ import annotations

from dataclasses import dataclass

from xngin.errors import XnginError
from xngin.services.runtime import Runtime


@dataclass(frozen=True, slots=True)
class StoreStatus:
    name: str
    kind: str
    ok: bool
    detail: str = ""


def check_app_database(runtime: Runtime) -> StoreStatus:
    from xngin.store.db import current_revision, head_revision

    kind = runtime.app_engine.dialect.name
    try:
        current, head = current_revision(runtime.app_engine), head_revision()
    except Exception as exc:  # any driver error means "not usable"; say which
        return StoreStatus("app_database", kind, False, runtime.settings.redact(_short(exc)))
    if current != head:
        return StoreStatus(
            "app_database",
            kind,
            False,
            f"schema at {current}, code expects {head}: run `xngin db upgrade`",
        )
    return StoreStatus("app_database", kind, True, f"schema {current}")


def check_event_store(runtime: Runtime) -> StoreStatus:
    url = runtime.settings.resolved_event_store_url
    kind = url.split(":", 1)[0]
    try:
        runtime.event_store.ping()
    except XnginError as exc:
        return StoreStatus("event_store", kind, False, runtime.settings.redact(exc.message))
    except Exception as exc:
        return StoreStatus("event_store", kind, False, runtime.settings.redact(_short(exc)))
    return StoreStatus("event_store", kind, True)


def check_cache(runtime: Runtime) -> StoreStatus:
    problem = runtime.cache.ping()
    return StoreStatus("cache", runtime.cache.kind, problem is None, problem or "")


def check_stores(runtime: Runtime) -> list[StoreStatus]:
    return [check_app_database(runtime), check_event_store(runtime), check_cache(runtime)]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
