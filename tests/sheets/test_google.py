"""Google Sheets access.

Google itself cannot be reached from the machines these tests run on, so the fetch path is tested
against a real HTTP server on 127.0.0.1 (``http_server`` fixture) standing in for Google's export
endpoint through the injectable export base URL: the same httpx requests, redirects and status
handling, only another host. The service-account token step runs google-auth for real against
the same local server standing in for Google's token endpoint (the key file names the endpoint
in its ``token_uri``); its missing-package error is tested by hiding google-auth.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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


def test_token_without_google_auth_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("google.auth.exceptions", "google.auth.transport.requests", "google.oauth2"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    key = tmp_path / "key.json"
    key.write_text("{}")
    with pytest.raises(ConfigError, match=r"xngin\[google\]"):
        google_access_token(key)
    with pytest.raises(ConfigError, match="google-auth"):
        fetch_google_sheet_csv(
            sheet_url(), credentials_file=key, export_base_url="http://127.0.0.1:9"
        )


def test_a_service_account_key_is_exchanged_for_a_token_sent_with_the_export(
    tmp_path: Path, http_server: Any
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import jwt

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token_uri = f"{http_server.base_url}/token"
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "xngin-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "sheets@xngin-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    http_server.serve(
        "/token",
        200,
        json.dumps({"access_token": "ya29.local", "expires_in": 3600, "token_type": "Bearer"}),
        content_type="application/json",
    )
    http_server.serve(f"/d/{SHEET_ID}/export?format=csv&gid=123", 200, CSV)

    text = fetch_google_sheet_csv(
        sheet_url(), credentials_file=key, export_base_url=f"{http_server.base_url}/d"
    )

    assert text == CSV
    export_headers = [h for path, h in http_server.requests if path.startswith("/d/")]
    assert export_headers[0]["Authorization"] == "Bearer ya29.local"
    ((path, body),) = http_server.bodies
    form = parse_qs(body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Signed with the key from the file; google-auth names Google's token URL as the audience
    # whichever endpoint it posts to.
    claims = jwt.decode(
        form["assertion"][0], certs=public, audience="https://oauth2.googleapis.com/token"
    )
    assert claims["iss"] == "sheets@xngin-test.iam.gserviceaccount.com"
    assert "spreadsheets.readonly" in claims["scope"] or "drive.readonly" in claims["scope"]


def test_a_refused_service_account_key_is_unavailable_naming_the_setting(
    tmp_path: Path, http_server: Any
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "sheets@xngin-test.iam.gserviceaccount.com",
                "token_uri": f"{http_server.base_url}/token",
            }
        )
    )
    http_server.serve(
        "/token", 400, json.dumps({"error": "invalid_grant"}), content_type="application/json"
    )
    with pytest.raises(Unavailable) as caught:
        google_access_token(key)
    assert caught.value.field == "google_credentials_file"
