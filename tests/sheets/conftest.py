"""Fixtures for the sheet tests: a participant table schema and a real local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xngin.dwh.schema import ColumnInfo, DataType, TableSchema


@pytest.fixture
def people_schema() -> TableSchema:
    """A small participant table with one column of every kind the sheet cares about."""
    return TableSchema(
        table_name="people",
        columns=(
            ColumnInfo("id", DataType.INTEGER, nullable=False),
            ColumnInfo("age", DataType.INTEGER),
            ColumnInfo("gender", DataType.STRING),
            ColumnInfo("income", DataType.FLOAT),
            ColumnInfo("is_active", DataType.BOOLEAN),
            ColumnInfo("signup_date", DataType.DATE),
            ColumnInfo("email", DataType.STRING),
        ),
    )


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalHTTPServer:
    """A real HTTP server on 127.0.0.1: ``routes`` maps a request path (with query) to an answer
    (GET or POST); ``requests`` records (path, headers) of every request received, ``bodies`` the
    (path, body) of POST requests."""

    base_url: str
    routes: dict[str, Answer] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bodies: list[tuple[str, bytes]] = field(default_factory=list)  # of POST requests

    def serve(
        self,
        path: str,
        status: int,
        body: str | bytes = b"",
        *,
        content_type: str = "text/csv; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Answer(status, data, {"Content-Type": content_type, **(headers or {})})


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTPServer]:
    """Serve ``routes`` from a thread on an ephemeral port of 127.0.0.1, for the test's duration.

    Proxy variables are cleared so that httpx talks to the server directly.
    """
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    state = LocalHTTPServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.bodies.append((self.path, self.rfile.read(length)))
            self.do_GET()

        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers.items())))
            answer = state.routes.get(self.path, Answer(404, b"no such route"))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
