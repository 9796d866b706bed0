"""Typed dependencies shared by the routers: the runtime, a transactional session, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from xngin.errors import Unauthorized
from xngin.services.access import Principal, authenticate
from xngin.services.runtime import Runtime

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from `xngin apikey create`."
)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    with runtime.sessions() as session, session.begin():
        yield session


# scope="function": commit before the response is sent, so a client's next request sees the
# change and a failing commit becomes the response (the default scope commits afterwards).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    runtime: RuntimeDep, key: Annotated[str | None, Depends(api_key_header)]
) -> Principal:
    if not key:
        raise Unauthorized("missing X-API-Key header", field="X-API-Key")
    return authenticate(runtime, key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
