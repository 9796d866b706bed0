"""Participant-type config sheets: propose one from a table, read it from CSV or Google Sheets,
check it against the table, and notice when the table has drifted from it.

Row numbers in problems: 1 is the first row under the header (see :mod:`xngin.sheets.problems`).
"""

from xngin.sheets.bootstrap import bootstrap_sheet, guess_unique_id
from xngin.sheets.csv_io import (
    CheckedSheet,
    ParsedSheet,
    load_sheet_csv,
    parse_sheet_csv,
    read_sheet_csv,
    write_sheet_csv,
    write_sheet_file,
)
from xngin.sheets.drift import Drift, DriftKind, detect_drift
from xngin.sheets.google import (
    GOOGLE_EXPORT_BASE_URL,
    fetch_google_sheet_csv,
    google_access_token,
    google_sheet_export_url,
    is_google_sheet_url,
)
from xngin.sheets.model import SHEET_COLUMNS, STRATA_MAX_DISTINCT, ParticipantSheet, SheetRow
from xngin.sheets.problems import Severity, SheetInvalid, SheetProblem
from xngin.sheets.sources import load_sheet, read_sheet, read_sheet_text
from xngin.sheets.validate import check_sheet, validate_sheet

__all__ = [
    "GOOGLE_EXPORT_BASE_URL",
    "SHEET_COLUMNS",
    "STRATA_MAX_DISTINCT",
    "CheckedSheet",
    "Drift",
    "DriftKind",
    "ParsedSheet",
    "ParticipantSheet",
    "Severity",
    "SheetInvalid",
    "SheetProblem",
    "SheetRow",
    "bootstrap_sheet",
    "check_sheet",
    "detect_drift",
    "fetch_google_sheet_csv",
    "google_access_token",
    "google_sheet_export_url",
    "guess_unique_id",
    "is_google_sheet_url",
    "load_sheet",
    "load_sheet_csv",
    "parse_sheet_csv",
    "read_sheet",
    "read_sheet_csv",
    "read_sheet_text",
    "validate_sheet",
    "write_sheet_csv",
    "write_sheet_file",
]
