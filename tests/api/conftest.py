from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.services.access import issue_api_key
from xngin.services.runtime import Runtime


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def make_key(runtime: Runtime) -> Callable[..., str]:
    """Issue an API key for an organization (created on first use); returns the plaintext."""

    def make(organization: str = "acme") -> str:
        return issue_api_key(runtime, organization=organization).plaintext

    return make
