"""Rendering pages: the Jinja2 environment, number formats, and pages shown instead of a result.

Templates live in ``templates/`` next to this module and are autoescaped. :func:`render` adds
what every page needs (the CSRF token, the organization, the session cookie when it is new).
A route that must show a page instead of carrying on (a form with errors, a refused action)
raises :class:`ShowPage`; the exception rolls the request's transaction back on its way out.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, Response

from xngin.web.deps import get_codec, web_session
from xngin.web.errors import input_id

__all__ = ["TEMPLATES", "ShowPage", "fmt_number", "fmt_p_value", "fmt_percent", "render"]

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


class ShowPage(Exception):
    """Stop the route and answer with ``response`` (its transaction is rolled back)."""

    def __init__(self, response: Response) -> None:
        super().__init__("show page")
        self.response = response


def fmt_number(value: Any, digits: int = 4) -> str:
    """Counts with thousands separators, other numbers to ``digits`` significant digits."""
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "–"
    if value == int(value) and abs(value) >= 1000:
        return f"{int(value):,}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_signed(value: Any, digits: int = 4) -> str:
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return ("+" if value > 0 else "") + fmt_number(value, digits)


def fmt_p_value(value: Any) -> str:
    """p-values as people read them: three decimals, ``< 0.001`` below that."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


def fmt_percent(value: Any, digits: int = 1) -> str:
    """A fraction as a signed percentage: 0.123 -> ``+12.3%``."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value * 100:+.{digits}f}%"


def fmt_time(value: Any) -> str:
    """An ISO time or datetime as ``2026-11-21 14:03 UTC``."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + (" UTC" if value.tzinfo else "")
    return str(value)


TEMPLATES.env.filters.update(
    num=fmt_number,
    signed=fmt_signed,
    pvalue=fmt_p_value,
    pct=fmt_percent,
    when=fmt_time,
    input_id=input_id,
)


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """A page from ``template`` with ``context`` plus ``csrf_token``, ``organization``, ``nav``.

    Writes the session cookie when this request started a session (first visit).
    """
    session = web_session(request)
    full = {
        "csrf_token": session.csrf_token,
        "organization": session.organization_name if session.signed_in else None,
        "nav": "",
        **(context or {}),
    }
    response = TEMPLATES.TemplateResponse(request, template, full, status_code=status)
    if getattr(request.state, "write_session", False):
        get_codec(request).write(response, request, session)
    secure_headers(response)
    return response


#: Pages load only our own script and stylesheet, and no other site may frame them (the
#: lifecycle buttons must not be clickable through someone else's page).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def secure_headers(response: Response) -> None:
    """Headers every UI response carries: no caching of private pages, no framing, our CSP."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
