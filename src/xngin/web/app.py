"""The web UI as a sub-application mounted at ``/ui`` of the main app.

A sub-application of its own, so its errors are pages and redirects rather than the API's JSON
error shape, its routes stay out of the OpenAPI document, and its static files are served beside
it. It shares the main app's runtime (read at request time: the main app's lifespan sets it).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from xngin.errors import Unauthorized, XnginError
from xngin.web.deps import CsrfRejected, SignInRequired, web_session
from xngin.web.rendering import ShowPage, render, secure_headers

__all__ = ["create_web_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def _error_page(request: Request, *, status: int, title: str, message: str) -> Response:
    return render(
        request, "error.html", {"title": title, "message": message, "status": status}, status=status
    )


def _sign_in_redirect(request: Request, next_url: str) -> Response:
    target = request.url_for("ui_sign_in_form").include_query_params(next=next_url)
    response = RedirectResponse(str(target.path) + "?" + target.query, status_code=303)
    secure_headers(response)
    return response


def create_web_app(main_app: FastAPI) -> FastAPI:
    """Build the UI; mount it with ``main_app.mount("/ui", create_web_app(main_app))``.

    Parameters
    ----------
    main_app : FastAPI
        The API application whose ``state.runtime`` the UI uses.

    Returns
    -------
    FastAPI
        An application without API docs, whose errors are HTML pages.
    """
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="xngin UI")
    web.state.main_app = main_app
    # Used to sign session cookies when settings.session_secret is empty: valid for this
    # process only, so a restart signs everyone out.
    web.state.random_session_key = secrets.token_bytes(32)

    @web.exception_handler(ShowPage)
    async def _show(_request: Request, exc: ShowPage) -> Response:
        return exc.response

    @web.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return _sign_in_redirect(request, exc.next_url)

    @web.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _exc: CsrfRejected) -> Response:
        web_session(request)  # a fresh session (and token) if the old one expired
        return _error_page(
            request,
            status=403,
            title="This form has expired",
            message="The form was not sent from this session (it may have expired, or come "
            "from another site). Go back, reload the page and send it again.",
        )

    @web.exception_handler(XnginError)
    async def _xngin_error(request: Request, exc: XnginError) -> Response:
        if isinstance(exc, Unauthorized):
            return _sign_in_redirect(request, request.url.path)
        status = exc.status if 400 <= exc.status < 600 else 500
        return _error_page(request, status=status, title=exc.code.replace("_", " "),
                           message=exc.message)  # fmt: skip

    @web.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()[:5]
        )
        return _error_page(request, status=422, title="invalid request", message=details)

    @web.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "page not found", 405: "not allowed"}
        return _error_page(
            request,
            status=exc.status_code,
            title=titles.get(exc.status_code, "error"),
            message=str(exc.detail),
        )

    @web.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in the web UI", exc_info=exc)
        return _error_page(
            request,
            status=500,
            title="something went wrong",
            message="An unexpected error happened; the server log has the details.",
        )

    from xngin.web.routes import auth, design, experiments, participants, results

    web.include_router(auth.router)
    web.include_router(participants.router)
    web.include_router(design.router)
    web.include_router(experiments.router)
    web.include_router(results.router)
    web.mount("/static", StaticFiles(directory=STATIC_DIR), name="ui_static")
    return web
