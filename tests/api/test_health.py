from pathlib import Path

from fastapi.testclient import TestClient

from xngin.api.app import create_app
from xngin.services.runtime import Runtime
from xngin.settings import Settings
from xngin.store.db import upgrade


def test_health_reports_every_store_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: s["ok"] for name, s in body["stores"].items()} == {
        "app_database": True,
        "event_store": True,
        "cache": True,
    }


def test_health_is_503_naming_the_broken_store_without_its_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    upgrade(url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        event_store_url="clickhouse://default:hunter2@127.0.0.1:1/nowhere",
        cache_url="redis://127.0.0.1:1/0",
    )
    runtime = Runtime.start(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as client:
            response = client.get("/health")
    finally:
        runtime.close()
    assert response.status_code == 503
    stores = response.json()["stores"]
    assert stores["app_database"]["ok"] is True
    assert stores["event_store"]["ok"] is False
    assert stores["cache"]["ok"] is False
    assert "hunter2" not in response.text


def test_health_says_when_migrations_are_missing(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'empty.sqlite'}",
        event_store_url=f"duckdb:///{tmp_path / 'ev.duckdb'}",
    )
    runtime = Runtime.start(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as client:
            response = client.get("/health")
    finally:
        runtime.close()
    assert response.status_code == 503
    assert "xngin db upgrade" in response.json()["stores"]["app_database"]["detail"]
