"""One error hierarchy for xngin.

Every error a user can cause is an :class:`XnginError` with a stable ``code``, an HTTP status, a
message that names the bad value and what would be accepted, and optionally the ``field`` it
concerns. The API turns them into ``{"error": {"code", "message", "field"}}``; the CLI prints the
message. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations


class XnginError(Exception):
    """Base class: a problem the caller can act on."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidInput(XnginError):
    """The request is well-formed JSON but a value is not acceptable (422)."""

    status = 422
    code = "invalid_input"


class Unauthorized(XnginError):
    status = 401
    code = "unauthorized"


class NotFound(XnginError):
    status = 404
    code = "not_found"


class Conflict(XnginError):
    """The action does not fit the resource's current state (409)."""

    status = 409
    code = "conflict"


class Unavailable(XnginError):
    """A store or datasource cannot be reached right now (503)."""

    status = 503
    code = "unavailable"


class ConfigError(XnginError):
    """Settings are wrong or incomplete; raised at start-up, never for a request."""

    status = 500
    code = "config_error"
