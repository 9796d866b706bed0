"""Fetch a sheet kept in Google Sheets as CSV.

A Google Sheet URL (``https://docs.google.com/spreadsheets/d/<ID>/edit#gid=<GID>``) is turned into
its CSV export URL (``<base>/<ID>/export?format=csv&gid=<GID>``) and fetched with httpx. Sheets
shared as "anyone with the link" need no credentials. Private sheets are read as a service
account: the sheet is shared with the account's e-mail address, and the account's JSON key file
is configured; its OAuth access token is sent as a bearer token. The token step needs the
``google-auth`` package (the ``xngin[google]`` extra), imported only when used.

The export base URL is a parameter so that tests and mirrors can serve the export elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from xngin.errors import ConfigError, InvalidInput, Unavailable

GOOGLE_EXPORT_BASE_URL = "https://docs.google.com/spreadsheets/d"
#: Read-only scopes; the export endpoint accepts a token carrying either.
GOOGLE_SCOPES: tuple[str, ...] = (
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/drive.readonly",
)
_SHEET_PATH = re.compile(r"^/spreadsheets/d/([A-Za-z0-9_-]+)(?:/|$)")
_ACCEPTED_FORM = "https://docs.google.com/spreadsheets/d/<ID>/edit#gid=<GID>"


def is_google_sheet_url(location: str) -> bool:
    """Tell whether ``location`` is a Google Sheets address (rather than a file path)."""
    parts = urlsplit(location.strip())
    return parts.scheme in ("http", "https") and parts.hostname == "docs.google.com"


def google_sheet_export_url(
    sheet_url: str, *, export_base_url: str = GOOGLE_EXPORT_BASE_URL
) -> str:
    """Return the CSV export URL of the Google Sheet (tab) that ``sheet_url`` shows.

    Parameters
    ----------
    sheet_url
        The address copied from the browser, e.g. ``https://docs.google.com/spreadsheets/d/<ID>/
        edit#gid=<GID>``. The tab is taken from ``gid`` in the fragment or the query; without a
        ``gid`` Google exports the first tab.
    export_base_url
        Where exports are served; Google's own by default.

    Raises
    ------
    InvalidInput
        When ``sheet_url`` is not a Google Sheets address (field ``sheet_url``).
    """
    parts = urlsplit(sheet_url.strip())
    match = _SHEET_PATH.match(parts.path)
    if parts.hostname != "docs.google.com" or parts.scheme != "https" or match is None:
        raise InvalidInput(
            f"'{sheet_url}' is not a Google Sheet URL; expected the form {_ACCEPTED_FORM}",
            field="sheet_url",
        )
    gid = _gid(parts.fragment) or _gid(parts.query)
    url = f"{export_base_url.rstrip('/')}/{match.group(1)}/export?format=csv"
    return f"{url}&gid={gid}" if gid is not None else url


def google_access_token(credentials_file: str | Path) -> str:
    """Obtain an OAuth access token for a Google service account.

    Parameters
    ----------
    credentials_file
        Path of the service account's JSON key file.

    Returns
    -------
    str
        A short-lived bearer token with the read-only scopes of :data:`GOOGLE_SCOPES`.

    Raises
    ------
    ConfigError
        When ``google-auth`` is not installed (install ``xngin[google]``), or the key file cannot
        be read.
    Unavailable
        When Google refuses the key or cannot be reached.
    """
    try:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account
    except ImportError as error:
        raise ConfigError(
            "reading a Google Sheet with a service account needs the google-auth package, "
            f"which is not installed ({error}); install the extra: pip install 'xngin[google]'",
            field="google_credentials_file",
        ) from error
    try:
        credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(credentials_file), scopes=list(GOOGLE_SCOPES)
        )
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot use the Google service-account key file '{credentials_file}': {error}; "
            "give the path of the JSON key downloaded from the Google Cloud console",
            field="google_credentials_file",
        ) from error
    try:
        credentials.refresh(Request())
    except GoogleAuthError as error:
        raise Unavailable(
            f"Google did not issue an access token for the service account: {error}",
            field="google_credentials_file",
        ) from error
    return str(credentials.token)


def fetch_google_sheet_csv(
    sheet_url: str,
    *,
    credentials_file: str | Path | None = None,
    access_token: str | None = None,
    export_base_url: str = GOOGLE_EXPORT_BASE_URL,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> str:
    """Download a Google Sheet tab as CSV text.

    Parameters
    ----------
    sheet_url
        The sheet's address as copied from the browser (see :func:`google_sheet_export_url`).
    credentials_file
        Service-account JSON key; when given (and ``access_token`` is not), a token is obtained
        with :func:`google_access_token` and sent as a bearer token.
    access_token
        A bearer token obtained elsewhere; takes precedence over ``credentials_file``.
    export_base_url
        Where exports are served; Google's own by default.
    client
        An httpx client to reuse; a short-lived one is made when None.
    timeout
        Seconds to wait for Google (> 0).

    Returns
    -------
    str
        The CSV text.

    Raises
    ------
    InvalidInput
        The URL is not a Google Sheet URL, or Google refuses it (not shared, not found), or
        answers with a sign-in page instead of CSV. The message names the sheet URL.
    Unavailable
        Google cannot be reached or fails (5xx).
    """
    export_url = google_sheet_export_url(sheet_url, export_base_url=export_base_url)
    if access_token is None and credentials_file is not None:
        access_token = google_access_token(credentials_file)
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    try:
        if client is None:
            with httpx.Client(timeout=timeout) as own_client:
                response = own_client.get(export_url, headers=headers, follow_redirects=True)
        else:
            response = client.get(export_url, headers=headers, follow_redirects=True)
    except httpx.HTTPError as error:
        raise Unavailable(
            f"could not fetch the Google Sheet {sheet_url}: {error!r}; try again later",
            field="sheet_url",
        ) from error
    _raise_for_answer(response, sheet_url, authenticated=bool(access_token))
    return response.text


def _raise_for_answer(response: httpx.Response, sheet_url: str, *, authenticated: bool) -> None:
    status = response.status_code
    if status in (401, 403):
        who = (
            "share it with the service account's e-mail address"
            if authenticated
            else "share it as 'anyone with the link can view' or configure a service account"
        )
        raise InvalidInput(
            f"Google refused access to the sheet {sheet_url} (HTTP {status}); {who}",
            field="sheet_url",
        )
    if status == 404:
        raise InvalidInput(
            f"Google found no sheet at {sheet_url} (HTTP 404); check the ID and the gid of the "
            "tab in the URL",
            field="sheet_url",
        )
    if status >= 500:
        raise Unavailable(
            f"Google failed to export the sheet {sheet_url} (HTTP {status}); try again later",
            field="sheet_url",
        )
    if status >= 400:
        raise InvalidInput(
            f"Google could not export the sheet {sheet_url} (HTTP {status}); check that the URL "
            f"has the form {_ACCEPTED_FORM}",
            field="sheet_url",
        )
    if "text/html" in response.headers.get("content-type", ""):
        # Private sheets without credentials redirect to a sign-in page that answers 200.
        raise InvalidInput(
            f"Google answered with a web page instead of CSV for the sheet {sheet_url} "
            "(usually its sign-in page: the sheet is not shared with xngin); share it as "
            "'anyone with the link can view' or configure a service account",
            field="sheet_url",
        )


def _gid(fragment_or_query: str) -> str | None:
    values = parse_qs(fragment_or_query).get("gid")
    if values and values[0].isdigit():
        return values[0]
    return None
