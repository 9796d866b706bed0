"""The web UI's session: a signed, http-only cookie holding who signed in and a CSRF token.

The cookie is signed (not encrypted) with ``settings.session_secret``, or with a random key made
once per process when that is empty (sessions then end when the process restarts, and several
worker processes need the shared secret). It never holds the API key itself, only its id and
organization; every request checks that the key is still active, so revoking a key signs its
web sessions out too.

Every session, signed in or not, carries a random CSRF token. Forms repeat it in a hidden
``csrf_token`` field, ``fetch`` calls in the ``X-CSRF-Token`` header; a POST whose token does not
match the cookie's is refused. The sign-in form is protected the same way (a session without a
principal is made when the form is shown).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "MAX_AGE_SECONDS",
    "SessionCodec",
    "WebSession",
    "csrf_matches",
]

COOKIE_NAME = "xngin_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: A session lasts a working day; signing in again is cheap, a stolen cookie ages out.
MAX_AGE_SECONDS = 12 * 3600
_SALT = "xngin.web.session"


@dataclass(frozen=True, slots=True)
class WebSession:
    """What the cookie holds. ``api_key_id`` is None until someone signs in."""

    csrf_token: str
    api_key_id: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None

    @classmethod
    def anonymous(cls) -> WebSession:
        return cls(csrf_token=secrets.token_urlsafe(32))

    @property
    def signed_in(self) -> bool:
        return self.api_key_id is not None

    def signed_in_as(
        self, *, api_key_id: str, organization_id: str, organization_name: str
    ) -> WebSession:
        """A new session for a principal, with a fresh CSRF token (no fixation across sign-in)."""
        return replace(
            self,
            csrf_token=secrets.token_urlsafe(32),
            api_key_id=api_key_id,
            organization_id=organization_id,
            organization_name=organization_name,
        )


def csrf_matches(session: WebSession | None, submitted: str | None) -> bool:
    """Whether a submitted token equals the session's (constant-time)."""
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.csrf_token.encode(), submitted.encode())


class SessionCodec:
    """Reads and writes the session cookie.

    Parameters
    ----------
    secret : str or bytes
        The signing key; at least 16 characters are advisable.
    max_age : int
        Seconds a cookie stays valid after it was written.
    """

    def __init__(self, secret: str | bytes, *, max_age: int = MAX_AGE_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age = max_age

    def dumps(self, session: WebSession) -> str:
        payload: dict[str, Any] = {"c": session.csrf_token}
        if session.api_key_id is not None:
            payload |= {
                "k": session.api_key_id,
                "o": session.organization_id,
                "n": session.organization_name,
            }
        return self._serializer.dumps(payload)

    def loads(self, value: str | None) -> WebSession | None:
        """The session in a cookie value, or None when absent, tampered with or expired."""
        if not value:
            return None
        try:
            payload = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return None
        return WebSession(
            csrf_token=payload["c"],
            api_key_id=payload.get("k"),
            organization_id=payload.get("o"),
            organization_name=payload.get("n"),
        )

    def read(self, request: Request) -> WebSession | None:
        return self.loads(request.cookies.get(COOKIE_NAME))

    def write(self, response: Response, request: Request, session: WebSession) -> None:
        """Set the cookie: http-only, SameSite=Lax, Secure when the request came over https."""
        response.set_cookie(
            COOKIE_NAME,
            self.dumps(session),
            max_age=self.max_age,
            path=_cookie_path(request),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def clear(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path=_cookie_path(request),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )


def _cookie_path(request: Request) -> str:
    # The UI is mounted under a prefix (/ui); the cookie is not sent to the JSON API.
    return request.scope.get("root_path", "") or "/"
