"""Bad input and faults: every failure is the JSON envelope with the right status, never a bare 500."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.app import create_app
from kap.core.db import Database
from kap.core.models import TelemetryEvent
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from tests.conftest import World


def _err(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False, body
    assert body["error"]["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    _err(client.get("/api/nope"), 404, "not_found")
    _err(client.put("/healthz"), 405, "method_not_allowed")


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) >= 8
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-1234abcd"})
    assert echoed.headers["x-request-id"] == "trace-1234abcd"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\n<script>"})
    assert replaced.headers["x-request-id"] != "bad id\n<script>"


def test_malformed_uuid_is_a_validation_error(client: TestClient, world: World) -> None:
    body = _err(client.get("/api/projects/123", headers=world.h("owner")), 422, "validation_error")
    assert body["error"]["details"]["fields"][0]["field"] == "project_id"


def test_unknown_fields_are_refused(client: TestClient, world: World) -> None:
    body = _err(client.post("/api/projects", json={"name": "x", "owner": "me"}, headers=world.h("owner")),
                422, "validation_error")
    assert "owner" in body["error"]["message"]


def test_broken_json_is_a_400(client: TestClient, world: World) -> None:
    _err(client.post("/api/projects", content=b'{"name": ', headers={**world.h("owner"),
                                                                      "Content-Type": "application/json"}),
         400, "invalid_json")


def test_wrong_content_type_is_a_415(client: TestClient, world: World) -> None:
    _err(client.post("/api/projects", content=b"name=x", headers={**world.h("owner"), "Content-Type": "text/plain"}),
         415, "unsupported_media_type")
    _err(client.post("/api/projects", data={"name": "x"}, headers=world.h("owner")), 415, "unsupported_media_type")


def test_oversized_body_is_a_413(make_client: Any, world: World) -> None:
    client = make_client(kap_max_json_kb=1)
    big = {"name": "x" * 5000}
    _err(client.post("/api/projects", json=big, headers=world.h("owner")), 413, "payload_too_large")

    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000
    _err(client.post("/api/projects", content=chunks(), headers={**world.h("owner"),
                                                                 "Content-Type": "application/json"}),
         413, "payload_too_large")


def test_unexpected_error_is_internal_with_telemetry(runtime: Runtime, world: World) -> None:
    app = create_app(runtime=runtime)

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/boom")
    body = _err(response, 500, "internal")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    with runtime.db.service_session() as s:
        row = s.scalar(select(TelemetryEvent).where(TelemetryEvent.request_id == body["request_id"]))
    assert row is not None
    assert row.kind == "internal_error"
    assert row.status == 500


def _unreachable_runtime(base_settings: dict[str, Any]) -> Runtime:
    s = load_settings(**{**base_settings, "kap_database_url": "postgresql://kap@127.0.0.1:1/kap"})
    return Runtime.build(s)


def test_database_down_answers_503_db_not_ready(base_settings: dict[str, Any], world: World) -> None:
    rt = _unreachable_runtime(base_settings)
    with TestClient(create_app(runtime=rt), raise_server_exceptions=False) as client:
        _err(client.get("/api/me", headers=world.h("owner")), 503, "db_not_ready")
        _err(client.get(f"/api/projects/{world.project_a}", headers=world.h("owner")), 503, "db_not_ready")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["state"] == "unreachable"
        assert client.get("/healthz").status_code == 200
    rt.close()


def test_unmigrated_database_answers_503_db_not_ready(base_settings: dict[str, Any], tmp_path: Any) -> None:
    s = load_settings(**{**base_settings, "kap_database_url": f"sqlite:///{tmp_path / 'empty.db'}",
                         "kap_auto_migrate": False})
    rt = Runtime.build(s)
    with TestClient(create_app(runtime=rt), raise_server_exceptions=False) as client:
        body = _err(client.get("/api/me", headers={"X-Dev-User": str(uuid.uuid4())}), 503, "db_not_ready")
        assert "migrate" in body["error"]["message"] or "reachable" in body["error"]["message"]
        assert client.get("/readyz").json()["checks"]["database"]["state"] == "not_migrated"
    rt.close()


def test_readyz_reports_each_check(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["ok"] is True
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["data_dir"]["ok"]


def test_database_comes_back_after_an_outage(db: Database, runtime: Runtime, client: TestClient,
                                             world: World) -> None:
    runtime.db.schema_ready = False  # as after a 503
    assert client.get("/api/me", headers=world.h("owner")).status_code == 200
    assert runtime.db.schema_ready
