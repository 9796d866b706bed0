from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from xngin.services.access import revoke_api_key
from xngin.services.runtime import Runtime
from xngin.store import catalog
from xngin.store import organizations as orgs


def _register_participant_type(runtime: Runtime, organization: str, name: str) -> None:
    path = runtime.settings.data_dir / f"{organization}.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with runtime.sessions.begin() as session:
        org = orgs.get_or_create_organization(session, organization)
        ds = catalog.upsert_datasource(
            session, organization_id=org.id, name="wh", url=f"sqlite:///{path}", options={}
        )
        catalog.upsert_participant_type(
            session,
            organization_id=org.id,
            name=name,
            datasource=ds,
            table_name="people",
            unique_id_field="id",
            fields=[{"field_name": "id", "data_type": "integer", "is_unique_id": True}],
            sheet_url=None,
        )


def test_missing_key_is_401(client: TestClient) -> None:
    response = client.get("/v1/participant-types")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.json()["error"]["field"] == "X-API-Key"


def test_wrong_key_is_401(client: TestClient, make_key: Callable[..., str]) -> None:
    real = make_key()
    response = client.get("/v1/participant-types", headers={"X-API-Key": real + "x"})
    assert response.status_code == 401
    assert real not in response.text


def test_revoked_key_is_401(
    client: TestClient, runtime: Runtime, make_key: Callable[..., str]
) -> None:
    key = make_key()
    assert client.get("/v1/participant-types", headers={"X-API-Key": key}).status_code == 200
    revoke_api_key(runtime, key_id_or_prefix=key[:10])
    response = client.get("/v1/participant-types", headers={"X-API-Key": key})
    assert response.status_code == 401


def test_right_key_sees_only_its_organization(
    client: TestClient, runtime: Runtime, make_key: Callable[..., str]
) -> None:
    _register_participant_type(runtime, "acme", "students")
    _register_participant_type(runtime, "globex", "farmers")
    acme = client.get("/v1/participant-types", headers={"X-API-Key": make_key("acme")})
    assert acme.status_code == 200
    assert [pt["name"] for pt in acme.json()["items"]] == ["students"]
    globex = client.get("/v1/participant-types", headers={"X-API-Key": make_key("globex")})
    assert [pt["name"] for pt in globex.json()["items"]] == ["farmers"]


def test_other_organizations_resource_is_404(
    client: TestClient, runtime: Runtime, make_key: Callable[..., str]
) -> None:
    _register_participant_type(runtime, "globex", "farmers")
    response = client.get("/v1/participant-types/farmers", headers={"X-API-Key": make_key("acme")})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    own = client.get("/v1/participant-types/farmers", headers={"X-API-Key": make_key("globex")})
    assert own.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b'{"name": "x", "url": 5}', "url"),
        (b'{"url": "sqlite://"}', "name"),
    ],
)
def test_malformed_body_gets_the_error_shape_naming_the_field(
    client: TestClient, make_key: Callable[..., str], body: bytes, field: str
) -> None:
    response = client.post(
        "/v1/datasources",
        content=body,
        headers={"X-API-Key": make_key(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["field"] == field


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}
