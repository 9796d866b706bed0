"""Read a sheet from where its authors keep it: a CSV file or a Google Sheet.

``location`` is either a Google Sheet URL (see :mod:`xngin.sheets.google`) or a path to a CSV
file. Other URLs are refused rather than fetched, so that a sheet location given through the API
cannot make the server call arbitrary addresses. Callers that take locations from API requests
should also decide whether local paths are acceptable there (the CLI needs them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from xngin.dwh.schema import TableSchema
from xngin.errors import InvalidInput
from xngin.sheets.csv_io import CheckedSheet, load_sheet_csv, read_sheet_csv
from xngin.sheets.google import (
    GOOGLE_EXPORT_BASE_URL,
    fetch_google_sheet_csv,
    is_google_sheet_url,
)
from xngin.sheets.model import STRATA_MAX_DISTINCT, ParticipantSheet


def read_sheet_text(
    location: str,
    *,
    credentials_file: str | Path | None = None,
    export_base_url: str = GOOGLE_EXPORT_BASE_URL,
    client: httpx.Client | None = None,
) -> str:
    """Return the CSV text of the sheet at ``location``.

    Parameters
    ----------
    location
        A Google Sheet URL or the path of a UTF-8 CSV file (a byte-order mark is dropped).
    credentials_file, export_base_url, client
        For Google Sheets, as in :func:`xngin.sheets.google.fetch_google_sheet_csv`.

    Raises
    ------
    InvalidInput
        A file that cannot be read or is not UTF-8, a URL that is not a Google Sheet, or a Google
        Sheet that cannot be exported (field ``sheet_url``).
    """
    if is_google_sheet_url(location):
        return fetch_google_sheet_csv(
            location,
            credentials_file=credentials_file,
            export_base_url=export_base_url,
            client=client,
        )
    if urlsplit(location).scheme in ("http", "https"):
        raise InvalidInput(
            f"'{location}' is not a Google Sheet URL; give a Google Sheet URL "
            "(https://docs.google.com/spreadsheets/d/<ID>/edit#gid=<GID>) or a CSV file path",
            field="sheet_url",
        )
    return _read_text_file(Path(location))


def read_sheet(
    location: str,
    *,
    credentials_file: str | Path | None = None,
    export_base_url: str = GOOGLE_EXPORT_BASE_URL,
    client: httpx.Client | None = None,
) -> ParticipantSheet:
    """Read the sheet at ``location`` without checking it against a table.

    Parameters are those of :func:`read_sheet_text`.

    Raises
    ------
    InvalidInput
        As :func:`read_sheet_text`; :class:`SheetInvalid` (a subclass) for unreadable cells.
    """
    text = read_sheet_text(
        location, credentials_file=credentials_file, export_base_url=export_base_url, client=client
    )
    return read_sheet_csv(text, source=location)


def load_sheet(
    location: str,
    schema: TableSchema,
    *,
    distinct_counts: Mapping[str, int] | None = None,
    strata_max_distinct: int = STRATA_MAX_DISTINCT,
    credentials_file: str | Path | None = None,
    export_base_url: str = GOOGLE_EXPORT_BASE_URL,
    client: httpx.Client | None = None,
) -> CheckedSheet:
    """Read the sheet at ``location`` and check it against ``schema``.

    Parameters
    ----------
    location
        A Google Sheet URL or a CSV file path.
    schema
        The participant table as introspected now.
    distinct_counts, strata_max_distinct
        As for :func:`xngin.sheets.validate_sheet`.
    credentials_file, export_base_url, client
        For Google Sheets, as in :func:`xngin.sheets.google.fetch_google_sheet_csv`.

    Returns
    -------
    CheckedSheet
        The sheet and its warnings.

    Raises
    ------
    SheetInvalid
        With every unreadable cell and validation problem, numbered by CSV data row.
    InvalidInput, Unavailable
        When the sheet cannot be fetched or read.
    """
    text = read_sheet_text(
        location, credentials_file=credentials_file, export_base_url=export_base_url, client=client
    )
    return load_sheet_csv(
        text,
        schema,
        distinct_counts=distinct_counts,
        strata_max_distinct=strata_max_distinct,
        source=location,
    )


def _read_text_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInput(
            f"cannot read the sheet file '{path}': {error.strerror or error}; "
            "give the path of a readable CSV file",
            field="sheet_url",
        ) from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"the sheet file '{path}' is not UTF-8 text (byte {error.start} cannot be decoded); "
            "save it as 'CSV UTF-8'",
            field="sheet_url",
        ) from error
