"""Signing in with an API key, and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from xngin.errors import Unauthorized
from xngin.services.access import authenticate
from xngin.web.deps import FormDep, RuntimeDep, get_codec, web_session
from xngin.web.errors import FieldErrors
from xngin.web.rendering import ShowPage, render, secure_headers

router = APIRouter()


def _safe_next(request: Request, target: str | None) -> str:
    """Only a path inside the UI may be a redirect target (no open redirect to other sites)."""
    base = request.scope.get("root_path", "")
    if (
        target
        and target.startswith(base + "/")
        and not target.startswith("//")
        and "\\" not in target
        and "://" not in target
    ):
        return target
    return str(request.url_for("ui_experiments").path)


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    secure_headers(response)
    return response


@router.get("/", name="ui_home")
def home(request: Request) -> Response:
    if web_session(request).signed_in:
        return _redirect(str(request.url_for("ui_experiments").path))
    return _redirect(str(request.url_for("ui_sign_in_form").path))


@router.get("/sign-in", name="ui_sign_in_form")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return render(
        request,
        "sign_in.html",
        {"next": _safe_next(request, next), "errors": FieldErrors(), "title": "Sign in"},
    )


@router.post("/sign-in", name="ui_sign_in")
def sign_in(request: Request, form: FormDep, runtime: RuntimeDep) -> Response:
    key, submitted_next = form.get("api_key"), form.get("next")
    next_url = _safe_next(request, submitted_next if isinstance(submitted_next, str) else None)
    try:
        if not isinstance(key, str) or not key.strip():
            raise Unauthorized("enter an API key (from `xngin apikey create`)", field="api_key")
        principal = authenticate(runtime, key.strip())
    except Unauthorized as exc:
        message = exc.message if exc.field == "api_key" else "this API key is not valid or revoked"
        errors = FieldErrors(by_input={"api_key": [message]})
        raise ShowPage(
            render(
                request,
                "sign_in.html",
                {"next": next_url, "errors": errors, "title": "Sign in"},
                status=401,
            )
        ) from exc
    session = web_session(request).signed_in_as(
        api_key_id=principal.api_key_id,
        organization_id=principal.organization_id,
        organization_name=principal.organization_name,
    )
    response = _redirect(next_url)
    get_codec(request).write(response, request, session)
    return response


@router.post("/sign-out", name="ui_sign_out")
def sign_out(request: Request, _form: FormDep) -> Response:
    response = _redirect(str(request.url_for("ui_sign_in_form").path))
    get_codec(request).clear(response, request)
    return response
