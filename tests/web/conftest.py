"""Web UI fixtures: one app over a small demo warehouse, a fresh organization per test, and a
small HTML reader for asserting on pages.

The app, its SQLite app database and the DuckDB warehouse (the demo generator's participants)
are made once per session; each test gets an organization of its own (own API key, datasource
and participant type), so tests never see each other's experiments.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.services.access import Principal, issue_api_key
from xngin.services.demo import (
    DEMO_PARTICIPANT_TYPE,
    DEMO_SHEET,
    DEMO_TABLE,
    generate_beneficiaries,
    write_demo_warehouse,
)
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store import catalog
from xngin.store import organizations as orgs
from xngin.store.db import upgrade
from xngin.testing import servers

WAREHOUSE_ROWS = 2000


@pytest.fixture(scope="session")
def warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web-warehouse") / "warehouse.duckdb"
    write_demo_warehouse(path, n=WAREHOUSE_ROWS)
    return path


@pytest.fixture(scope="session")
def people() -> pd.DataFrame:
    """The warehouse's participants, as the demo generator made them (the expected values)."""
    return generate_beneficiaries(WAREHOUSE_ROWS)


def make_runtime(data_dir: Path) -> Runtime:
    database_url = f"sqlite:///{data_dir / 'app.sqlite'}"
    upgrade(database_url)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        event_store_url=f"duckdb:///{data_dir / 'events.duckdb'}",
        cache_url="memory://",
        field_values_ttl_seconds=0,
    )
    return Runtime.start(settings)


@pytest.fixture(scope="session")
def web_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path_factory.mktemp("web-app"))
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def web_app(web_runtime: Runtime) -> FastAPI:
    return create_app(runtime=web_runtime)


@pytest.fixture(scope="session")
def session_client(web_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(web_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(session_client: TestClient) -> TestClient:
    """The app's test client with no cookies (each test starts signed out)."""
    session_client.cookies.clear()
    return session_client


@dataclass(frozen=True)
class Org:
    name: str
    api_key: str
    principal: Principal


def register_demo(runtime: Runtime, warehouse: Path, organization: str) -> Org:
    """An organization with an API key and the demo participant type over ``warehouse``."""
    key = issue_api_key(runtime, organization=organization, name="web-test")
    with runtime.sessions.begin() as session:
        org = orgs.get_or_create_organization(session, organization)
        ds = catalog.upsert_datasource(
            session,
            organization_id=org.id,
            name="demo",
            url=f"duckdb:///{warehouse}",
            options={"connect_args": {"read_only": True}},
        )
        catalog.upsert_participant_type(
            session,
            organization_id=org.id,
            name=DEMO_PARTICIPANT_TYPE,
            datasource=ds,
            table_name=DEMO_TABLE,
            unique_id_field="participant_id",
            fields=DEMO_SHEET,
            sheet_url=None,
        )
        principal = Principal(
            organization_id=org.id, organization_name=organization, api_key_id=key.key_id
        )
    return Org(name=organization, api_key=key.plaintext, principal=principal)


@pytest.fixture
def org(web_runtime: Runtime, warehouse_path: Path) -> Org:
    return register_demo(web_runtime, warehouse_path, f"org-{uuid.uuid4().hex[:10]}")


# Reading pages ----------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    position: int
    text: str = ""
    end: int = -1  # position of the first element after this one's closing tag

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)


_VOID = {"input", "meta", "link", "br", "img", "hr", "source", "option"}


class Page(HTMLParser):
    """Elements of an HTML page in document order, each with its text (a test helper)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, len(self.elements))
        self.elements.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                for closed in self._open[i:]:
                    closed.end = len(self.elements)
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag) and all(e.attrs.get(k) == v for k, v in wanted.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag or '*'}> with {attrs} on the page"
        return found[0]

    def within(self, outer: Element, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements inside ``outer`` (optionally of ``tag`` with ``attrs``)."""
        inside = set(range(outer.position + 1, outer.end))
        return [e for e in self.find_all(tag, **attrs) if e.position in inside]

    def by_name(self, name: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("name") == name]
        assert found, f"no input named {name!r}"
        return found[0]

    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(e.text for e in self.elements if e.tag == "body"))

    def errors_for(self, name: str) -> list[str]:
        """Messages of the field errors placed for input ``name``."""
        return [
            " ".join(e.text.split())
            for e in self.elements
            if e.tag == "p" and e.attrs.get("data-field") == name
        ]

    def next_input_after(self, element: Element) -> Element | None:
        for e in self.elements[element.position + 1 :]:
            if e.tag in ("input", "select", "textarea"):
                return e
        return None


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def _sign_in(client: TestClient, api_key: str) -> None:
    page = client.get("/ui/sign-in")
    assert page.status_code == 200, page.text
    response = client.post(
        "/ui/sign-in",
        data={"api_key": api_key, "csrf_token": _csrf_token(page.text), "next": ""},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


@pytest.fixture
def signed_in(client: TestClient, org: Org) -> TestClient:
    _sign_in(client, org.api_key)
    return client


def _design_form(participant_type: str = DEMO_PARTICIPANT_TYPE, **fields: Any) -> dict[str, Any]:
    """A design form as the page submits it; keyword arguments add or replace fields."""
    form: dict[str, Any] = {
        "participant_type": participant_type,
        "filters[0].field_name": "age",
        "filters[0].relation": "between",
        "filters[0].value": "20, 60",
        "arms[0].arm_name": "control",
        "arms[0].weight": "1",
        "arms[1].arm_name": "sms",
        "arms[1].weight": "1",
        "metrics[0].field_name": "savings_balance",
        "metrics[0].metric_pct_change": "10",
        "strata": ["region"],
        "alpha": "0.05",
        "power": "0.8",
        "seed": "42",
        "multiple_comparison": "none",
        "name": "Savings nudge",
        "type": "preassigned",
    }
    form.update(fields)
    return form


def _post_form(client: TestClient, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """POST a form with the session's CSRF token (read from a page of the UI)."""
    token = _csrf_token(client.get("/ui/participants").text)
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


# Test modules cannot import this conftest (importlib import mode): helpers are fixtures.


@pytest.fixture
def csrf_token() -> Callable[[str], str]:
    """The CSRF token in a page's HTML."""
    return _csrf_token


@pytest.fixture
def sign_in() -> Callable[[TestClient, str], None]:
    """Sign a test client in with an API key, through the sign-in form."""
    return _sign_in


@pytest.fixture
def design_form() -> Callable[..., dict[str, Any]]:
    """A valid design form as the page submits it; keyword arguments replace fields."""
    return _design_form


@pytest.fixture
def post_form() -> Callable[..., Any]:
    """POST a form with the session's CSRF token: ``post_form(client, path, data, **kw)``."""
    return _post_form


@pytest.fixture
def read_page() -> Callable[[str], Page]:
    """Parse a page's HTML into a :class:`Page`."""
    return Page


# A real server and a real browser ---------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    org: Org
    runtime: Runtime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, warehouse_path: Path
) -> Iterator[LiveServer]:
    """uvicorn serving the whole app on a loopback port, over the demo warehouse."""
    import uvicorn

    runtime = make_runtime(tmp_path_factory.mktemp("live"))
    org = register_demo(runtime, warehouse_path, "browser-org")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, name="live-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield LiveServer(base_url=f"http://127.0.0.1:{port}", org=org, runtime=runtime)
    server.should_exit = True
    thread.join(timeout=10)
    runtime.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (its own browser download does not work here)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if servers.in_ci():
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot under test-artifacts/screenshots/ for reviewers."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
