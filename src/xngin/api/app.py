"""The FastAPI application: docs, error shape, routers, and the process runtime."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse

from xngin import __version__
from xngin.api.errors import install_error_handlers
from xngin.services.catalog import sync_declared_datasources
from xngin.services.health import check_stores
from xngin.services.lifecycle import start_scheduler
from xngin.services.runtime import Runtime
from xngin.settings import Settings, get_settings

DESCRIPTION = """
xngin designs, assigns and analyzes randomized experiments on participants who live in your
data warehouse. Every `/v1` endpoint needs an API key in the `X-API-Key` header.
Errors always have the shape `{"error": {"code", "message", "field"}}`.
"""


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. Pass ``runtime`` to share one with the caller (tests, the demo)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or Runtime.start(settings or get_settings())
        if owned:
            sync_declared_datasources(app.state.runtime)
            # Start-up objects live as long as the process: move them out of the collector's
            # reach, so full collections stay short (they stalled lookups ~100 ms at p99).
            gc.collect()
            gc.freeze()
        interval = app.state.runtime.settings.scheduler_interval_seconds
        stop_scheduler = (
            start_scheduler(app.state.runtime, interval_seconds=interval) if interval else None
        )
        try:
            yield
        finally:
            if stop_scheduler is not None:
                stop_scheduler()
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="xngin",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)

    @app.get("/docs", include_in_schema=False)
    def docs_redirect() -> RedirectResponse:
        return RedirectResponse("/api/docs")

    @app.get("/health", tags=["health"], summary="Status of every store")
    def health() -> JSONResponse:
        statuses = check_stores(app.state.runtime)
        ok = all(s.ok for s in statuses)
        body = {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "stores": {s.name: {"kind": s.kind, "ok": s.ok, "detail": s.detail} for s in statuses},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    from xngin.api import admin, assign, assignments, experiments, participants, power

    app.include_router(admin.router, prefix="/v1")
    app.include_router(assignments.router, prefix="/v1")
    app.include_router(experiments.router, prefix="/v1")
    app.include_router(participants.router, prefix="/v1")
    app.include_router(power.router, prefix="/v1")
    app.include_router(assign.router, prefix="/v1")
    from xngin.api import analysis, definitions, events

    app.include_router(events.router, prefix="/v1")
    app.include_router(definitions.metric_definitions_router, prefix="/v1")
    app.include_router(definitions.features_router, prefix="/v1")
    app.include_router(analysis.router, prefix="/v1")
    from xngin.web import create_web_app  # the web UI, a sub-application with HTML errors

    app.mount("/ui", create_web_app(app))
    return app
