"""Google Sheets access.

Google itself cannot be reached from the machines these tests run on, so the fetch path is tested
against a real HTTP server on 127.0.0.1 (``http_server`` fixture) standing in for Google's export
endpoint through the injectable export base URL: the same httpx requests, redirects and status
handling, only another host. The service-account token step needs the google-auth package,
which is not installed here: only its missing-package error can be tested.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest

from xngin.errors import ConfigError, InvalidInput, Unavailable
from xngin.sheets import (
    SHEET_COLUMNS,
    fetch_google_sheet_csv,
    google_access_token,
    google_sheet_export_url,
    is_google_sheet_url,
)

SHEET_ID = "1AbC-dEf_ghIJ"
CSV = ",".join(SHEET_COLUMNS) + "\r\nid,integer,,TRUE,FALSE,FALSE,FALSE,\r\n"


def sheet_url(sheet_id: str = SHEET_ID, gid: str = "123") -> str:
    return f"https://docs.google.com/spreadsheets/d/{sheet_id}/edit#gid={gid}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://docs.google.com/spreadsheets/d/1AbC-dEf_ghIJ/edit#gid=123",
            "https://docs.google.com/spreadsheets/d/1AbC-dEf_ghIJ/export?format=csv&gid=123",
        ),
        (
            " https://docs.google.com/spreadsheets/d/1AbC/edit?usp=sharing#gid=0&range=A1 ",
            "https://docs.google.com/spreadsheets/d/1AbC/export?format=csv&gid=0",
        ),
        (
            "https://docs.google.com/spreadsheets/d/1AbC/edit?gid=77",
            "https://docs.google.com/spreadsheets/d/1AbC/export?format=csv&gid=77",
        ),
        (
            "https://docs.google.com/spreadsheets/d/1AbC",
            "https://docs.google.com/spreadsheets/d/1AbC/export?format=csv",
        ),
    ],
)
def test_sheet_url_becomes_its_csv_export_url(url: str, expected: str) -> None:
    assert google_sheet_export_url(url) == expected


def test_export_base_url_is_injectable() -> None:
    assert (
        google_sheet_export_url(sheet_url(), export_base_url="http://127.0.0.1:9/mirror/")
        == f"http://127.0.0.1:9/mirror/{SHEET_ID}/export?format=csv&gid=123"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/spreadsheets/d/1AbC/edit",
        "https://docs.google.com/document/d/1AbC/edit",
        "http://docs.google.com/spreadsheets/d/1AbC/edit",
        "people.csv",
    ],
)
def test_other_addresses_are_not_google_sheet_urls(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        google_sheet_export_url(url)
    assert caught.value.field == "sheet_url"
    assert (
        url in caught.value.message
        and "docs.google.com/spreadsheets/d/<ID>" in caught.value.message
    )


def test_is_google_sheet_url_tells_urls_from_paths() -> None:
    assert is_google_sheet_url(sheet_url())
    assert not is_google_sheet_url("/data/people.csv")
    assert not is_google_sheet_url("https://example.com/people.csv")


def test_fetch_downloads_the_export_of_the_right_tab(http_server: Any) -> None:
    http_server.serve(f"/d/{SHEET_ID}/export?format=csv&gid=123", 200, CSV)
    text = fetch_google_sheet_csv(sheet_url(), export_base_url=f"{http_server.base_url}/d")
    assert text == CSV
    ((path, headers),) = http_server.requests
    assert path == f"/d/{SHEET_ID}/export?format=csv&gid=123"
    assert "authorization" not in {k.lower() for k in headers}


def test_fetch_sends_the_access_token_as_bearer(http_server: Any) -> None:
    http_server.serve(f"/d/{SHEET_ID}/export?format=csv&gid=123", 200, CSV)
    with httpx.Client(trust_env=False) as client:
        fetch_google_sheet_csv(
            sheet_url(),
            access_token="ya29.test-token",
            export_base_url=f"{http_server.base_url}/d",
            client=client,
        )
    ((_, headers),) = http_server.requests
    assert headers["Authorization"] == "Bearer ya29.test-token"


def test_fetch_follows_the_export_redirect(http_server: Any) -> None:
    # Google answers the export URL with a redirect to the file's content host.
    http_server.serve(
        f"/d/{SHEET_ID}/export?format=csv&gid=123",
        307,
        headers={"Location": f"{http_server.base_url}/content/abc"},
    )
    http_server.serve("/content/abc", 200, CSV)
    assert fetch_google_sheet_csv(sheet_url(), export_base_url=f"{http_server.base_url}/d") == CSV


@pytest.mark.parametrize(
    ("status", "error_type", "words"),
    [
        (403, InvalidInput, "refused access"),
        (401, InvalidInput, "refused access"),
        (404, InvalidInput, "found no sheet"),
        (400, InvalidInput, "could not export"),
        (500, Unavailable, "try again later"),
    ],
)
def test_refusals_and_failures_name_the_sheet_url(
    http_server: Any,
    status: int,
    error_type: type,
    words: str,
) -> None:
    http_server.serve(f"/d/{SHEET_ID}/export?format=csv&gid=123", status, "<html>no</html>")
    with pytest.raises(error_type) as caught:
        fetch_google_sheet_csv(sheet_url(), export_base_url=f"{http_server.base_url}/d")
    assert type(caught.value) is error_type
    assert sheet_url() in caught.value.message and f"HTTP {status}" in caught.value.message
    assert words in caught.value.message and caught.value.field == "sheet_url"


def test_sign_in_page_instead_of_csv_is_refused(http_server: Any) -> None:
    http_server.serve(
        f"/d/{SHEET_ID}/export?format=csv&gid=123",
        200,
        "<!doctype html><title>Sign in</title>",
        content_type="text/html; charset=utf-8",
    )
    with pytest.raises(InvalidInput, match="web page instead of CSV") as caught:
        fetch_google_sheet_csv(sheet_url(), export_base_url=f"{http_server.base_url}/d")
    assert sheet_url() in caught.value.message


def test_unreachable_export_host_is_unavailable() -> None:
    # Port 9 on 127.0.0.1 (discard) is closed here: the connection is refused at once.
    with pytest.raises(Unavailable) as caught:
        fetch_google_sheet_csv(sheet_url(), export_base_url="http://127.0.0.1:9/d", timeout=2)
    assert sheet_url() in caught.value.message and caught.value.status == 503


@pytest.mark.skipif(
    importlib.util.find_spec("google") is not None, reason="google-auth is installed here"
)
def test_token_without_google_auth_names_the_extra(tmp_path: Path) -> None:
    # Only the missing-package path can run here: google-auth is not installed and Google's
    # token endpoint cannot be reached.
    key = tmp_path / "key.json"
    key.write_text("{}")
    with pytest.raises(ConfigError, match=r"xngin\[google\]"):
        google_access_token(key)
    with pytest.raises(ConfigError, match="google-auth"):
        fetch_google_sheet_csv(
            sheet_url(), credentials_file=key, export_base_url="http://127.0.0.1:9"
        )
