"""Signing in and out: cookie flags, CSRF, revocation, redirects."""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from xngin.services.access import revoke_api_key
from xngin.services.runtime import Runtime
from xngin.web.session import COOKIE_NAME


def _set_cookie(response: Any) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookie.load(header)
    return cookie


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(client: TestClient) -> None:
    response = client.get("/ui/experiments?state=running", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/ui/sign-in?next=%2Fui%2Fexperiments%3Fstate%3Drunning"
    )


def test_sign_in_sets_an_http_only_lax_cookie_scoped_to_the_ui(
    client: TestClient, org: Any, csrf_token: Callable[[str], str]
) -> None:
    form = client.get("/ui/sign-in?next=/ui/participants")
    response = client.post(
        "/ui/sign-in",
        data={
            "api_key": org.api_key,
            "csrf_token": csrf_token(form.text),
            "next": "/ui/participants",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/participants"
    morsel = _set_cookie(response)[COOKIE_NAME]
    assert morsel["httponly"] and morsel["samesite"].lower() == "lax" and not morsel["secure"]
    assert morsel["path"] == "/ui"
    assert org.api_key not in morsel.value  # only the key's id is kept
    page = client.get("/ui/participants")
    assert page.status_code == 200 and org.name in page.text


def test_the_cookie_is_secure_over_https(
    web_app: FastAPI, org: Any, csrf_token: Callable[[str], str]
) -> None:
    with TestClient(web_app, base_url="https://testserver") as secure:
        form = secure.get("/ui/sign-in")
        assert _set_cookie(form)[COOKIE_NAME]["secure"]
        response = secure.post(
            "/ui/sign-in",
            data={"api_key": org.api_key, "csrf_token": csrf_token(form.text)},
            follow_redirects=False,
        )
        assert _set_cookie(response)[COOKIE_NAME]["secure"]


def test_a_wrong_key_is_refused_next_to_the_key_field(
    client: TestClient, csrf_token: Callable[[str], str], read_page: Callable[[str], Any]
) -> None:
    form = client.get("/ui/sign-in")
    response = client.post(
        "/ui/sign-in", data={"api_key": "xk_wrong", "csrf_token": csrf_token(form.text)}
    )
    assert response.status_code == 401
    page = read_page(response.text)
    assert page.errors_for("api_key") == ["this API key is not valid or revoked"]
    assert page.by_name("api_key").get("aria-invalid") == "true"
    assert client.get("/ui/participants", follow_redirects=False).status_code == 303


def test_a_sign_in_without_the_forms_token_is_refused(client: TestClient, org: Any) -> None:
    client.get("/ui/sign-in")
    response = client.post("/ui/sign-in", data={"api_key": org.api_key, "csrf_token": "forged"})
    assert response.status_code == 403
    assert "expired" in response.text
    assert client.get("/ui/participants", follow_redirects=False).status_code == 303


def test_a_post_with_another_sessions_token_is_refused(
    web_app: FastAPI, signed_in: TestClient, csrf_token: Callable[[str], str]
) -> None:
    with TestClient(web_app) as other:
        foreign = csrf_token(other.get("/ui/sign-in").text)
    response = signed_in.post("/ui/sign-out", data={"csrf_token": foreign})
    assert response.status_code == 403
    assert signed_in.get("/ui/participants", follow_redirects=False).status_code == 200


def test_signing_out_clears_the_cookie(
    signed_in: TestClient, csrf_token: Callable[[str], str]
) -> None:
    token = csrf_token(signed_in.get("/ui/participants").text)
    response = signed_in.post("/ui/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    morsel = _set_cookie(response)[COOKIE_NAME]
    assert morsel.value == "" and morsel["max-age"] == "0"
    assert signed_in.get("/ui/participants", follow_redirects=False).status_code == 303


def test_revoking_the_key_signs_its_sessions_out(
    signed_in: TestClient, org: Any, web_runtime: Runtime
) -> None:
    assert signed_in.get("/ui/participants", follow_redirects=False).status_code == 200
    revoke_api_key(web_runtime, key_id_or_prefix=org.principal.api_key_id)
    assert signed_in.get("/ui/participants", follow_redirects=False).status_code == 303


def test_sign_in_never_redirects_off_the_ui(
    client: TestClient, org: Any, csrf_token: Callable[[str], str]
) -> None:
    for target in ["https://evil.example/", "//evil.example/x", "/v1/experiments", "/ui\\..\\x"]:
        client.cookies.clear()
        form = client.get("/ui/sign-in")
        response = client.post(
            "/ui/sign-in",
            data={"api_key": org.api_key, "csrf_token": csrf_token(form.text), "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/ui/experiments", target


def test_pages_forbid_framing_and_foreign_scripts(client: TestClient) -> None:
    response = client.get("/ui/sign-in")
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert response.headers["cache-control"] == "no-store"


def test_the_ui_is_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


def test_static_files_are_served(client: TestClient) -> None:
    css = client.get("/ui/static/xngin.css")
    assert css.status_code == 200 and "svg.chart" in css.text
    assert client.get("/ui/static/design.js").status_code == 200
