"""Dependencies of the web routes: the runtime, the request's transaction, the signed-in caller.

The same pattern as :mod:`xngin.api.deps`: one transaction per request, committed when the
route returns (before the response is sent) and rolled back when it raises. Routes that show an
error page raise :class:`xngin.web.rendering.ShowPage`, so a failed action never commits half
its work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from xngin.errors import XnginError
from xngin.services.access import Principal, list_api_keys
from xngin.services.runtime import Runtime
from xngin.web.session import CSRF_FIELD, CSRF_HEADER, SessionCodec, WebSession, csrf_matches

__all__ = [
    "CsrfRejected",
    "FormDep",
    "PrincipalDep",
    "RuntimeDep",
    "SessionDep",
    "SignInRequired",
    "get_codec",
    "get_runtime",
    "web_session",
]


class SignInRequired(Exception):
    """No valid session: the handler sends the browser to the sign-in page, then back."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in required")
        self.next_url = next_url


class CsrfRejected(Exception):
    """A POST without the session's CSRF token (forged, or the session expired meanwhile)."""


def get_runtime(request: Request) -> Runtime:
    # The UI is a sub-application; the runtime lives on the main app (see xngin.web.app).
    return request.app.state.main_app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    with runtime.sessions() as session, session.begin():
        yield session


# scope="function": the transaction ends when the route returns, before the response is sent.
# With FastAPI's default ("request") it would commit only after the response went out, so a
# browser following a redirect could load the next page before the change was committed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_codec(request: Request) -> SessionCodec:
    """The cookie codec, keyed by ``settings.session_secret`` or the process's random key."""
    state = request.app.state
    codec: SessionCodec | None = getattr(state, "session_codec", None)
    if codec is None:
        secret = get_runtime(request).settings.session_secret or state.random_session_key
        codec = SessionCodec(secret)
        state.session_codec = codec
    return codec


def web_session(request: Request) -> WebSession:
    """The request's session, made anonymous (and marked to be written) when there is none."""
    cached: WebSession | None = getattr(request.state, "web_session", None)
    if cached is not None:
        return cached
    session = get_codec(request).read(request)
    if session is None:
        session = WebSession.anonymous()
        request.state.write_session = True
    request.state.web_session = session
    return session


async def get_form(request: Request) -> FormData:
    """The submitted form, after checking its CSRF token (field or ``X-CSRF-Token`` header)."""
    form = await request.form()
    submitted = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    session = get_codec(request).read(request)
    if not csrf_matches(session, submitted if isinstance(submitted, str) else None):
        raise CsrfRejected()
    request.state.web_session = session
    return form


FormDep = Annotated[FormData, Depends(get_form)]


def _here(request: Request) -> str:
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """The signed-in caller, if their API key is still active; otherwise sign in first."""
    session = web_session(request)
    if not session.signed_in or session.organization_name is None:
        raise SignInRequired(_here(request))
    try:
        keys = list_api_keys(runtime, organization=session.organization_name)
    except XnginError:  # the organization is gone
        keys = []
    if not any(k.key_id == session.api_key_id and not k.revoked for k in keys):
        raise SignInRequired(_here(request))
    assert session.api_key_id is not None and session.organization_id is not None
    return Principal(
        organization_id=session.organization_id,
        organization_name=session.organization_name,
        api_key_id=session.api_key_id,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]
