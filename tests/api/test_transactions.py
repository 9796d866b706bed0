"""A write is committed before its response leaves: the client's next request sees it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from xngin.api.app import create_app
from xngin.services.runtime import Runtime


@pytest.fixture
def server_url(runtime: Runtime) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_each_write_is_visible_to_the_very_next_request(
    server_url: str, make_key: Callable[..., str], tmp_path: Path
) -> None:
    headers = {"X-API-Key": make_key()}
    url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
    with httpx.Client(base_url=server_url, headers=headers) as client:
        for i in range(40):
            created = client.post("/v1/datasources", json={"name": f"ds{i}", "url": url})
            assert created.status_code == 201, created.text
            names = [d["name"] for d in client.get("/v1/datasources").json()["items"]]
            assert f"ds{i}" in names, f"write {i} not visible to the next request"
